"""``retrodistill report`` on real eval and distill output folders cut from SciFact.

The page's numbers are read back from its HTML and checked against metrics.json, against a Student-t
interval computed here from the per-query values, and against a hand count of per-query wins and losses.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from retrodistill.cli.main import main

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CHROMIUM = "/usr/bin/chromium"


class Cells(HTMLParser):
    """Table cells with a ``data-system`` attribute (their attributes and text), and every tag's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self._open: dict | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "td" and "data-system" in attrs:
            self._open = {**attrs, "text": ""}
        elif tag == "span" and self._open is not None and attrs.get("class") in ("v", "ci", "p"):
            self._open["_span"] = attrs["class"]

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open["text"] += data
            if span := self._open.pop("_span", None):
                self._open[span] = data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._open is not None:
            self.cells.append(self._open)
            self._open = None


def parse(path: Path) -> Cells:
    cells = Cells()
    cells.feed(path.read_text(encoding="utf-8"))
    return cells


def metric_cells(page: Cells) -> dict[tuple[str, str], dict]:
    return {(c["data-system"], c["data-measure"]): c for c in page.cells if "v" in c}


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def eval_dir(scifact_slice, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report_eval") / "out"
    argv = ["-q", "eval", "-d", str(scifact_slice), "-s", "bm25s", "-s", f"dense:{MODEL},label=dense", "-o", str(out)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def distill_dir(scifact_slice, tmp_path_factory) -> Path:
    from retrodistill.pipeline import DistillConfig, run_distill

    work = tmp_path_factory.mktemp("report_distill") / "run"
    config = DistillConfig(
        train_dataset=str(scifact_slice),
        train_split="test",
        eval_dataset=str(scifact_slice),
        teacher="bm25",
        depth=6,
        max_train_queries=8,
        teacher_eval_depth=10,
        student={"group_size": 4, "batch_size": 4, "max_steps": 3, "save_steps": 1, "max_seq_length": 64},
        work_dir=str(work),
    )
    run_distill(config, show_progress=False)
    return work


def test_page_numbers_are_those_of_metrics_json(eval_dir, tmp_path):
    out = tmp_path / "page.html"
    assert main(["-q", "report", str(eval_dir), "--out", str(out)]) == 0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    cells = metric_cells(parse(out))
    assert [s["name"] for s in metrics["systems"]] == ["bm25s", "dense"]
    assert len(cells) == len(metrics["systems"]) * len(metrics["systems"][0]["metrics"])
    for system in metrics["systems"]:
        for measure, value in system["metrics"].items():
            cell = cells[(system["name"], measure)]
            assert cell["v"] == f"{value:.4f}"
            p = system["p_values"].get(measure)
            if p is None:  # the baseline
                assert system["name"] == metrics["baseline"] and "p" not in cell and "†" not in cell["text"]
            else:
                assert cell["p"] == f"p={p:.3g}"
                assert ("†" in cell["text"]) == (p < 0.05)


def test_confidence_interval_is_the_t_interval_of_the_per_query_values(eval_dir, tmp_path):
    from scipy.stats import t

    out = tmp_path / "page.html"
    assert main(["-q", "report", str(eval_dir), "--out", str(out)]) == 0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    cells = metric_cells(parse(out))
    quantile = t.ppf(0.975, 40 - 1)
    assert 2.0 < quantile < 2.05  # 39 degrees of freedom
    clipped = []
    for system in metrics["systems"]:
        for measure, per_query in system["per_query"].items():
            values = np.array(list(per_query.values()))
            assert len(values) == 40 and values.mean() == pytest.approx(system["metrics"][measure], abs=1e-12)
            half = quantile * values.std(ddof=1) / math.sqrt(len(values))
            low, high = (float(x) for x in cells[(system["name"], measure)]["ci"].strip("[]").split(","))
            # the mean of values in [min, max] is never outside it
            assert low == pytest.approx(max(values.mean() - half, values.min()), abs=5e-5)
            assert high == pytest.approx(min(values.mean() + half, values.max()), abs=5e-5)
            if values.mean() + half > values.max() and values.std() > 0:
                clipped.append((system["name"], measure))
    dense = next(s for s in metrics["systems"] if s["name"] == "dense")
    assert dense["per_query"]["nDCG@10"] and np.std(list(dense["per_query"]["nDCG@10"].values())) > 0
    assert ("dense", "nDCG@10") not in clipped and ("bm25s", "R@100") in clipped  # both branches are exercised


def test_wins_losses_ties_are_a_hand_count_of_per_query_values(eval_dir, tmp_path):
    out = tmp_path / "page.html"
    assert main(["-q", "report", str(eval_dir), "--out", str(out)]) == 0
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    base, dense = metrics["systems"]
    assert metrics["baseline"] == base["name"] == "bm25s"
    counted = {(c["data-measure"]): c for c in parse(out).cells if "data-wins" in c}
    assert set(counted) == set(base["metrics"])
    for measure in base["metrics"]:
        wins = losses = ties = 0
        for qid, value in dense["per_query"][measure].items():
            other = base["per_query"][measure][qid]
            if abs(value - other) <= 1e-9:
                ties += 1
            elif value > other:
                wins += 1
            else:
                losses += 1
        cell = counted[measure]
        assert (int(cell["data-wins"]), int(cell["data-losses"]), int(cell["data-ties"])) == (wins, losses, ties)
        assert cell["text"].startswith(f"{wins} / {losses} / {ties}")
    assert sum(int(counted["nDCG@10"][k]) for k in ("data-wins", "data-losses", "data-ties")) == 40


def test_distill_folder_and_an_eval_folder_on_one_self_contained_page(eval_dir, distill_dir, tmp_path):
    out = tmp_path / "both.html"
    done = run_cli("report", str(distill_dir), str(eval_dir), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert str(out) in done.stdout
    text = out.read_text(encoding="utf-8")
    page = parse(out)

    # every distill row's numbers come from its eval/metrics.json
    metrics = json.loads((distill_dir / "eval" / "metrics.json").read_text())
    cells = metric_cells(page)
    assert [s["name"] for s in metrics["systems"]] == ["bm25s", "init", "student", "teacher"]
    for system in metrics["systems"]:
        for measure, value in system["metrics"].items():
            assert cells[(system["name"], measure)]["v"] == f"{value:.4f}"

    # provenance: the teacher's fingerprint as its score store records it, the versions, the stages
    with sqlite3.connect(distill_dir / "teacher_scores.sqlite") as con:
        fingerprint = con.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]
    assert len(fingerprint) == 16 and f"<code>{fingerprint}</code>" in text
    stages = json.loads((distill_dir / "stages.json").read_text())["stages"]
    assert [s["stage"] for s in stages] == ["candidates", "teach bm25", "train student", "evaluate"]
    for stage in stages:
        assert f"<td>{stage['stage']}</td><td>{stage['seconds']:.1f}</td>" in text
    assert f"retrodistill {metrics['retrodistill_version']}" in text

    # self-contained: no external reference, every image an inlined PNG
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            assert attrs.get(key, "#").split(":")[0] not in ("http", "https", "file"), (tag, attrs)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    for img in images:
        head, _, data = img["src"].partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    alts = [img["alt"] for img in images]
    # histograms, quality against time and metrics.png for both folders; one training curve
    assert alts.count("student training curve") == 1
    assert alts.count("per-query nDCG@10 differences against bm25s") == 2
    assert alts.count("nDCG@10 against eval seconds per query") == 2
    assert alts.count("metrics.png") == 2
    log = json.loads((distill_dir / "student" / "train_log.json").read_text())["log_history"]
    assert sum("loss" in h for h in log) == 3  # the curve has points to draw


def test_folder_without_metrics_is_one_line_and_writes_nothing(eval_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for argv, words in [
        ([str(empty)], "no metrics.json"),
        ([str(eval_dir), str(tmp_path / "missing")], "not a folder"),
    ]:
        done = run_cli("report", *argv, "--out", str(tmp_path / "r.html"), cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
        assert lines[0].startswith("retrodistill: error: ") and words in lines[0]
        assert not (tmp_path / "r.html").exists()

    broken = tmp_path / "broken"
    shutil.copytree(eval_dir, broken)
    (broken / "metrics.json").write_text('{"systems": [')
    done = run_cli("report", str(broken), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "not readable JSON" in done.stderr and len(done.stderr.splitlines()) == 1
    (broken / "metrics.json").write_text(json.dumps({"retrodistill_version": "0", "eval": {"nDCG@10": 0.5}}))
    done = run_cli("report", str(broken), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "lists no systems" in done.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium: apt-get install chromium")
def test_page_in_headless_chromium(eval_dir, distill_dir, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser is Debian's)")
    out = tmp_path / "page.html"
    assert main(["-q", "report", str(eval_dir), str(distill_dir), "--out", str(out)]) == 0
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url))
            page.goto(out.as_uri())
            assert page.title() == "retrodistill report"
            tables = page.locator("table.metrics")
            assert tables.count() == 2
            assert tables.first.is_visible() and tables.nth(1).is_visible()
            first_row = tables.first.locator("tbody tr").first.inner_text()
            assert first_row.startswith("bm25s (baseline)")
            sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
            assert len(sizes) >= 7 and all(done and width > 100 for done, width in sizes)
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
            assert problems == []
        finally:
            browser.close()


def test_without_matplotlib_the_page_has_every_number_and_says_the_plots_are_left_out(
    eval_dir, tmp_path, monkeypatch, capfd
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "page.html"
    assert main(["-q", "report", str(eval_dir), "--out", str(out)]) == 0
    warned = capfd.readouterr().err
    assert "the report's plots skipped" in warned and "pip install 'retrodistill[plot]'" in warned
    page = parse(out)
    assert [attrs["alt"] for tag, attrs in page.tags if tag == "img"] == ["metrics.png"]  # eval's own plot only
    assert "Plots left out" in out.read_text(encoding="utf-8")
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    cells = metric_cells(page)
    assert all(cells[(s["name"], m)]["v"] == f"{v:.4f}" for s in metrics["systems"] for m, v in s["metrics"].items())


def test_an_ensemble_run_lists_each_teacher_and_the_fused_store_with_their_fingerprints(
    eval_dir, scifact_slice, tmp_path
):
    """The teach stage of ``distill`` for two BM25 teachers (their stores and the fused one), and eval's folder
    as the work_dir's ``eval/``: the page names each store's recorded fingerprint against its spec."""
    from retrodistill.atomic import write_json
    from retrodistill.pipeline import DistillConfig, teach

    work = tmp_path / "ensemble"
    config = DistillConfig(
        train_dataset=str(scifact_slice),
        train_split="test",
        teacher=["bm25", "bm25,k1=1.5,b=0.75"],
        depth=4,
        max_train_queries=3,
        work_dir=str(work),
    )
    teach(config, show_progress=False)
    write_json(work / "config.json", {"retrodistill_version": "0", "config": config.model_dump()})
    shutil.copytree(eval_dir, work / "eval")
    stores = [work / "teachers" / "0-bm25.sqlite", work / "teachers" / "1-bm25.sqlite", work / "teacher_scores.sqlite"]
    fingerprints = []
    for store in stores:
        with sqlite3.connect(store) as con:
            fingerprints.append(con.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0])
    assert len(set(fingerprints)) == 3

    out = tmp_path / "page.html"
    assert main(["-q", "report", str(work), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    rows = [row for row in text.split("<tr>") if "<code>" in row]
    expected = zip(["bm25", "bm25,k1=1.5,b=0.75", "ensemble of 2"], fingerprints, stores, strict=True)
    assert len(rows) == 3
    for row, (spec, fingerprint, store) in zip(rows, expected, strict=True):
        assert row.startswith(f"<td>{spec}</td>") and f"<code>{fingerprint}</code>" in row and str(store) in row
