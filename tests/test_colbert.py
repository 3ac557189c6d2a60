"""The ColBERT student: MaxSim against numpy, save/load, query augmentation, resumable training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from retrodistill.students.colbert import ColBERT, maxsim, maxsim_numpy
from retrodistill.training import train_student
from retrodistill.training.config import StudentConfig

QUERIES = ["vitamin d and bone density", "does smoking cause lung cancer"]
PASSAGES = [
    "Vitamin D supplementation improved bone mineral density in elderly women.",
    "Cigarette smoking is the leading cause of lung cancer worldwide, cohort studies show.",
    "The weather in Paris is mild.",
]


@pytest.fixture(scope="module")
def colbert():
    torch.manual_seed(0)
    return ColBERT("sentence-transformers/all-MiniLM-L6-v2", dim=64, doc_maxlen=64).eval()


def test_shapes_norms_and_query_augmentation(colbert):
    q = colbert.encode_queries(QUERIES)
    assert q.shape == (2, 32, 64) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-5)
    p = colbert.encode_passages(PASSAGES)
    assert [v.shape[1] for v in p] == [64, 64, 64]
    assert p[2].shape[0] < p[1].shape[0]  # padding removed, each passage its own length
    ids = colbert.tokenize(QUERIES, is_query=True)["input_ids"]
    assert (ids[:, 1] == colbert.query_marker_id).all() and (ids == colbert.tokenizer.mask_token_id).any()


def test_maxsim_torch_equals_numpy(colbert):
    q = colbert.encode_queries(QUERIES)
    p = colbert.encode_passages(PASSAGES)
    longest = max(v.shape[0] for v in p)
    docs = np.zeros((1, 3, longest, 64), np.float32)
    mask = np.zeros((1, 3, longest), bool)
    for i, v in enumerate(p):
        docs[0, i, : len(v)] = v
        mask[0, i, : len(v)] = True
    for qi in range(2):
        torch_scores = maxsim(torch.from_numpy(q[qi : qi + 1]), torch.from_numpy(docs), torch.from_numpy(mask))[0]
        by_hand = [sum(max(float(a @ b) for b in v) for a in q[qi]) for v in p]
        np.testing.assert_allclose(torch_scores.numpy(), by_hand, rtol=1e-5)
        np.testing.assert_allclose([maxsim_numpy(q[qi], v) for v in p], by_hand, rtol=1e-5)


def test_save_load_roundtrip(colbert, tmp_path):
    colbert.save(tmp_path / "m")
    again = ColBERT.load(tmp_path / "m").eval()
    np.testing.assert_allclose(again.encode_queries(QUERIES), colbert.encode_queries(QUERIES), atol=1e-6)
    assert again.config_dict == colbert.config_dict


def test_fresh_projection_depends_on_its_seed_only(colbert):
    torch.manual_seed(123)  # the global RNG must not matter
    same = ColBERT("sentence-transformers/all-MiniLM-L6-v2", dim=64, doc_maxlen=64)
    other = ColBERT("sentence-transformers/all-MiniLM-L6-v2", dim=64, doc_maxlen=64, seed=1)
    assert torch.equal(same.projection.weight, colbert.projection.weight)
    assert not torch.equal(other.projection.weight, colbert.projection.weight)
    bound = 1 / np.sqrt(same.encoder.config.hidden_size)  # nn.Linear's kaiming-uniform bound
    assert float(same.projection.weight.detach().abs().max()) <= bound


def test_init_row_reranks_with_the_projection_training_starts_from():
    from retrodistill.eval.systems import bind_system
    from retrodistill.specs import parse_spec

    backbone = "sentence-transformers/all-MiniLM-L6-v2"
    start = ColBERT.load(backbone, seed=42).projection.weight  # train_colbert's start for seed 42
    row = bind_system(parse_spec(f"colbert:{backbone},seed=42"), rerank_mode=True).build()
    assert torch.equal(row.model.projection.weight, start)
    unseeded = bind_system(parse_spec(f"colbert:{backbone}"), rerank_mode=True).build()
    assert not torch.equal(unseeded.model.projection.weight, start)


def test_identity_start_keeps_the_backbones_token_vectors(colbert, scifact_slice, tmp_path):
    from retrodistill.errors import ConfigError
    from retrodistill.eval.systems import bind_system
    from retrodistill.specs import parse_spec
    from retrodistill.training.config import StudentConfig

    backbone = "sentence-transformers/all-MiniLM-L6-v2"
    row = bind_system(parse_spec(f"colbert:{backbone},dim=384,init=identity"), rerank_mode=True).build()
    model = row.model
    assert torch.equal(model.projection.weight, torch.eye(384))
    batch = model.tokenize(QUERIES, is_query=True)
    with torch.no_grad():
        vectors, _ = model(batch)
        hidden = model.encoder(**batch).last_hidden_state
    torch.testing.assert_close(vectors, torch.nn.functional.normalize(hidden, dim=-1), atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="hidden size 384, not 128"):
        ColBERT(backbone, dim=128, init="identity")
    assert StudentConfig(student="colbert", colbert_dim=384, colbert_init="identity", dataset="d", output="o")
    with pytest.raises(ValueError, match="apply to student colbert only"):
        StudentConfig(colbert_dim=384, dataset="d", output="o")

    from retrodistill.pipeline import DistillConfig, plan_distill

    work = tmp_path / "work"
    student = {"student": "colbert", "colbert_init": "identity", "colbert_dim": 128}
    config = DistillConfig(
        train_dataset=str(scifact_slice), train_split="test", teacher="bm25", student=student, work_dir=str(work)
    )
    with pytest.raises(ConfigError, match="hidden size 384, not 128; set colbert_dim 384"):
        plan_distill(config)  # refused before any stage runs, nothing written
    assert not work.exists()


TRAIN = "import sys; from retrodistill.cli.main import main; sys.exit(main(['-q', 'train', sys.argv[1]]))"


def test_colbert_training_resumes_after_kill(scifact_slice, tmp_path, request):
    store = request.getfixturevalue("bm25_store")
    values = dict(
        student="colbert",
        dataset=str(scifact_slice),
        split="test",
        store=str(store),
        group_size=3,
        batch_size=2,
        max_steps=6,
        save_steps=2,
        max_seq_length=48,
        loss={"kl": 1.0, "infonce": 0.5},
        lr=5e-5,
    )
    straight = train_student(StudentConfig(**values, output=str(tmp_path / "a")), show_progress=False)
    cfg = tmp_path / "b.json"
    cfg.write_text(json.dumps({**values, "output": str(tmp_path / "b")}))
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(cfg)], env=os.environ)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "b" / "checkpoints" / "step-2").is_dir():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "b" / "model").exists(), "the kill should land before the end"
    done = subprocess.run([sys.executable, "-c", TRAIN, str(cfg)], env=os.environ, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    a = ColBERT.load(straight.model_dir).eval().encode_queries(QUERIES)
    b = ColBERT.load(tmp_path / "b" / "model").eval().encode_queries(QUERIES)
    np.testing.assert_allclose(a, b, atol=1e-5)
    history = json.loads((tmp_path / "b" / "train_log.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == list(range(1, 7))


def test_checkpoints_are_whole_folders_the_last_two_kept(tmp_path):
    from retrodistill.training.checkpoint import Checkpoints, write_dir

    model = tmp_path / "model"
    write_dir(model, lambda f: (f / "weights").write_text("old"))

    def half_written(folder):
        (folder / "weights").write_text("new, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dir(model, half_written)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temp folder left, the old model whole
    assert (model / "weights").read_text() == "old"

    ckpts = Checkpoints(tmp_path / "checkpoints")
    assert ckpts.last() is None
    for step in (1, 2, 3):
        ckpts.save(step, {"w": torch.full((2,), float(step)), "step": step}, [{"step": step}], lambda f: None)
    (tmp_path / "checkpoints" / ".step-4.tmp-killed").mkdir()  # what a kill during a save leaves
    assert [s for s, _ in ckpts.steps()] == [2, 3]
    step, path = ckpts.last()
    state, history = Checkpoints.load(path)
    assert step == 3 and torch.equal(state["w"], torch.full((2,), 3.0)) and history == [{"step": 3}]
    ckpts.save(4, {"step": 4}, [], lambda f: None)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-3", "step-4"]
