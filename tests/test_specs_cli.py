"""Every spec a command takes is checked before any work: one line, exit 2, nothing written, no model loaded.

Each bad spec is one of three kinds: an unknown kind, an unknown option, or a bad option value. Models
are pointed at paths that do not exist, so a command that loaded one before checking its specs would
fail with a different message ("cannot load ..."), not with the spec error asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retrodistill.data.load import load_dataset
from retrodistill.data.trec import write_run
from retrodistill.eval.measures import evaluate

NO_MODEL = "/nonexistent/retrodistill-model"
BAD_SOURCES = [
    ("bm42", "unknown retriever 'bm42'; choose one of: bm25s"),
    ("bm25s,k3=1", "unknown option 'k3' for bm25s; it takes: k1, b"),
    ("bm25s,k1=abc", "bad value k1='abc' for bm25s: input should be a valid number"),
]


def _fails(*args: str, message: str, untouched: list[Path]) -> str:
    """Run the CLI; it must exit 2 with exactly one stderr line, the error, and leave ``untouched`` absent."""
    result = subprocess.run(
        [sys.executable, "-m", "retrodistill.cli.main", *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("retrodistill: error: "), result.stderr[-2000:]
    assert message in lines[0], lines[0]
    assert "cannot load" not in lines[0]
    for path in untouched:
        assert not path.exists(), f"{path} was written"
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        *BAD_SOURCES,
        (f"dense:{NO_MODEL},batch_size=many", "bad value batch_size='many' for dense: input should be a valid integer"),
    ],
)
def test_eval_system(scifact_slice, tmp_path, spec, message):
    out = tmp_path / "out"
    _fails("eval", "-d", str(scifact_slice), "-s", spec, "-o", str(out), message=message, untouched=[out])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "mono:x",
            "unknown re-ranker 'mono'; choose one of: dense, colbert, cross-encoder, bi-encoder, bm25, llm, run",
        ),
        (f"cross-encoder:{NO_MODEL},foo=1", "unknown option 'foo' for cross-encoder"),
        (f"llm:{NO_MODEL},mode=yesno,chat=maybe", "bad value chat='maybe' for llm: input should be a valid boolean"),
        (f"llm:{NO_MODEL},mode=pairs", "bad value mode='pairs' for llm: input should be 'ql', 'yesno', 'prp'"),
    ],
)
def test_eval_reranking_system(scifact_slice, tmp_path, spec, message):
    out = tmp_path / "out"
    args = ("eval", "-d", str(scifact_slice), "--candidates", "bm25s", "-s", spec, "-o", str(out))
    _fails(*args, message=message, untouched=[out])


@pytest.mark.parametrize(("source", "message"), BAD_SOURCES)
def test_eval_candidates(scifact_slice, tmp_path, source, message):
    out = tmp_path / "out"
    args = ("eval", "-d", str(scifact_slice), "--candidates", source, "-s", f"dense:{NO_MODEL}", "-o", str(out))
    line = _fails(*args, message=message, untouched=[out])
    assert "candidates: " in line


def _teach(dataset: Path, store: Path, teacher: str, *extra: str) -> tuple[str, ...]:
    return ("teach", "--teacher", teacher, "--store", str(store), "--dataset", str(dataset), *extra)


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ("mono:x", "unknown teacher 'mono'; choose one of: cross-encoder, bi-encoder, bm25, llm"),
        (f"cross-encoder:{NO_MODEL},foo=1", "unknown option 'foo' for cross-encoder; it takes: batch_size"),
        (f"cross-encoder:{NO_MODEL},batch_size=abc", "bad value batch_size='abc' for cross-encoder"),
        (f"llm:{NO_MODEL},sytem=be brief", "unknown option 'sytem' for llm"),
        (f"llm:{NO_MODEL},max_passage_tokens=2", "max_passage_tokens=2 for llm: input should be greater than or equal"),
    ],
)
def test_teach_teacher(scifact_slice, tmp_path, teacher, message):
    store = tmp_path / "s.sqlite"
    _fails(*_teach(scifact_slice, store, teacher), message=message, untouched=[store, Path(f"{store}.json")])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        *((("--candidates", source), message) for source, message in BAD_SOURCES),
        (("--candidates", "bm25s", "--candidates", "bm25s,k3=1"), "unknown option 'k3' for bm25s"),
        (("--candidates", "runs/missing.trec"), "runs/missing.trec: no such run file, nor a retriever spec"),
        (("--depth", "0"), "--depth must be >= 1"),
        (("--max-queries", "0"), "--max-queries must be >= 1"),
    ],
)
def test_teach_candidates_and_counts(scifact_slice, tmp_path, extra, message):
    store = tmp_path / "s.sqlite"
    args = _teach(scifact_slice, store, f"cross-encoder:{NO_MODEL}", *extra)
    _fails(*args, message=message, untouched=[store, Path(f"{store}.json")])


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("/nonexistent/beir-folder", "folder not found"),
        ("beir/scifactx/test", "unknown ir_datasets id 'beir/scifactx/test'"),
    ],
)
def test_teach_dataset(tmp_path, dataset, message):
    store = tmp_path / "s.sqlite"
    _fails(*_teach(Path(dataset), store, f"cross-encoder:{NO_MODEL}"), message=message, untouched=[store])


def test_teach_dataset_split(scifact_slice, tmp_path):
    store = tmp_path / "s.sqlite"
    args = _teach(scifact_slice, store, f"cross-encoder:{NO_MODEL}", "--split", "dev")
    _fails(*args, message="no qrels for split 'dev'; available splits: test", untouched=[store])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        *(({"eval_candidates": source}, f"eval_candidates: {message}") for source, message in BAD_SOURCES),
        ({"loss": {"kll": 1.0}}, "loss: Value error, unknown loss 'kll'; choose from"),
        ({"model": NO_MODEL}, f"model: model folder {NO_MODEL} not found"),
    ],
)
def test_train_config(scifact_slice, tmp_path, keys, message):
    out = tmp_path / "student"
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"dataset": str(scifact_slice), "split": "test", "output": str(out), **keys}))
    _fails("train", str(config), message=f"invalid configuration: {message}", untouched=[out])


@pytest.mark.parametrize(("source", "message"), BAD_SOURCES)
def test_teacher_train_negatives_from(scifact_slice, tmp_path, source, message):
    out = tmp_path / "ce"
    args = ("teacher", "train", "-d", str(scifact_slice), "--split", "test", "-o", str(out))
    args += ("--base-model", NO_MODEL, "--negatives-from", source)
    _fails(*args, message=f"invalid configuration: negatives_from: {message}", untouched=[out])


def _distill_config(tmp_path: Path, dataset: Path, **keys: object) -> Path:
    config = {
        "train_dataset": str(dataset),
        "train_split": "test",
        "eval_dataset": str(dataset),
        "teacher": f"cross-encoder:{NO_MODEL}",
        "work_dir": str(tmp_path / "work"),
        **keys,
    }
    path = tmp_path / "distill.json"
    path.write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"teacher": "mono:x"}, "teacher: unknown teacher 'mono'"),
        ({"teacher": f"cross-encoder:{NO_MODEL},foo=1"}, "teacher: unknown option 'foo' for cross-encoder"),
        ({"teacher": f"llm:{NO_MODEL},mode=listwise,stride=x"}, "teacher: bad value stride='x' for llm"),
        ({"teacher": f"llm:{NO_MODEL},mode=prp,template={{query}} {{passage_a}}"}, "lacks {passage_b}"),
        *(({"candidates": ["bm25s", source]}, f"candidates: {message}") for source, message in BAD_SOURCES),
        ({"student": {"studnet": "colbert"}}, "invalid configuration: student.studnet: Extra inputs are not"),
        ({"student": {"loss": {"kll": 1.0}}}, "invalid configuration: student.loss: Value error, unknown loss"),
        ({"student": {"eval_candidates": "bm25s,k3=1"}}, "student.eval_candidates: unknown option 'k3' for bm25s"),
        ({"student": {"model": NO_MODEL}}, f"student.model: model folder {NO_MODEL} not found"),
        ({"eval_split": "dev"}, "no qrels for split 'dev'"),
    ],
)
def test_distill_checks_the_whole_chain_first(scifact_slice, tmp_path, keys, message):
    config = _distill_config(tmp_path, scifact_slice, **keys)
    _fails("distill", str(config), message=message, untouched=[tmp_path / "work"])


def test_index_build_unknown_type(scifact_slice, tmp_path):
    out = tmp_path / "index"
    args = ("index", "build", "--corpus", str(scifact_slice), "--model", NO_MODEL, "--index", "hnswx", "-o", str(out))
    _fails(*args, message="unknown index type 'hnswx'; choose one of: flat", untouched=[out])


def test_distill_plan_accepts_llm_prompt_options_and_binds_every_row(scifact_slice, tmp_path):
    """Options of the LLM prompt (system=, chat=) pass the up-front check and reach the table's teacher row."""
    from retrodistill.pipeline import DistillConfig, plan_distill

    work = tmp_path / "run,with,commas"
    config = DistillConfig(
        train_dataset=str(scifact_slice),
        train_split="test",
        eval_dataset=str(scifact_slice),
        teacher=f"llm:{NO_MODEL},mode=yesno,system=Be brief.,chat=true",
        student={"student": "colbert"},
        work_dir=str(work),
    )
    plan = plan_distill(config)
    assert not work.exists()
    assert plan.teacher.config.system == "Be brief." and plan.teacher.config.chat is True
    retrieval, rerank = plan.comparison
    assert [s if isinstance(s, str) else s.name for s in retrieval.systems] == ["bm25s"]
    teacher, init, student = rerank.systems
    assert teacher.label == "teacher" and teacher.arg == NO_MODEL
    store = str(work / "teacher_eval_scores.sqlite")
    assert teacher.options == {"mode": "yesno", "system": "Be brief.", "chat": True, "store": store}
    assert student.kind == "colbert" and student.arg == str(work / "student" / "model")
    assert init.label == "colbert-init" and rerank.candidates == "bm25s"
    assert init.options == {"seed": plan.student.seed}  # the student's own start, not a seed-0 projection


