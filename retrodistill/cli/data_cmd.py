"""``retrodistill data``: inspect a dataset the way ``eval`` will load it."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="show what a dataset spec loads (counts, warnings)",
        description="Load a dataset (ir_datasets id, BEIR folder, or qrels + rank_llm candidates) and print counts.",
    )
    p.add_argument("--dataset", "-d", help="ir_datasets id (beir/scifact/test) or BEIR folder")
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default test)")
    p.add_argument("--qrels", help="qrels file of a re-ranking task")
    p.add_argument("--queries", help="queries TSV of a re-ranking task")
    p.add_argument("--candidates", help="rank_llm candidate JSON of a re-ranking task")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from retrodistill.errors import ConfigError

    if args.dataset:
        from retrodistill.data.load import load_dataset

        dataset = load_dataset(args.dataset, args.split)
    elif args.qrels and args.candidates:
        from retrodistill.data.rankllm import load_rerank_task

        dataset = load_rerank_task(args.qrels, args.candidates, args.queries)
    else:
        raise ConfigError("give --dataset, or --qrels with --candidates")
    table = Table(title=dataset.name)
    table.add_column("what")
    table.add_column("count", justify="right")
    judgements = sum(len(d) for d in dataset.qrels.values())
    table.add_row("documents", str(len(dataset.corpus)))
    table.add_row("judged queries", str(len(dataset.qrels)))
    table.add_row("judgements", str(judgements))
    if dataset.candidates is not None:
        table.add_row("candidates", str(sum(len(d) for d in dataset.candidates.values())))
    for key, count in dataset.meta.get("warnings", {}).items():
        table.add_row(f"warning: {key}", str(count))
    Console().print(table)
    return 0
