"""Data-parallel training under torchrun (or ``accelerate launch``): the launch's rank and world size, the
per-process batch, the process-group backend, and the check that every rank ends with the same weights.

``torchrun --nproc_per_node=N -m retrodistill.cli.main train CONFIG`` starts N processes; the trainer
(transformers' ``Trainer`` under sentence-transformers) joins them in one process group, shards the
training groups between them and averages gradients. The config's ``batch_size`` stays the global batch,
so a run on N processes takes the same steps as on one. Only rank 0 writes checkpoints, the model, logs
and the evaluation.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from retrodistill.errors import ConfigError


def launch() -> tuple[int, int]:
    """(rank, world size) of this process: torchrun's RANK / WORLD_SIZE, (0, 1) outside a launch."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return launch()[0] == 0


def per_process_batch(global_batch: int, world_size: int) -> int:
    """The per-process batch that keeps ``global_batch``; ConfigError when it does not divide evenly."""
    if global_batch % world_size:
        raise ConfigError(
            f"batch_size {global_batch} is the global batch and must divide by the {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return global_batch // world_size


def backend(accelerator: bool) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if accelerator else "gloo"


def weights_digest(model: Any) -> str:
    """sha256 over the model's parameters and buffers, in state-dict order."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def ranks_agree(model: Any) -> dict[str, Any]:
    """Every rank's weight digest (gathered to all ranks) and whether they are identical."""
    import torch.distributed as dist

    mine = weights_digest(model)
    if not (dist.is_available() and dist.is_initialized()):
        return {"world_size": 1, "weights_sha256": [mine], "identical": True}
    digests: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, mine)
    return {"world_size": len(digests), "weights_sha256": digests, "identical": len(set(digests)) == 1}
