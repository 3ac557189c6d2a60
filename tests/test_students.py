"""Student training on a real SciFact slice with a real (BM25) teacher store: resume, loading, bad configs."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
from pydantic import ValidationError

from retrodistill.errors import ConfigError
from retrodistill.teachers.records import ScoredPair, TeacherSpec
from retrodistill.teachers.store import ScoreStore
from retrodistill.training import train_student
from retrodistill.training.common import prepare
from retrodistill.training.config import StudentConfig

TEXTS = ["coronary heart disease risk", "Vitamin D deficiency is common in elderly patients."]


def _config(scifact_slice, store, output, **over):
    values = dict(
        dataset=str(scifact_slice),
        split="test",
        store=str(store),
        group_size=4,
        batch_size=4,
        max_steps=8,
        save_steps=3,
        max_seq_length=32,
        loss={"kl": 1.0, "infonce": 0.1},
        lr=5e-5,
        output=str(output),
    )
    values.update(over)
    return values


def test_bad_configs_fail_before_training(scifact_slice, bm25_store, tmp_path):
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a"), learning_rate=1e-3)
    with pytest.raises(ValidationError, match="unknown loss 'listnet'"):
        StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a", loss={"listnet": 1.0}))
    with pytest.raises(ConfigError, match="not found; create it with `retrodistill teach`"):
        prepare(StudentConfig(**_config(scifact_slice, tmp_path / "nope.sqlite", tmp_path / "a")))
    with pytest.raises(ConfigError, match="group_size 20 needs 19 scored negatives"):
        prepare(StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a", group_size=20)))
    other = tmp_path / "other.sqlite"
    with ScoreStore(other, TeacherSpec("bm25s", "bm25s", "0.3", "pointwise", "bm25")) as store:
        store.add([ScoredPair("not-a-query", "d", 1.0)])
    with pytest.raises(ConfigError, match="holds no query of"):
        prepare(StudentConfig(**_config(scifact_slice, other, tmp_path / "a")))
    assert not (tmp_path / "a").exists()


def test_teacher_interpolated_with_bm25_is_z_scored_per_query(scifact_slice, bm25_store, tmp_path):
    # The fixture's teacher is bm25s itself, so any mix W * z(teacher) + (1 - W) * z(bm25s) is z(bm25s).
    config = StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a", teacher_interpolate=0.3))
    dataset, examples = prepare(config)
    with ScoreStore.open(bm25_store) as store:
        stored = store.run()
    assert len(examples) > 20
    for example in examples:
        docs = stored[example.qid]
        mean, sd = statistics.fmean(docs.values()), statistics.pstdev(docs.values())
        z_by_text = {dataset.corpus[d].full_text(): (v - mean) / sd for d, v in docs.items()}
        assert list(example.scores) == pytest.approx([z_by_text[p] for p in example.passages], abs=1e-9)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a", teacher_interpolate=1.5))


def test_output_folder_of_another_config_is_refused(scifact_slice, bm25_store, tmp_path):
    config = StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a"))
    (tmp_path / "a").mkdir()
    older = {k: v for k, v in config.model_dump().items() if k != "teacher_interpolate"}  # before the key existed
    (tmp_path / "a" / "config.json").write_text(json.dumps({"config": older}))
    prepare(config)
    # Switching activation checkpointing leaves the weights as they are, so the run may resume with it flipped.
    (tmp_path / "a" / "config.json").write_text(json.dumps({"config": {**older, "activation_checkpointing": True}}))
    prepare(config)
    (tmp_path / "a" / "config.json").write_text(json.dumps({"config": {**older, "lr": 1e-3}}))
    with pytest.raises(ConfigError, match="holds a training run with a different config"):
        prepare(config)


TRAIN = "import sys; from retrodistill.cli.main import main; sys.exit(main(['-q', 'train', sys.argv[1]]))"


def test_kill_and_resume_matches_uninterrupted(scifact_slice, bm25_store, tmp_path):
    from sentence_transformers import SentenceTransformer

    straight = train_student(StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "straight")), False)
    assert straight.steps == 8
    cfg = tmp_path / "resume.json"
    cfg.write_text(json.dumps(_config(scifact_slice, bm25_store, tmp_path / "resumed")))
    ckpt = tmp_path / "resumed" / "checkpoints" / "checkpoint-3"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(cfg)], env=os.environ)
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpt / "trainer_state.json").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ckpt / "trainer_state.json").is_file()
    assert not (tmp_path / "resumed" / "model").exists(), "the kill should land before the end"
    result = subprocess.run([sys.executable, "-c", TRAIN, str(cfg)], env=os.environ, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    a = SentenceTransformer(str(straight.model_dir)).encode(TEXTS)
    b = SentenceTransformer(str(tmp_path / "resumed" / "model")).encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    log = json.loads((tmp_path / "resumed" / "train_log.json").read_text())["log_history"]
    assert any("loss" in h for h in log) and (tmp_path / "resumed" / "training_curve.png").stat().st_size > 1000


def test_saved_student_loads_in_plain_sentence_transformers(scifact_slice, bm25_store, tmp_path):
    from sentence_transformers import SentenceTransformer

    from retrodistill.students.bi_encoder import BiEncoder

    result = train_student(StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "s", max_steps=2)), False)
    plain = SentenceTransformer(str(result.model_dir)).encode(TEXTS, normalize_embeddings=True)
    ours = BiEncoder(str(result.model_dir)).encode_passages(TEXTS)
    np.testing.assert_allclose(plain, ours, atol=1e-6)
    init = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2").encode(TEXTS, normalize_embeddings=True)
    assert not np.allclose(plain, init, atol=1e-4), "training should have moved the weights"
    assert json.loads((tmp_path / "s" / "config.json").read_text())["config"]["group_size"] == 4


def _saved_bytes(backbone, features) -> int:
    """Bytes the autograd graph keeps for the backward pass of one forward (outside checkpointed regions)."""
    import torch

    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        backbone(**features).last_hidden_state.sum()
    return total


def test_activation_checkpointing_keeps_a_fraction_and_trains_the_same(scifact_slice, bm25_store, tmp_path):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer

    from retrodistill.training.common import checkpoint_activations

    name = "sentence-transformers/all-MiniLM-L6-v2"
    features = AutoTokenizer.from_pretrained(name)(TEXTS * 8, padding="max_length", max_length=64, return_tensors="pt")
    backbone = AutoModel.from_pretrained(name).train()
    full = _saved_bytes(backbone, features)
    checkpoint_activations(backbone)
    kept = _saved_bytes(backbone, features)
    # Only each of the 6 layers' input (16 x 64 x 384 floats) and what the embeddings keep remain.
    assert kept < full / 4, (kept, full)
    assert kept >= 6 * 16 * 64 * 384 * 4

    plain = train_student(StudentConfig(**_config(scifact_slice, bm25_store, tmp_path / "a", max_steps=2)), False)
    on = _config(scifact_slice, bm25_store, tmp_path / "b", max_steps=2, activation_checkpointing=True)
    checkpointed = train_student(StudentConfig(**on), False)
    a = SentenceTransformer(str(plain.model_dir)).encode(TEXTS)
    b = SentenceTransformer(str(checkpointed.model_dir)).encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_activation_checkpointing_on_a_model_without_it_is_one_clear_error():
    import torch

    from retrodistill.training.common import checkpoint_activations

    with pytest.raises(ConfigError, match="activation_checkpointing: Linear does not support it; set it to false"):
        checkpoint_activations(torch.nn.Linear(2, 2))
