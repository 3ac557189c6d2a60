"""Hardening of the search server against a real uvicorn on 127.0.0.1: API-key handling, /info without
the key, the per-request cost budget and re-ranking limits, slow senders, and the load-time probe."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import httpx
import pytest
from pydantic import ValidationError
from test_serve import LiveServer, metric, slice_data  # noqa: F401  (slice_data is a fixture)

from retrodistill.errors import DataError
from retrodistill.index.store import DocStore, write_doc_store
from retrodistill.serve.app import create_app
from retrodistill.serve.guard import scrub_paths, scrub_text
from retrodistill.serve.protocol import HEAD_LIMIT, http_protocol
from retrodistill.serve.service import SearchService
from retrodistill.serve.settings import ServeSettings

KEY = "sec-key-456"
get = functools.partial(httpx.get, timeout=120)  # a new connection per request; generous under load
post = functools.partial(httpx.post, timeout=120)
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = "vitamin d deficiency and respiratory infection in adults "


def text(chars: int) -> str:
    return (WORDS * (chars // len(WORDS) + 1))[:chars]


def cli_serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "retrodistill.cli.main", "serve", *args, "--port", "0"],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("retrodistill: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def service(slice_data):  # noqa: F811
    _, index_dir, *_ = slice_data
    return SearchService(ServeSettings(index_dir=str(index_dir)))


@pytest.fixture(scope="module")
def keyed(slice_data, service):  # noqa: F811
    """A keyed server with the default limits and a short body deadline."""
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir), api_key=KEY, body_timeout_s=1.5)
    with LiveServer(create_app(settings, service=service), settings) as live:
        yield live


def search(live, body, headers=None, **kwargs) -> httpx.Response:
    headers = {"X-API-Key": KEY} if headers is None else headers
    return post(live.url + "/search", json=body, headers=headers, **kwargs)


# 1. an empty API key is a start-up error, never "no auth" or "nobody gets in"


@pytest.mark.parametrize(
    ("args", "env"),
    [([], {"RETRODISTILL_API_KEY": ""}), ([], {"RETRODISTILL_API_KEY": "  \t"}), (["--api-key", ""], {})],
    ids=["empty-env", "blank-env", "empty-flag"],
)
def test_blank_api_key_is_a_startup_error(slice_data, args, env):  # noqa: F811
    _, index_dir, *_ = slice_data
    line = one_error_line(cli_serve(str(index_dir), *args, env=env))
    assert "API key is empty" in line and "RETRODISTILL_API_KEY" in line


def test_blank_api_key_in_settings():
    with pytest.raises(ValidationError, match="API key is empty"):
        ServeSettings.from_env(environ={"RETRODISTILL_INDEX_DIR": "x", "RETRODISTILL_API_KEY": ""})
    with pytest.raises(ValidationError, match="API key is empty"):
        ServeSettings(index_dir="x", api_key=" ")
    assert ServeSettings.from_env(environ={"RETRODISTILL_INDEX_DIR": "x"}).api_key is None
    assert ServeSettings.from_env(environ={"RETRODISTILL_INDEX_DIR": "x", "RETRODISTILL_MAX_K": ""}).max_k == 100


# 2. + 3. one key header, checked before the body is read


def test_duplicate_key_headers_are_refused(keyed):
    body = {"query": "vitamin d", "k": 3}
    assert search(keyed, body).status_code == 200
    for pair in ([KEY, KEY], [KEY, "wrong"], ["wrong", KEY]):
        headers = [("X-API-Key", value) for value in pair]
        response = search(keyed, body, headers=headers)
        assert response.status_code == 401, pair
        assert "one X-API-Key header" in response.json()["error"]
        info = get(keyed.url + "/info", headers=headers)
        assert info.status_code == 401 and info.json()["error"]


def test_key_is_checked_before_the_body(keyed):
    url = keyed.url + "/search"
    json_type = {"Content-Type": "application/json"}
    for key in (None, "wrong"):
        headers = {**json_type, **({"X-API-Key": key} if key else {})}
        for content in (b'{"query": ', b"[1, 2", b"\xff\xfe", b'{"query": "ok", "k": "ten"}'):
            response = post(url, content=content, headers=headers)
            assert response.status_code == 401 and response.json()["error"], (key, content)
            assert response.headers["connection"] == "close", "the unread body must not be taken as a request"
        huge = post(url, content=b"a" * 300_000, headers=headers)
        assert huge.status_code == 401
        plain = post(url, content=b"hello", headers={**headers, "Content-Type": "text/plain"})
        assert plain.status_code == 401
    keyed_broken = post(url, content=b'{"query": ', headers={**json_type, "X-API-Key": KEY})
    assert keyed_broken.status_code == 422
    text_ = get(keyed.url + "/metrics").text
    assert metric(text_, "retrodistill_requests_total", 'endpoint="/search",status="401"') >= 12


# 4. /info shows paths and the full configuration only with the key


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def test_info_hides_paths_without_the_key(keyed, slice_data, service, scifact_slice):  # noqa: F811
    ds, index_dir, *_ = slice_data
    public = get(keyed.url + "/info").json()
    dumped = json.dumps(public)
    assert str(index_dir) not in dumped and str(scifact_slice) not in dumped
    assert not [s for s in strings(public) if s.startswith("/")]
    assert public["corpus"]["id"] == "(local path)" and public["corpus"]["size"] == len(ds.corpus)
    assert public["model"]["id"] == MODEL
    assert set(public["server"]) == {
        "max_query_chars", "max_queries", "max_k", "default_k", "max_body_bytes", "max_cost",
        "rerank", "updates", "max_rerank_depth", "max_rerank_pairs", "api_key_required", "systems",
    }  # fmt: skip
    assert public["server"]["systems"] == ["student"]
    assert public["server"]["max_cost"] == 16_000 and public["server"]["api_key_required"] is True

    full = get(keyed.url + "/info", headers={"X-API-Key": KEY}).json()
    assert full["corpus"]["id"] == str(scifact_slice) and full["server"]["index_dir"] == str(index_dir)
    assert full["server"]["host"] == "127.0.0.1" and KEY not in json.dumps(full)
    assert get(keyed.url + "/info", headers={"X-API-Key": "wrong"}).status_code == 401

    settings = ServeSettings(index_dir=str(index_dir))
    with LiveServer(create_app(settings, service=service), settings) as open_server:
        for headers in ({}, {"X-API-Key": "anything"}):
            info = get(open_server.url + "/info", headers=headers).json()
            assert str(index_dir) not in json.dumps(info) and "index_dir" not in info["server"]


def test_scrub_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "student").mkdir(parents=True)
    value = {
        "a": ["/srv/x", "~/y", "./z", "C:\\data", "models/student", MODEL, "flat", "models/absent"],
        "b": {"c": "file:///etc/passwd", "n": 3},
    }
    assert scrub_paths(value) == {
        "a": ["(local path)"] * 5 + [MODEL, "flat", "models/absent"],
        "b": {"c": "(local path)", "n": 3},
    }
    message = f"DataError: /srv/ab/x/docs.sqlite: bad; model {MODEL!r} at ~/m/st/ and ./r/y."
    assert scrub_text(message) == f"DataError: <...>/docs.sqlite: bad; model {MODEL!r} at <...>/st and <...>/y."


# 5. the cost budget and the re-ranking limits are checked before any work


def test_costly_request_is_refused_before_any_work(keyed):
    before = metric(get(keyed.url + "/metrics").text, "retrodistill_batch_size_count")
    attack = {"queries": [text(2000)] * 64, "k": 100}
    response = search(keyed, attack)
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert "max_cost 16000" in error and f"cost {64 * 2100}" in error and "smaller k" in error
    after = metric(get(keyed.url + "/metrics").text, "retrodistill_batch_size_count")
    assert after == before, "a refused request must not reach the encoder"


def test_cost_is_characters_plus_k_summed_over_queries(slice_data, service):  # noqa: F811
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir), max_cost=500)
    with LiveServer(create_app(settings, service=service), settings) as live:
        exact = {"queries": [text(200), text(190)], "k": 55}  # 200 + 55 + 190 + 55 = 500
        assert search(live, exact).status_code == 200
        over = {"queries": [text(200), text(191)], "k": 55}
        response = search(live, over)
        assert response.status_code == 413 and "cost 501 > max_cost 500" in response.json()["error"]
        assert search(live, {"query": text(400), "k": 100}).status_code == 200
        assert search(live, {"query": text(401), "k": 100}).status_code == 413


def test_rerank_depth_and_pairs_are_capped(slice_data, cross_encoder_dir):  # noqa: F811
    from retrodistill.retrieval.server import ServerRetriever

    ds, index_dir, queries, *_ = slice_data
    defaults = ServeSettings(index_dir="x")
    assert (defaults.max_rerank_depth, defaults.max_rerank_pairs, defaults.max_cost) == (20, 40, 16_000)
    settings = ServeSettings(
        index_dir=str(index_dir), reranker=str(cross_encoder_dir), max_rerank_depth=5, max_rerank_pairs=12
    )
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        deep = search(live, {"query": queries[0], "k": 6, "rerank": True})
        assert deep.status_code == 422 and "max_rerank_depth 5" in deep.json()["error"]
        assert search(live, {"query": queries[0], "k": 6}).status_code == 200
        fits = search(live, {"queries": queries[:3], "k": 4, "rerank": True})
        assert fits.status_code == 200 and fits.json()["reranked"] is True
        wide = search(live, {"queries": queries[:3], "k": 5, "rerank": True})
        assert wide.status_code == 413 and "3 queries x k=5 = 15 > max_rerank_pairs 12" in wide.json()["error"]

        retriever = ServerRetriever(live.url, batch=32, rerank=True)
        retriever.index(ds.corpus)
        run = retriever.retrieve(ds.judged_queries()[:10], k=4, show_progress=False)
        assert len(run) == 10 and all(len(hits) == 4 for hits in run.values())


# 6. slow senders: the body has a deadline, connections have limits


RAW_HEAD = (
    "POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    f"X-API-Key: {KEY}\r\nContent-Length: 1000\r\n\r\n"
).encode()


def read_until_closed(sock: socket.socket, limit: int = 64) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or the socket times out (False); bounded."""
    data = b""
    for _ in range(limit):
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def test_slow_senders_get_408_and_are_closed(keyed):
    sockets = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", keyed.port), timeout=30)
            sock.sendall(RAW_HEAD + b'{"query": ')
            sockets.append(sock)
        for sock in sockets:
            data, closed = read_until_closed(sock)
            assert data.startswith(b"HTTP/1.1 408"), data[:200]
            assert b"connection: close" in data.lower() and b"not received within 1.5 s" in data
            assert closed, "the server must close a connection after a body timeout"
    finally:
        for sock in sockets:
            sock.close()
    assert search(keyed, {"query": "vitamin d", "k": 3}).status_code == 200
    text_ = get(keyed.url + "/metrics").text
    assert metric(text_, "retrodistill_requests_total", 'endpoint="/search",status="408"') >= 20


