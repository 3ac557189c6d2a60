"""``POST /documents`` and ``POST /documents/delete`` on a real server on 127.0.0.1: updates behind the key,
searches (dense and hybrid) running during them all answer well-formed lists, the served state afterwards
equals a fresh load of the directory, and bad updates are 4xx JSON with every file unchanged."""

from __future__ import annotations

import hashlib
import math
import shutil
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import DATA, _read_jsonl_gz
from test_serve import LiveServer, slice_data  # noqa: F401  (slice_data is a fixture)

from retrodistill.index.store import load_index_dir
from retrodistill.serve.app import create_app
from retrodistill.serve.service import SearchService
from retrodistill.serve.settings import ServeSettings

KEY = "update-test-key"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def new_docs(slice_data):  # noqa: F811
    """30 SciFact documents that are not in the slice's index, as BEIR corpus lines."""
    ds = slice_data[0]
    corpus = _read_jsonl_gz(DATA / "scifact" / "corpus.jsonl.gz")
    return [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in corpus if d["_id"] not in ds.corpus][:30]


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _well_formed(response: httpx.Response, k: int) -> bool:
    if response.status_code != 200:
        return False
    for result in response.json()["results"]:
        hits = result["hits"]
        if not 0 < len(hits) <= k or [h["rank"] for h in hits] != list(range(1, len(hits) + 1)):
            return False
        if not all(isinstance(h["doc_id"], str) and h["doc_id"] and math.isfinite(h["score"]) for h in hits):
            return False
    return True


def test_updates_while_searching(slice_data, new_docs, bi_encoder, tmp_path):  # noqa: F811
    ds, index_dir, queries, *_ = slice_data
    folder = tmp_path / "served"
    shutil.copytree(index_dir, folder)
    settings = ServeSettings(index_dir=str(folder), api_key=KEY, updates=True, bm25=True)
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        url = live.url
        assert httpx.post(url + "/documents", json={"documents": new_docs[:1]}).status_code == 401
        assert httpx.get(url + "/info").json()["server"]["updates"] is True

        stop, running, answers, answered_at = threading.Event(), threading.Event(), [], []

        def search_loop() -> None:
            with httpx.Client(timeout=120) as client:
                i = 0
                while not stop.is_set():
                    body = {"query": queries[i % len(queries)], "k": 10, "mode": "hybrid" if i % 2 else "dense"}
                    answers.append(client.post(url + "/search", json=body, headers=HEADERS))
                    answered_at.append(time.monotonic())
                    running.set()
                    i += 1

        thread = threading.Thread(target=search_loop)
        thread.start()
        try:
            assert running.wait(60)  # the searches are under way before the first update starts
            started = time.monotonic()
            added = httpx.post(url + "/documents", json={"documents": new_docs}, headers=HEADERS, timeout=600)
            first = httpx.post(url + "/search", json={"query": queries[0], "k": 3}, headers=HEADERS).json()
            doomed = [h["doc_id"] for h in first["results"][0]["hits"]]
            deleted = httpx.post(url + "/documents/delete", json={"ids": doomed}, headers=HEADERS, timeout=600)
            ended = time.monotonic()
        finally:
            stop.set()
            thread.join()
        assert added.status_code == 200, added.text
        assert added.json()["size"] == len(ds.corpus) + len(new_docs) and added.json()["documents"] == len(new_docs)
        assert deleted.status_code == 200, deleted.text
        assert (deleted.json()["size"], deleted.json()["deleted"]) == (len(ds.corpus) + len(new_docs) - 3, 3)
        during = sum(started < t < ended for t in answered_at)
        print(f"{len(answers)} searches ran around the two updates, {during} answered between their start and end")
        # not a count that depends on the machine's speed: searches were answered while the index changed
        assert during >= 1 and all(_well_formed(a, 10) for a in answers)

        # what is served now is the directory on disk, loaded afresh
        store = load_index_dir(folder, device="cpu")
        want = store.search(bi_encoder.encode_queries(queries[:5]), 10)
        got = httpx.post(url + "/search", json={"queries": queries[:5], "k": 10}, headers=HEADERS).json()["results"]
        assert [[h["doc_id"] for h in r["hits"]] for r in got] == [[h.doc_id for h in row] for row in want]
        np.testing.assert_allclose(
            [[h["score"] for h in r["hits"]] for r in got], [[h.score for h in row] for row in want], atol=1e-4
        )
        for mode in ("dense", "hybrid"):
            body = {"queries": queries[:5], "k": 50, "mode": mode}
            served = httpx.post(url + "/search", json=body, headers=HEADERS).json()["results"]
            assert not {h["doc_id"] for r in served for h in r["hits"]} & set(doomed)
        new = new_docs[0]
        top = httpx.post(url + "/search", json={"query": new["title"], "k": 1}, headers=HEADERS).json()
        assert top["results"][0]["hits"][0]["doc_id"] == new["_id"]

        before = _digest(folder)
        clash = httpx.post(url + "/documents", json={"documents": [new_docs[1]]}, headers=HEADERS)
        assert clash.status_code == 409 and new_docs[1]["_id"] in clash.json()["error"]
        unknown = httpx.post(url + "/documents/delete", json={"ids": ["no-such-doc"]}, headers=HEADERS)
        assert unknown.status_code == 404 and "no-such-doc" in unknown.json()["error"]
        again = httpx.post(url + "/documents/delete", json={"ids": [doomed[0]]}, headers=HEADERS)
        assert again.status_code == 404
        blank = httpx.post(url + "/documents", json={"documents": [{"_id": "blank", "text": " "}]}, headers=HEADERS)
        assert blank.status_code == 422 and "no title or text" in blank.json()["error"]
        assert str(tmp_path) not in clash.text + unknown.text + blank.text
        assert _digest(folder) == before


def test_updates_are_off_unless_enabled(slice_data, new_docs):  # noqa: F811
    _, index_dir, *_ = slice_data
    settings = ServeSettings(index_dir=str(index_dir), api_key=KEY)
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        refused = httpx.post(live.url + "/documents", json={"documents": new_docs[:1]}, headers=HEADERS)
        assert refused.status_code == 400 and "--updates" in refused.json()["error"]
    with pytest.raises(ValueError, match="API key"):
        ServeSettings(index_dir=str(index_dir), updates=True)
