"""``retrodistill train CONFIG``: train a student from stored teacher scores (or qrels alone)."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
config keys (JSON or YAML; unknown keys are rejected), e.g. eval/configs/students/scifact-kl.json:
  {"dataset": "beir/scifact/train", "store": "stores/scifact-ce.sqlite", "loss": {"kl": 1.0},
   "group_size": 8, "batch_size": 16, "epochs": 1, "lr": 2e-5, "eval_dataset": "beir/scifact/test",
   "output": "students/scifact-kl"}
without "store", the student is fine-tuned on the train qrels with in-batch InfoNCE (the supervised baseline).
a killed run resumes from its last checkpoint when started again with the same config.
data-parallel (bi-encoder students): torchrun --nproc_per_node=N -m retrodistill.cli.main train CONFIG
  (gloo on CPUs, NCCL on GPUs; batch_size stays the global batch; in-batch negatives span all ranks).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a bi-encoder or ColBERT student from teacher scores",
        description="Train a student (sentence-transformers bi-encoder or ColBERT) from a score store, "
        "with checkpoints, resume, a JSON log, a training-curve PNG and a final evaluation.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", type=Path, help="JSON or YAML training config")
    p.add_argument("--output", "-o", help="override the config's output folder")
    p.add_argument("--max-steps", type=int, help="override the number of steps")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retrodistill.cli.configfile import load_config_file
    from retrodistill.training import train_student
    from retrodistill.training.config import StudentConfig
    from retrodistill.training.distributed import is_main_process

    values = load_config_file(args.config)
    if args.output:
        values["output"] = args.output
    if args.max_steps:
        values["max_steps"] = args.max_steps
    config = StudentConfig(**values)
    result = train_student(config, show_progress=not args.quiet)
    if not is_main_process():
        return 0
    console = Console()
    console.print(f"student saved to {result.model_dir} after {result.steps} steps")
    for name, value in result.metrics.items():
        console.print(f"  {name}: {value:.4f}")
    return 0
