"""The CLI as users run it: a subprocess, exit codes, one-line errors, files on disk."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from retrodistill.data.load import load_dataset
from retrodistill.data.rankllm import load_rerank_task
from retrodistill.data.trec import read_run, write_run
from retrodistill.eval.measures import evaluate
from retrodistill.teachers.records import ScoredPair, TeacherSpec
from retrodistill.teachers.store import ScoreStore

EXE = [sys.executable, "-m", "retrodistill.cli.main"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=600)


def test_help_is_fast_and_imports_no_torch():
    code = (
        "import sys; from retrodistill.cli.main import build_parser; build_parser().format_help();"
        "heavy = [m for m in ('torch', 'transformers', 'faiss', 'numpy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = cli("eval", "--help")
    assert result.returncode == 0 and "--system" in result.stdout and "dense:MODEL" in result.stdout


def test_eval_writes_run_metrics_config_and_plot(scifact_slice, tmp_path):
    ds = load_dataset(str(scifact_slice))
    given = {q: {d: 1.0 / (i + 1) for i, d in enumerate(docs)} for q, docs in ds.qrels.items() if int(q) % 2}
    write_run(given, tmp_path / "given.trec")
    out = tmp_path / "out"
    result = cli(
        "eval",
        "-d",
        str(scifact_slice),
        "-s",
        "bm25s",
        "-s",
        f"run:{tmp_path / 'given.trec'},label=given",
        "-m",
        "nDCG@10",
        "-m",
        "MRR@10",
        "--significance",
        "randomization",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "bm25s (baseline)" in result.stdout and "given" in result.stdout
    assert {p.name for p in out.iterdir()} == {"bm25s.trec", "given.trec", "metrics.json", "config.json", "metrics.png"}
    metrics = json.loads((out / "metrics.json").read_text())
    bm25 = next(s for s in metrics["systems"] if s["name"] == "bm25s")
    recomputed = evaluate(read_run(out / "bm25s.trec"), ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"]
    assert bm25["metrics"]["nDCG@10"] == pytest.approx(recomputed, abs=1e-6)
    given_row = next(s for s in metrics["systems"] if s["name"] == "given")
    half = sum(1 for q in ds.qrels if int(q) % 2) / len(ds.qrels)
    assert given_row["metrics"]["nDCG@10"] == pytest.approx(half)  # perfect on odd ids, 0 on the rest
    assert 0 <= given_row["p_values"]["nDCG@10"] <= 1
    config = json.loads((out / "config.json").read_text())
    assert config["retrodistill_version"] and config["config"]["significance"] == "randomization"


def test_dl19_rerank_from_cli(data_dir, tmp_path):
    dl = data_dir / "trec-dl-2019"
    result = cli(
        "eval",
        "--qrels",
        str(dl / "2019qrels-pass.txt"),
        "--queries",
        str(dl / "msmarco-test2019-queries.tsv"),
        "--candidates",
        str(dl / "rank_llm" / "BM25" / "retrieve_results_dl19.json.gz"),
        "-s",
        "dense:sentence-transformers/all-MiniLM-L6-v2",
        "-s",
        "dense:sentence-transformers/all-MiniLM-L6-v2,interpolate=0,label=w0",
        "-s",
        "dense:sentence-transformers/all-MiniLM-L6-v2,interpolate=0.25,label=mix",
        "--depth",
        "5",
        "-m",
        "nDCG@10",
        "-o",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    rows = {s["name"]: s for s in metrics["systems"]}
    assert rows["candidates"]["metrics"]["nDCG@10"] == pytest.approx(0.5058, abs=5e-4)
    reranked = read_run(tmp_path / "dense_sentence-transformers_all-MiniLM-L6-v2.trec")
    assert all(len(docs) == 100 for docs in reranked.values())  # the tail keeps its first-stage order
    assert rows["w0"]["metrics"]["nDCG@10"] == pytest.approx(0.5058, abs=5e-4)  # weight 0 = the candidates
    candidates = load_rerank_task(
        dl / "2019qrels-pass.txt", dl / "rank_llm" / "BM25" / "retrieve_results_dl19.json.gz", None
    ).candidates
    mixed = read_run(tmp_path / "mix.trec")
    for qid, docs in reranked.items():
        top = sorted(candidates[qid], key=lambda d: (-candidates[qid][d], d))[:5]
        dense, first = [docs[d] for d in top], [candidates[qid][d] for d in top]
        expected = [
            0.25 * (a - statistics.fmean(dense)) / statistics.pstdev(dense)
            + 0.75 * (b - statistics.fmean(first)) / statistics.pstdev(first)
            for a, b in zip(dense, first, strict=True)
        ]
        assert [mixed[qid][d] for d in top] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "bm42"], "unknown retriever 'bm42'; choose one of: bm25s, pyserini, dense"),
        (["-s", "bm25s,k3=1"], "unknown option 'k3' for bm25s; it takes: k1, b, method"),
        (["-s", "dense"], "dense needs a model: write dense:MODEL_ID_OR_PATH"),
        (["-s", "index"], "index needs an index directory: write index:DIR"),
        (["-s", "bm25s", "-m", "nDCG@ten"], "unknown measure 'nDCG@ten'"),
        (["-s", "bm25s", "--baseline", "bm26"], "baseline 'bm26' is not among the systems"),
        (["-s", "bm25s", "-s", "bm25s"], "two systems are named 'bm25s'"),
        (["-s", "bm25s", "--split", "dev"], "no qrels for split 'dev'; available splits: test"),
        (["-s", "bm25s,interpolate=0.5"], "interpolate= mixes a re-ranker with its candidates; bm25s re-ranks nothing"),
        (["--candidates", "bm25s", "-s", "dense:m,interpolate=2"], "interpolate=2 for dense:m: give a weight"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(scifact_slice, tmp_path, args, message):
    result = cli("eval", "-d", str(scifact_slice), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("retrodistill: error: ") and message in lines[-1], result.stderr
    assert not (tmp_path / "out").exists()


def test_config_file_rejects_unknown_keys(scifact_slice, tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"dataset": str(scifact_slice), "systems": ["bm25s"], "topk": 10}))
    result = cli("eval", "--config", str(path))
    assert result.returncode == 2
    assert "invalid configuration: topk: Extra inputs are not permitted" in result.stderr
    path.write_text("{not json")
    assert "cannot parse config" in cli("eval", "--config", str(path)).stderr


def test_missing_dataset(tmp_path):
    result = cli("eval", "-d", str(tmp_path / "nope"), "-s", "bm25s")
    assert result.returncode == 2 and "folder not found" in result.stderr


def test_teacher_train_refuses_distill_options_without_distill(scifact_slice, tmp_path):
    out = tmp_path / "ce"
    base = ("teacher", "train", "-d", str(scifact_slice), "--split", "test", "-o", str(out))
    result = cli(*base, "--label-boost", "1")
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("retrodistill: error: invalid configuration") and "set loss to distill" in line
    result = cli(
        *base, "--loss", "distill", "--teacher-store", str(tmp_path / "none.sqlite"), "--teacher-interpolate", "2"
    )
    assert result.returncode == 2 and "teacher_interpolate: Input should be less than or equal to 1" in result.stderr
    other = tmp_path / "other.sqlite"
    spec = TeacherSpec("bm25s", "bm25s", "0.3", "pointwise", "bm25")
    with ScoreStore(other, spec) as store:
        store.add([ScoredPair("not-a-query", "a", 1.0), ScoredPair("not-a-query", "b", 0.5)])
    before = other.read_bytes()
    result = cli(*base, "--loss", "distill", "--teacher-store", str(other))
    assert result.returncode == 2
    assert "holds no query of" in result.stderr.strip().splitlines()[-1], result.stderr
    assert other.read_bytes() == before
    assert not out.exists()