def test_comparison_rows_keep_paths_with_commas(scifact_slice, tmp_path):
    """A work folder with commas stays one path in every row, and such a row evaluates."""
    from retrodistill.eval.config import EvalConfig
    from retrodistill.eval.harness import run_evaluation
    from retrodistill.pipeline import DistillConfig, comparison_configs
    from retrodistill.specs import SystemSpec
    from retrodistill.training.config import StudentConfig

    work = tmp_path / "a,b=c"
    config = DistillConfig(
        train_dataset=str(scifact_slice),
        eval_dataset=str(scifact_slice),
        teacher=f"cross-encoder:{NO_MODEL},max_length=64",
        work_dir=str(work),
    )
    student = StudentConfig(dataset=str(scifact_slice), output=str(work / "student"))
    retrieval, rerank = comparison_configs(config, [(student, work / "student" / "model")], work)
    assert retrieval.systems[-1].arg == str(work / "student" / "model")
    assert rerank.systems[0].options == {"max_length": 64, "store": str(work / "teacher_eval_scores.sqlite")}
    assert json.loads(retrieval.model_dump_json())["systems"][-1].startswith("dense:")

    data = load_dataset(str(scifact_slice), "test")
    run = {q: {d: 1.0 / rank for rank, d in enumerate(sorted(data.corpus)[:20], start=1)} for q in data.qrels}
    work.mkdir()
    write_run(run, work / "x.trec", "x")
    report = run_evaluation(
        EvalConfig(dataset=str(scifact_slice), systems=[SystemSpec("run", str(work / "x.trec"), label="x")]),
        show_progress=False,
    )
    assert report.results[0].name == "x"
    expected = evaluate(run, data.qrels, report.config.measures).aggregate
    assert report.results[0].evaluation.aggregate == pytest.approx(expected)
