"""The search page in headless Chromium (Debian's, driven by playwright) against `retrodistill serve`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.index.encode import encode_corpus
from retrodistill.index.store import build_index_dir

CHROMIUM = "/usr/bin/chromium"
KEY = "side-by-side-secret"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
if not shutil.which(CHROMIUM):
    pytest.skip("needs Debian's chromium: apt-get install chromium", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def index_dir(scifact_slice, bi_encoder, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "index-embeddings"
    ds = load_dataset(str(scifact_slice))
    out = tmp_path_factory.mktemp("web") / "flat"
    build_index_dir(out, bi_encoder, ds.corpus, str(scifact_slice), "flat", cache_dir=cache, show_progress=False)
    passages = encode_corpus(bi_encoder, list(ds.corpus.values()), cache, show_progress=False)
    return out, ds, passages


@contextmanager
def serving(index: Path, *args: str, env: dict[str, str] | None = None):
    """``retrodistill serve INDEX ARGS`` in a subprocess on a free port, until it answers /ready."""
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", "serve", str(index), "--port", url.rsplit(":", 1)[1]]
    env = {**os.environ, **(env or {})}
    proc = subprocess.Popen([*cmd, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def served(index_dir):
    out, ds, passages = index_dir
    with serving(out) as url:
        yield url, ds, passages


@pytest.fixture(scope="module")
def served_compare(index_dir):
    """BM25 and a BM25 teacher beside the student, behind an API key."""
    out, ds, passages = index_dir
    with serving(out, "--bm25", "--teacher", "bm25", env={"RETRODISTILL_API_KEY": KEY}) as url:
        yield url, ds, passages


def test_page_search_shows_exact_top_result(served, bi_encoder, tmp_path):
    url, ds, passages = served
    query = ds.judged_queries()[3].text
    scores = passages @ bi_encoder.encode_queries([query])[0]
    expected_top = list(ds.corpus)[int(np.argmax(scores))]
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(url + "/")
            assert page.title() == "retrodistill search"
            page.fill("#q", query)
            page.fill("#k", "5")
            page.click("#go")
            page.wait_for_selector("tr.result", timeout=60_000)
            rows = page.locator("tr.result")
            assert rows.count() == 5
            assert rows.first.get_attribute("data-doc-id") == expected_top
            first_text = rows.first.inner_text()
            assert ds.corpus[expected_top].title in first_text and expected_top in first_text
            assert f"{float(scores.max()):.4f}"[:5] in first_text
            status = page.inner_text("#status")
            assert "5 results in" in status and "ms" in status
            page.screenshot(path=str(tmp_path / "search.png"), full_page=True)

            page.fill("#q", "a query the server refuses to re-rank")
            page.check("#rerank")
            page.click("#go")
            page.wait_for_selector("#status.error", timeout=30_000)
            assert "400" in page.inner_text("#status")
        finally:
            browser.close()


class Expected:
    """The columns computed here, without the server: bm25s directly (the server's BM25 settings:
    Lucene, k1=0.9, b=0.4, English stopwords, Porter stemmer) and numpy cosines for the student."""

    def __init__(self, ds, passages, bi_encoder) -> None:
        import bm25s
        import Stemmer

        self.bm25s, self.stemmer = bm25s, Stemmer.Stemmer("porter")
        self.docs = list(ds.corpus.values())
        self.model = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
        self.model.index(self._tokens([d.full_text() for d in self.docs]), show_progress=False)
        self.passages, self.bi_encoder = passages, bi_encoder

    def _tokens(self, texts: list[str], **kw):
        return self.bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False, **kw)

    def bm25(self, query: str, k: int) -> list[str]:
        rows, scores = self.model.retrieve(self._tokens([query]), k=k, show_progress=False)
        return [self.docs[int(r)].doc_id for r, s in zip(rows[0], scores[0], strict=True) if s > 0]

    def student(self, query: str, k: int) -> list[str]:
        scores = self.passages @ self.bi_encoder.encode_queries([query])[0]
        return [self.docs[int(i)].doc_id for i in np.argsort(-scores, kind="stable")[:k]]

    def teacher_scores(self, query: str) -> dict[str, float]:
        known = [t for t in self._tokens([query], return_ids=False)[0] if t in self.model.vocab_dict]
        scores = self.model.get_scores(known)
        return {d.doc_id: float(s) for d, s in zip(self.docs, scores, strict=True)}

    def teacher(self, query: str, k: int) -> list[str]:
        scores = self.teacher_scores(query)
        return sorted(self.student(query, k), key=lambda d: -scores[d])


def test_page_side_by_side_columns_match_independent_rankings(served_compare, bi_encoder, tmp_path):
    url, ds, passages = served_compare
    expected, k = Expected(ds, passages, bi_encoder), 5
    for query in (q.text for q in ds.judged_queries()):
        student, teacher = expected.student(query, k), expected.teacher(query, k)
        scores = [expected.teacher_scores(query)[d] for d in student]
        if len(expected.bm25(query, k)) == k and teacher != student and len(set(scores)) == k:
            break
    else:
        pytest.fail("no judged query where the teacher re-orders the student's top k")
    want = {"bm25": expected.bm25(query, k), "student": student, "teacher": teacher}
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.goto(url + "/")
            page.fill("#key", KEY)
            page.fill("#q", query)
            page.fill("#k", str(k))
            page.check("#compare")
            page.click("#go")
            page.wait_for_selector("section.column", timeout=60_000)
            columns = page.locator("section.column")
            assert [columns.nth(i).get_attribute("data-system") for i in range(columns.count())] == list(want)
            for system, ids in want.items():
                column = page.locator(f'section.column[data-system="{system}"]')
                shown = column.locator("li.result")
                assert [shown.nth(i).get_attribute("data-doc-id") for i in range(shown.count())] == ids, system
                latency = column.locator(".latency")
                assert float(latency.get_attribute("data-latency-ms")) > 0 and "ms" in latency.inner_text()
            assert ds.corpus[want["bm25"][0]].title in page.locator('[data-system="bm25"] li.result').first.inner_text()
            assert "3 systems in" in page.inner_text("#status")
            assert page.locator("#results").is_hidden()
            page.screenshot(path=str(tmp_path / "side-by-side.png"), full_page=True)
            assert (tmp_path / "side-by-side.png").stat().st_size > 0

            page.uncheck("#compare")
            page.click("#go")
            page.wait_for_selector("tr.result", timeout=60_000)
            rows = page.locator("tr.result")
            assert [rows.nth(i).get_attribute("data-doc-id") for i in range(rows.count())] == student
            assert page.locator("#columns").is_hidden()

            body = {"query": query, "k": k, "mode": "hybrid"}
            hybrid = httpx.post(url + "/search", json=body, headers={"X-API-Key": KEY}, timeout=60).json()
            assert [h["doc_id"] for h in hybrid["results"][0]["hits"]] != student  # else the check below proves nothing
            page.check("#hybrid")
            page.click("#go")
            page.wait_for_selector('#status[data-mode="hybrid"]', timeout=60_000)
            rows = page.locator("tr.result")
            assert [rows.nth(i).get_attribute("data-doc-id") for i in range(rows.count())] == [
                h["doc_id"] for h in hybrid["results"][0]["hits"]
            ]
            assert "hybrid" in page.inner_text("#status")
            assert problems == []
        finally:
            browser.close()


def test_compare_api_guards_and_errors(served_compare, served):
    url, ds, _ = served_compare
    query = ds.judged_queries()[0].text
    keyed = {"X-API-Key": KEY}
    no_key = httpx.post(url + "/compare", json={"query": query, "k": 3}, timeout=60)
    assert no_key.status_code == 401 and "API key" in no_key.json()["error"]
    unknown = httpx.post(url + "/compare", json={"query": query, "systems": ["splade"]}, headers=keyed, timeout=60)
    assert unknown.status_code == 400 and "unknown system 'splade'" in unknown.json()["error"]
    too_deep = httpx.post(url + "/compare", json={"query": query, "k": 21}, headers=keyed, timeout=60)
    assert too_deep.status_code == 422 and "max_rerank_depth" in too_deep.json()["error"]
    ordered = httpx.post(
        url + "/compare", json={"query": query, "k": 3, "systems": ["teacher", "bm25"]}, headers=keyed, timeout=60
    )
    assert ordered.status_code == 200
    assert [c["system"] for c in ordered.json()["columns"]] == ["teacher", "bm25"]
    assert all(len(c["hits"]) == 3 and c["latency_ms"] > 0 for c in ordered.json()["columns"])

    plain_url = served[0]
    assert httpx.get(plain_url + "/info").json()["server"]["systems"] == ["student"]
    off = httpx.post(plain_url + "/compare", json={"query": query, "systems": ["bm25"]}, timeout=60)
    assert off.status_code == 400 and "--bm25" in off.json()["error"]
    default = httpx.post(plain_url + "/compare", json={"query": query, "k": 2}, timeout=60).json()
    assert [c["system"] for c in default["columns"]] == ["student"] and len(default["columns"][0]["hits"]) == 2
