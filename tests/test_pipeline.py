"""``retrodistill distill`` end to end on a real SciFact slice, and its re-use of stored work."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from retrodistill.teachers.store import ScoreStore


def _distill(cfg, capture=True):
    return subprocess.run(
        [sys.executable, "-m", "retrodistill.cli.main", "distill", str(cfg)],
        capture_output=capture,
        text=True,
        env=os.environ,
        timeout=900,
    )


def test_distill_runs_the_chain_and_reuses_work(scifact_slice, tmp_path):
    work = tmp_path / "run"
    cfg = tmp_path / "distill.json"
    cfg.write_text(
        json.dumps(
            {
                "train_dataset": str(scifact_slice),
                "train_split": "test",
                "eval_dataset": str(scifact_slice),
                "eval_split": "test",
                "teacher": "cross-encoder:sentence-transformers/all-MiniLM-L6-v2,max_length=128",
                "depth": 6,
                "max_train_queries": 8,
                "teacher_eval_depth": 10,
                "student": {
                    "group_size": 4,
                    "batch_size": 4,
                    "max_steps": 2,
                    "max_seq_length": 64,
                    "loss": {"kl": 1.0},
                },
                "work_dir": str(work),
            }
        )
    )
    first = _distill(cfg)
    assert first.returncode == 0, first.stderr[-3000:]
    for row in ("bm25s (baseline)", "init", "teacher", "student"):
        assert row in first.stdout
    with ScoreStore.open(work / "teacher_scores.sqlite") as store:
        rows = len(store)
        scored = store.run()
    assert len(scored) == 8 and rows >= 8 * 6  # 6 candidates per query plus forced positives
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    assert [s["name"] for s in metrics["systems"]] == ["bm25s", "init", "student", "teacher"]
    model_file = next((work / "student" / "model").glob("*.safetensors"))
    stamp = model_file.stat().st_mtime_ns

    second = _distill(cfg)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "every score is already in" in second.stderr
    assert "student already trained" in second.stderr
    assert model_file.stat().st_mtime_ns == stamp
    with ScoreStore.open(work / "teacher_scores.sqlite") as store:
        assert len(store) == rows


def test_distill_rejects_pipeline_owned_student_keys(scifact_slice, tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text(
        json.dumps(
            {
                "train_dataset": str(scifact_slice),
                "eval_dataset": str(scifact_slice),
                "teacher": "cross-encoder:sentence-transformers/all-MiniLM-L6-v2",
                "student": {"store": "x.sqlite"},
                "work_dir": str(tmp_path / "w"),
            }
        )
    )
    result = _distill(cfg)
    assert result.returncode == 2
    assert "student.store is set by the pipeline" in result.stderr
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("key", ["topk", "studnet"])
def test_distill_rejects_unknown_keys(scifact_slice, tmp_path, key):
    cfg = tmp_path / "bad.json"
    cfg.write_text(
        json.dumps(
            {
                "train_dataset": str(scifact_slice),
                "eval_dataset": str(scifact_slice),
                "teacher": "cross-encoder:x",
                "work_dir": str(tmp_path / "w"),
                key: 1,
            }
        )
    )
    result = _distill(cfg)
    assert result.returncode == 2 and f"{key}: Extra inputs are not permitted" in result.stderr