def test_connection_limit_answers_503(slice_data, service):  # noqa: F811
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir), limit_concurrency=4, body_timeout_s=30)
    assert settings.uvicorn_options()["limit_concurrency"] == 4
    defaults = ServeSettings(index_dir="x").uvicorn_options()
    assert defaults["limit_concurrency"] == 256 and defaults["backlog"] == 512
    assert defaults["timeout_keep_alive"] == 5 and defaults["h11_max_incomplete_event_size"] == 16384
    assert defaults["http"] is http_protocol()  # never uvicorn's "auto": its httptools has no head cap
    head = RAW_HEAD.replace(f"X-API-Key: {KEY}\r\n".encode(), b"")
    with LiveServer(create_app(settings, service=service), settings) as live:
        # uvicorn refuses a request once connections >= the limit: 3 held bodies + this one = 4
        held = [socket.create_connection(("127.0.0.1", live.port), timeout=30) for _ in range(3)]
        try:
            for sock in held:
                sock.sendall(head + b"{")
            response = get(live.url + "/health", timeout=30)
            assert response.status_code == 503
        finally:
            for sock in held:
                sock.close()


# 6b. the request head is capped whichever parser runs (httptools buffers a header until it ends)


@pytest.mark.parametrize("parser", ["default", "h11"])
def test_an_oversized_head_is_refused_and_pipelining_still_works(slice_data, service, parser):  # noqa: F811
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir))
    if parser == "default":
        assert importlib.util.find_spec("httptools") is not None, "the serve extra installs httptools"
        assert http_protocol() != "h11"
    live = LiveServer(create_app(settings, service=service), settings)
    if parser == "h11":
        live.server.config.http = "h11"
    with live:
        # one endless header, sent in pieces: refused once the head passes the cap, and closed
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
            for _ in range(2 * HEAD_LIMIT // 4096):
                try:
                    sock.sendall(b"a" * 4096)
                except (BrokenPipeError, ConnectionResetError):
                    break
            data, closed = read_until_closed(sock)
        finally:
            sock.close()
        # the status tells which parser answered: the capped httptools protocol 431, h11's own cap 400
        assert data.startswith(b"HTTP/1.1 431" if parser == "default" else b"HTTP/1.1 400"), data[:200]
        assert closed, "the server must close a connection whose head is over the cap"
        if parser == "default":
            assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"].startswith("request head")
        # under the cap, and two requests pipelined in one send (a body near the cap, then a GET): both answered
        pad = b"X-Pad: " + b"a" * (HEAD_LIMIT // 2) + b"\r\n"
        body = json.dumps({"queries": [text(1800)] * 8, "k": 1}).encode()  # 14 KiB, inside the cost budget
        first = (
            b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + pad
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )  # fmt: skip
        second = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + pad + b"Connection: close\r\n\r\n"
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=60)
        try:
            sock.sendall(first + second)
            data, closed = read_until_closed(sock)
        finally:
            sock.close()
        assert data.count(b"HTTP/1.1 200") == 2 and closed, data[:300]


# 7. the load-time probe: /ready only when every part answered


def damaged_copy(index_dir, tmp_path, how: str):
    copy = tmp_path / f"damaged-{how}"
    shutil.copytree(index_dir, copy)
    docs = copy / "docs.sqlite"
    if how == "random":
        docs.write_bytes(os.urandom(docs.stat().st_size))
    else:
        docs.write_bytes(docs.read_bytes()[: docs.stat().st_size // 2])
    return copy


def test_damaged_doc_store_fails_the_cli_start(slice_data, tmp_path):  # noqa: F811
    _, index_dir, *_ = slice_data
    line = one_error_line(cli_serve(str(damaged_copy(index_dir, tmp_path, "random"))))
    assert "docs.sqlite" in line and "rebuild" in line


def test_damaged_doc_store_keeps_ready_503(slice_data, tmp_path):  # noqa: F811
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(damaged_copy(index_dir, tmp_path, "truncated")))
    done = threading.Event()

    def loader(s):
        try:
            return SearchService(s)
        finally:
            done.set()

    with LiveServer(create_app(settings, loader=loader), settings) as live:
        assert done.wait(300)
        ready = get(live.url + "/ready")
        for _ in range(100):  # the failure is recorded just after the loader returns
            if ready.json()["status"] != "loading":
                break
            done.wait(0.05)
            ready = get(live.url + "/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        error = ready.json()["error"]
        # the index's own checksum check or the probe names the file; neither shows the local path
        assert "docs.sqlite" in error and str(tmp_path) not in error, "no local path without the key"
        assert post(live.url + "/search", json={"query": "x"}).status_code == 503


def test_probe_checks_the_doc_store_itself(slice_data, service, tmp_path):  # noqa: F811
    """Independent of file checksums at open: the probe alone catches a bad or mismatched doc store."""
    ds, *_ = slice_data
    good = service.store.docs
    broken = tmp_path / "random.sqlite"
    broken.write_bytes(os.urandom(4096))
    rotated = tmp_path / "rotated.sqlite"
    docs = list(ds.corpus.values())
    write_doc_store(rotated, docs[1:] + docs[:1])
    try:
        service.store.docs = DocStore(broken)
        with pytest.raises(DataError, match="doc store cannot be read"):
            service.probe()
        service.store.docs = DocStore(rotated)
        with pytest.raises(DataError, match="where the index has"):
            service.probe()
    finally:
        service.store.docs = good
    service.probe()
