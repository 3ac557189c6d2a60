"""``retrodistill distill CONFIG``: the whole chain, re-using stored work when run again."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "distill",
        help="candidates -> teacher scores -> student -> evaluation table, in one command",
        description="Run the distillation chain from one config (train_dataset, eval_dataset, teacher, "
        "candidates, depth, student{...}, work_dir). With generate{...}, train_dataset is a corpus alone and "
        "an LLM writes the training queries; teacher may be a list fused into one ensemble. Re-running "
        "re-uses the query and score stores, the trained student and cached embeddings.",
    )
    p.add_argument("config", type=Path, help="JSON or YAML distillation config")
    p.add_argument("--work-dir", help="override the config's work_dir")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from retrodistill.cli.configfile import load_config_file
    from retrodistill.eval.report import render_table
    from retrodistill.pipeline import DistillConfig, run_distill

    values = load_config_file(args.config)
    if args.work_dir:
        values["work_dir"] = args.work_dir
    config = DistillConfig(**values)
    result = run_distill(config, show_progress=not args.quiet)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    if result.report is not None:
        console.print(render_table(result.report))
    console.print(stage_table(result.stages))
    console.print(f"queries, teacher scores, student, runs and metrics in {config.work_dir}/")
    return 0


def stage_table(stages: list[dict]) -> object:
    """The time of every stage, with what it did, as a rich table."""
    from rich.table import Table

    table = Table(title="stages")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_column("peak RSS MiB", justify="right")
    table.add_column("detail")
    shown = ("stage", "seconds", "peak_rss_mib")
    for row in stages:
        detail = ", ".join(f"{k}={v}" for k, v in row.items() if k not in shown and v is not None)
        peak = row.get("peak_rss_mib")
        table.add_row(row["stage"], f"{row['seconds']:.1f}", "" if peak is None else f"{peak:.0f}", detail)
    return table
