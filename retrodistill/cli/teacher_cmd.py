"""``retrodistill teacher train``: fine-tune a cross-encoder teacher (resumes after a kill)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teacher",
        help="train a cross-encoder teacher",
        description="Manage teachers. `teacher train` fine-tunes a cross-encoder on a dataset's train qrels "
        "(groupwise softmax over hard negatives) or on another teacher's stored scores.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    t = actions.add_parser(
        "train",
        help="fine-tune a cross-encoder teacher",
        description="Fine-tune a CrossEncoder; re-running with the same --output resumes from its last checkpoint.",
    )
    t.add_argument("--config", help="JSON/YAML file with TrainConfig fields; flags given here override it")
    t.add_argument("--dataset", "-d", help="ir_datasets id or BEIR folder (qrels of --split)")
    t.add_argument("--split", help="training qrels split (default train)")
    t.add_argument("--eval-split", help="split to evaluate re-ranking on (default test; 'none' to skip)")
    t.add_argument("--output", "-o", help="output folder (model/, checkpoints/, log.json, curve.png, summary.json)")
    t.add_argument("--base-model", help="initial model (default sentence-transformers/all-MiniLM-L6-v2)")
    t.add_argument("--loss", choices=["groupwise", "distill"], help="qrels groups, or distill from --teacher-store")
    t.add_argument("--teacher-store", help="score store of another teacher to learn from (loss distill)")
    t.add_argument("--teacher-interpolate", type=float, help="loss distill: learn W*z(teacher) + (1-W)*z(bm25s) (0..1)")
    t.add_argument("--label-boost", type=float, help="loss distill: add B x qrel grade to judged candidates")
    t.add_argument("--negatives", type=int, help="hard negatives per group (default 7)")
    t.add_argument("--negatives-from", help="retriever spec mining negatives (default bm25s; e.g. dense:MODEL)")
    t.add_argument("--negatives-depth", type=int, help="mine negatives from this top-k (default 30)")
    t.add_argument("--queries-per-step", type=int, help="groups per optimizer step (default 4)")
    t.add_argument("--max-queries", type=int, help="train on a random subset of queries")
    t.add_argument("--epochs", type=float, help="passes over the training queries (default 2)")
    t.add_argument("--max-steps", type=int, help="stop after this many steps (overrides --epochs)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 7e-5)")
    t.add_argument("--head-lr", type=float, help="lr of the new classifier head (default 2e-3)")
    t.add_argument("--max-length", type=int, help="tokens per (query, passage) pair (default 192)")
    t.add_argument("--seed", type=int)
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 25)")
    t.add_argument("--eval-depth", type=int, help="re-rank the first-stage top-k at evaluation (default 100)")
    t.add_argument("--eval-queries", type=int, help="evaluate on the first N test queries only")
    t.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from retrodistill.cli.configfile import load_config_file, with_flags
    from retrodistill.training.teacher import TrainConfig, train

    base = with_flags(load_config_file(Path(args.config)) if args.config else {}, args, TrainConfig)
    if base.get("eval_split") == "none":
        base["eval_split"] = None
    summary = train(TrainConfig(**base), show_progress=not args.quiet)
    print(json.dumps(summary, indent=2, default=str))
    return 0
