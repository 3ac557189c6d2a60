"""The search API against a real uvicorn server on 127.0.0.1: exact results, safety, metrics, batching."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
import uvicorn

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.index.encode import encode_corpus
from retrodistill.index.manifest import write_manifest
from retrodistill.index.numpy_flat import NumpyFlatIndex
from retrodistill.index.store import build_index_dir
from retrodistill.serve.app import create_app
from retrodistill.serve.service import SearchService
from retrodistill.serve.settings import ServeSettings

KEY = "test-key-123"


class LiveServer:
    """uvicorn serving ``app`` in a thread on a free 127.0.0.1 port."""

    def __init__(self, app, settings: ServeSettings | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = settings.uvicorn_options() if settings is not None else {}
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if httpx.get(self.url + "/ready").status_code == 200:
                return
            time.sleep(0.1)
        raise AssertionError("server never became ready")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def slice_data(scifact_slice, bi_encoder, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "index-embeddings"
    ds = load_dataset(str(scifact_slice))
    passages = encode_corpus(bi_encoder, list(ds.corpus.values()), cache, show_progress=False)
    out = tmp_path_factory.mktemp("serve") / "flat"
    build_index_dir(out, bi_encoder, ds.corpus, str(scifact_slice), "flat", cache_dir=cache, show_progress=False)
    queries = [q.text for q in ds.judged_queries()]
    oracle = NumpyFlatIndex(384)
    oracle.add(passages)
    scores, rows = oracle.search(bi_encoder.encode_queries(queries), 10)
    ids = [list(ds.corpus)[r] for r in rows.ravel()]
    return ds, out, queries, scores, np.array(ids).reshape(rows.shape)


@pytest.fixture(scope="module")
def server(slice_data):
    """A keyed server whose loading is held until the test has seen /ready answer 503."""
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir), api_key=KEY, max_wait_ms=30, max_queries=16, max_k=50)
    gate = threading.Event()

    def gated(s):
        gate.wait(120)
        return SearchService(s)

    with LiveServer(create_app(settings, loader=gated), settings) as live:
        live.before = (httpx.get(live.url + "/health").status_code, httpx.get(live.url + "/ready").status_code)
        live.search_before = httpx.post(live.url + "/search", json={"query": "x"}, headers={"X-API-Key": KEY})
        gate.set()
        live.wait_ready()
        yield live


def post(server, body, key=KEY, **kwargs):
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(server.url + "/search", json=body, headers=headers, timeout=60, **kwargs)


def test_health_and_ready_before_and_after_loading(server):
    assert server.before == (200, 503)
    assert server.search_before.status_code == 503 and "loading" in server.search_before.json()["error"]
    assert httpx.get(server.url + "/ready").json() == {"status": "ready", "error": None}


def test_search_equals_exact_numpy_top_k(server, slice_data):
    ds, _, queries, want_scores, want_ids = slice_data
    got_ids, got_scores = [], []
    for start in range(0, len(queries), 16):
        response = post(server, {"queries": queries[start : start + 16], "k": 10})
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["k"] == 10 and data["reranked"] is False and data["latency_ms"] > 0
        for text, result in zip(queries[start : start + 16], data["results"], strict=True):
            assert result["query"] == text and [h["rank"] for h in result["hits"]] == list(range(1, 11))
            got_ids.append([h["doc_id"] for h in result["hits"]])
            got_scores.append([h["score"] for h in result["hits"]])
            top = result["hits"][0]
            doc = ds.corpus[top["doc_id"]]
            assert top["title"] == doc.title and doc.text.startswith(top["snippet"].removesuffix(" …"))
            assert top["retrieval_score"] == top["score"]
    assert (np.array(got_ids) == want_ids).mean() > 0.99
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-4)
    single = post(server, {"query": queries[0], "k": 3}).json()
    assert [h["doc_id"] for h in single["results"][0]["hits"]] == list(want_ids[0, :3])


BAD = [
    ({"query": ""}, 422),
    ({"query": "   "}, 422),
    ({"query": "x" * 2001}, 422),
    ({"query": "ok", "k": 10**6}, 422),
    ({"query": "ok", "k": 0}, 422),
    ({"query": "ok", "k": "ten"}, 422),
    ({"query": "ok", "k": 2.5}, 422),
    ({"query": 123}, 422),
    ({"query": ["a"]}, 422),
    ({"queries": "not a list"}, 422),
    ({"queries": []}, 422),
    ({"queries": ["a", 5]}, 422),
    ({"query": "a", "queries": ["b"]}, 422),
    ({}, 422),
    ({"query": "ok", "extra": 1}, 422),
    ({"query": "ok", "rerank": "yes"}, 422),
    ([1, 2, 3], 422),
    ({"queries": ["q"] * 17}, 413),
    ({"query": "ok", "rerank": True}, 400),
]


@pytest.mark.parametrize(("body", "status"), BAD)
def test_bad_input_gets_a_4xx_json_error(server, body, status):
    response = post(server, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_auth_body_limits_and_malformed_requests(server):
    assert post(server, {"query": "ok"}, key=None).status_code == 401
    wrong = post(server, {"query": "ok"}, key="nope")
    assert wrong.status_code == 401 and "X-API-Key" in wrong.json()["error"]
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    huge = httpx.post(server.url + "/search", content=b'{"query": "' + b"a" * 300_000 + b'"}', headers=headers)
    assert huge.status_code == 413 and "larger than" in huge.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        yield b'{"query": "'
        for _ in range(40):
            yield b"a" * 10_000
        yield b'"}'

    streamed = httpx.post(server.url + "/search", content=chunks(), headers=headers)
    assert streamed.status_code == 413 and streamed.json()["error"]
    broken = httpx.post(server.url + "/search", content=b'{"query": ', headers=headers)
    assert broken.status_code == 422 and broken.json()["error"]
    text = httpx.post(server.url + "/search", content=b"hello", headers={**headers, "Content-Type": "text/plain"})
    assert 400 <= text.status_code < 500 and text.json()["error"]
    assert httpx.get(server.url + "/search").status_code == 405
    missing = httpx.get(server.url + "/nope")
    assert missing.status_code == 404 and missing.json()["error"]


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    return float(match.group(1)) if match else 0.0


def test_metrics_info_and_docs(server, slice_data):
    ds, index_dir, *_ = slice_data
    post(server, {"query": "vitamin d"})
    post(server, {"query": ""})
    text = httpx.get(server.url + "/metrics").text
    assert metric(text, "retrodistill_requests_total", 'endpoint="/search",status="200"') >= 1
    assert metric(text, "retrodistill_requests_total", 'endpoint="/search",status="422"') >= 1
    assert metric(text, "retrodistill_request_seconds_count", 'endpoint="/search"') >= 2
    assert metric(text, "retrodistill_batch_size_count") >= 1 and metric(text, "retrodistill_ready") == 1
    assert metric(text, "retrodistill_index_documents") == len(ds.corpus)
    info = httpx.get(server.url + "/info", headers={"X-API-Key": KEY}).json()
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert {k: info[k] for k in manifest} == manifest
    assert info["server"]["api_key_required"] is True and "api_key" not in info["server"]
    assert KEY not in json.dumps(info)
    spec = httpx.get(server.url + "/openapi.json").json()
    search = spec["paths"]["/search"]["post"]
    assert {"401", "413", "422"} <= set(search["responses"])
    assert httpx.get(server.url + "/docs").status_code == 200


def test_concurrent_requests_are_micro_batched(server, slice_data):
    _, _, queries, _, want_ids = slice_data
    before = httpx.get(server.url + "/metrics").text
    start_count = metric(before, "retrodistill_batch_size_count")
    start_sum = metric(before, "retrodistill_batch_size_sum")
    start_single = metric(before, "retrodistill_batch_size_bucket", 'le="1.0"')
    barrier = threading.Barrier(8)

    def one(i):
        barrier.wait()
        return post(server, {"query": queries[i], "k": 5})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(8)))
    for i, response in enumerate(responses):
        assert response.status_code == 200
        assert [h["doc_id"] for h in response.json()["results"][0]["hits"]] == list(want_ids[i, :5])
    after = httpx.get(server.url + "/metrics").text
    batches = metric(after, "retrodistill_batch_size_count") - start_count
    assert metric(after, "retrodistill_batch_size_sum") - start_sum == 8
    singles = metric(after, "retrodistill_batch_size_bucket", 'le="1.0"') - start_single
    assert (batches < 8 and singles < batches) or batches == 1, "at least one forward served more than one query"


def test_schemathesis_finds_no_server_error(server):
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/search", "/health", "/ready", "/info", "/metrics"}
    seen: list[int] = []
    for operation in operations:
        examples = 40 if operation.path == "/search" else 3

        @hsettings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=server.url, headers={"X-API-Key": KEY}, timeout=60)
            seen.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert seen and max(seen) < 500
    assert 200 in seen and any(400 <= s < 500 for s in seen)


def test_rerank_and_server_retriever(slice_data, cross_encoder_dir):
    from sentence_transformers import CrossEncoder

    from retrodistill.eval.measures import evaluate
    from retrodistill.retrieval import RETRIEVERS

    ds, index_dir, queries, _, want_ids = slice_data
    settings = ServeSettings(index_dir=str(index_dir), reranker=str(cross_encoder_dir))
    with LiveServer(create_app(settings, service=SearchService(settings))) as live:
        plain = httpx.post(live.url + "/search", json={"query": queries[0], "k": 8}, timeout=120)
        plain = plain.json()["results"][0]["hits"]
        data = httpx.post(live.url + "/search", json={"query": queries[0], "k": 8, "rerank": True}, timeout=120)
        data = data.json()
        assert data["reranked"] is True
        hits = data["results"][0]["hits"]
        assert {h["doc_id"] for h in hits} == {h["doc_id"] for h in plain}
        retrieval = {h["doc_id"]: h["score"] for h in plain}
        assert all(h["retrieval_score"] == pytest.approx(retrieval[h["doc_id"]], abs=1e-6) for h in hits)
        reference = CrossEncoder(str(cross_encoder_dir)).predict(
            [(queries[0], ds.corpus[h["doc_id"]].full_text()) for h in hits]
        )
        np.testing.assert_allclose([h["score"] for h in hits], reference, atol=1e-4)
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)

        retriever = RETRIEVERS.get("server")(live.url, batch=16)
        retriever.index(ds.corpus)
        run = retriever.retrieve(ds.judged_queries(), k=10, show_progress=False)
        assert [next(iter(run[q.query_id])) for q in ds.judged_queries()][:5] == list(want_ids[:5, 0])
        assert evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"] > 0.5
        with pytest.raises(ConfigError, match="max-k"):
            retriever.retrieve(ds.judged_queries()[:1], k=1000, show_progress=False)


def test_mismatched_manifest_is_refused(slice_data, tmp_path):
    _, index_dir, *_ = slice_data
    wrong_revision = tmp_path / "wrong-revision"
    shutil.copytree(index_dir, wrong_revision)
    manifest = json.loads((wrong_revision / "manifest.json").read_text())
    manifest["model"]["revision"] = "sentence-transformers/all-MiniLM-L6-v2@0000000"
    write_manifest(wrong_revision, manifest)  # resealed: the model check is under test, not the checksum
    with pytest.raises(ConfigError, match="revision"):
        SearchService(ServeSettings(index_dir=str(wrong_revision)))

    wrong_dim = tmp_path / "wrong-dim"
    shutil.copytree(index_dir, wrong_dim)
    manifest = json.loads((wrong_dim / "manifest.json").read_text())
    manifest["model"]["dim"] = manifest["dim"] = 768
    write_manifest(wrong_dim, manifest)
    result = subprocess.run(
        [sys.executable, "-m", "retrodistill.cli.main", "serve", str(wrong_dim), "--port", "0"],
        capture_output=True, text=True, env=os.environ, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("retrodistill: error:")]
    assert len(lines) == 1 and "dim=768" in lines[0] and "384" in lines[0]


def test_onnx_backend_serves_the_exact_top_k(slice_data, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    _, index_dir, queries, want_scores, want_ids = slice_data
    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    settings = ServeSettings(index_dir=str(index_dir), backend="onnx", max_queries=64)
    with LiveServer(create_app(settings), settings) as live:
        live.wait_ready()
        data = httpx.post(live.url + "/search", json={"queries": queries, "k": 10}, timeout=120).json()
        info = httpx.get(live.url + "/info").json()
    got_ids = [[h["doc_id"] for h in r["hits"]] for r in data["results"]]
    got_scores = [[h["score"] for h in r["hits"]] for r in data["results"]]
    assert (np.array(got_ids) == want_ids).mean() > 0.99
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-4)
    assert info["encoder"]["backend"] == "onnx"
    with pytest.raises(ValueError, match="unknown inference backend 'cuda'"):
        ServeSettings(index_dir=str(index_dir), backend="cuda")


def test_default_engine_is_measured_at_start(server):
    """No --backend: the server times the float engines at start and keeps the fastest (same vectors)."""
    info = httpx.get(server.url + "/info", headers={"X-API-Key": KEY}).json()["encoder"]
    assert info["backend"] in ("torch", "onnx", "openvino")
    probe = info["auto_probe_seconds"]
    assert "torch" in probe and probe[info["backend"]] == min(v for v in probe.values() if isinstance(v, float))
