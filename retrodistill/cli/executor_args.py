"""``--executor`` flags shared by the batch commands (``teach``, ``generate``, ``index build``)."""

from __future__ import annotations

import argparse
from typing import Any

from retrodistill.executors import EXECUTORS


def add_executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("executor (where the batch work runs)")
    g.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this process (default); ray: Ray Data actors (pip install 'retrodistill[ray]')",
    )
    g.add_argument("--ray-address", help="join this Ray cluster (auto or host:port); default: start Ray here")
    g.add_argument("--ray-actors", type=int, default=2, help="model-holding actors (default 2)")
    g.add_argument(
        "--ray-cpus-per-actor", type=float, default=1.0, help="CPUs per actor (fractions allowed; default 1)"
    )
    g.add_argument(
        "--ray-gpus-per-actor", type=float, default=0.0, help="GPUs per actor (fractions allowed; default 0)"
    )


def executor_from_args(args: argparse.Namespace) -> Any:
    """None for the local executor (the stages' own loop), else the executor the flags name."""
    if args.executor == "local":
        return None
    from retrodistill.executors import RayOptions, make_executor

    options = RayOptions(
        address=args.ray_address,
        actors=args.ray_actors,
        cpus_per_actor=args.ray_cpus_per_actor,
        gpus_per_actor=args.ray_gpus_per_actor,
    )
    return make_executor(args.executor, options)
