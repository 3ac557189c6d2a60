"""Data-parallel student training under torchrun (2 CPU processes, gloo) on a SciFact slice: the ranks end
with identical weights, in-batch negatives span both ranks, a killed run resumes, the global batch is kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from retrodistill.errors import ConfigError
from retrodistill.training.distributed import per_process_batch
from retrodistill.training.objective import mix_losses

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_gathered_in_batch_loss_of_each_rank_averages_to_the_one_process_loss():
    """Two ranks of B queries each, the passages of both gathered: rank r's InfoNCE with offset r*B*G, averaged
    over the ranks, is the InfoNCE of one process holding the whole batch (what DDP's mean optimises)."""
    gen = torch.Generator().manual_seed(0)
    batch, group, dim = 3, 4, 8
    queries = torch.nn.functional.normalize(torch.randn(2 * batch, dim, generator=gen), dim=-1)
    docs = torch.nn.functional.normalize(torch.randn(2 * batch, group, dim, generator=gen), dim=-1)
    teacher = torch.randn(2 * batch, group, generator=gen)
    flat = docs.reshape(2 * batch * group, dim)
    whole, _ = mix_losses(
        torch.einsum("bd,bgd->bg", queries, docs), teacher, {"infonce": 1.0}, in_batch=queries @ flat.T
    )
    per_rank = []
    for rank in range(2):
        rows = slice(rank * batch, (rank + 1) * batch)
        student = torch.einsum("bd,bgd->bg", queries[rows], docs[rows])
        in_batch, offset = queries[rows] @ flat.T, rank * batch * group
        value, _ = mix_losses(student, teacher[rows], {"infonce": 1.0}, in_batch=in_batch, in_batch_offset=offset)
        per_rank.append(value)
    torch.testing.assert_close(sum(per_rank) / 2, whole)


def test_the_global_batch_must_divide_by_the_processes():
    assert per_process_batch(16, 2) == 8 and per_process_batch(16, 1) == 16
    with pytest.raises(ConfigError, match="multiple of 3"):
        per_process_batch(16, 3)


def _config(tmp_path, scifact_slice, bm25_store, **extra) -> str:
    values = {
        "dataset": str(scifact_slice),
        "split": "test",
        "store": str(bm25_store),
        "loss": {"kl": 1.0, "infonce": 1.0},
        "group_size": 4,
        "batch_size": 8,
        "max_steps": 4,
        "save_steps": 2,
        "lr": 5e-5,
        "max_seq_length": 64,
        "output": str(tmp_path / "student"),
        **extra,
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(values))
    return str(path)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_torchrun_two_processes_train_identical_weights(tmp_path, scifact_slice, bm25_store):
    config = _config(tmp_path, scifact_slice, bm25_store)
    done = subprocess.run(
        [*TORCHRUN, "-m", "retrodistill.cli.main", "-q", "train", config],
        capture_output=True, text=True, env=_env(), timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "student" / "train_log.json").read_text())
    agreement = record["data_parallel"]
    assert agreement["world_size"] == 2 and agreement["identical"], agreement
    steps = [h["step"] for h in record["log_history"] if "loss" in h]
    assert steps and max(steps) == 4
    assert (tmp_path / "student" / "model" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "student" / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_torchrun_run_killed_after_a_checkpoint_resumes(tmp_path, scifact_slice, bm25_store):
    config = _config(tmp_path, scifact_slice, bm25_store, max_steps=6)
    command = [*TORCHRUN, "-m", "retrodistill.cli.main", "train", config]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    first = subprocess.Popen(command, env=_env(), start_new_session=True, **quiet)
    checkpoint = tmp_path / "student" / "checkpoints" / "checkpoint-2"
    deadline = time.time() + 600
    while first.poll() is None and time.time() < deadline and not (checkpoint / "trainer_state.json").is_file():
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert (checkpoint / "trainer_state.json").is_file(), "no checkpoint before the kill"
    assert not (tmp_path / "student" / "model").exists()

    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr and "checkpoint-" in again.stderr
    record = json.loads((tmp_path / "student" / "train_log.json").read_text())
    assert max(h["step"] for h in record["log_history"] if "loss" in h) == 6
    assert record["data_parallel"]["identical"]
