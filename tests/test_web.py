"""The search page in headless Chromium (Debian's, driven by playwright) against `retrodistill serve`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.index.encode import encode_corpus
from retrodistill.index.store import build_index_dir

CHROMIUM = "/usr/bin/chromium"
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
def served(scifact_slice, bi_encoder, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "index-embeddings"
    ds = load_dataset(str(scifact_slice))
    out = tmp_path_factory.mktemp("web") / "flat"
    build_index_dir(out, bi_encoder, ds.corpus, str(scifact_slice), "flat", cache_dir=cache, show_progress=False)
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", "serve", str(out), "--port", url.rsplit(":", 1)[1]]
    proc = subprocess.Popen(cmd, env=os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
        passages = encode_corpus(bi_encoder, list(ds.corpus.values()), cache, show_progress=False)
        yield url, ds, passages
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
