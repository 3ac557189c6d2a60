"""``retrodistill teach``: score a dataset's candidates with a teacher into a resumable score store."""

from __future__ import annotations

import argparse
import logging

from retrodistill.cli.executor_args import add_executor_args

log = logging.getLogger("retrodistill.teach")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "teach",
        help="score candidates with a teacher into a score store (resumable)",
        description="Turn queries + candidates into stored teacher scores. Candidates come from a first stage "
        "(bm25s, dense:MODEL; several are fused by reciprocal rank), a TREC run file, or a rank_llm JSON. "
        "Re-running resumes; keys already in the store are skipped before any model is loaded.",
        epilog="teachers: cross-encoder:MODEL[,batch_size=4,max_length=256,dtype=bfloat16]; "
        "llm:MODEL,gguf_file=FILE,mode=ql|yesno|prp|listwise[,window=3,list_window=20,stride=10,batch_size=8]",
    )
    p.add_argument("--teacher", "-t", required=True, help="teacher spec, e.g. cross-encoder:models/ce-scifact")
    p.add_argument("--teacher-config", help="JSON/YAML with LLM prompt settings (mode, template, chat, ...)")
    p.add_argument("--store", "-s", required=True, help="score store file (SQLite), created or resumed")
    p.add_argument("--dataset", "-d", help="ir_datasets id (beir/scifact/train) or BEIR folder")
    p.add_argument("--split", default="test", help="qrels split of a BEIR folder (default test)")
    p.add_argument("--qrels", help="qrels file of a re-ranking task (with --candidates JSON)")
    p.add_argument("--queries", help="queries TSV of a re-ranking task")
    p.add_argument(
        "--candidates",
        "-c",
        action="append",
        help="rank_llm JSON, TREC run file, or first-stage spec (bm25s, dense:MODEL); repeatable (default bm25s)",
    )
    p.add_argument("--depth", "-k", type=int, default=100, help="candidates per query (default 100)")
    p.add_argument("--force-positives", action="store_true", help="add judged positives missing from the candidates")
    p.add_argument("--max-queries", type=int, help="only the first N judged queries")
    add_executor_args(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from retrodistill import __version__
    from retrodistill.atomic import write_json
    from retrodistill.cli.executor_args import executor_from_args
    from retrodistill.errors import ConfigError
    from retrodistill.teachers import build_teacher
    from retrodistill.teachers.store import ScoreStore
    from retrodistill.training.candidates import check_teach_data, gather_candidates, load_teach_data
    from retrodistill.training.teach import teach

    for flag, value in (("--depth", args.depth), ("--max-queries", args.max_queries)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be >= 1 (got {value})")
    defaults: dict[str, object] = {}
    if args.teacher_config:
        from retrodistill.cli.configfile import load_config_file
        from retrodistill.teachers.prompts import LLMTeacherConfig

        defaults["config"] = LLMTeacherConfig(**load_config_file(Path(args.teacher_config)))
    teacher = build_teacher(args.teacher, **defaults)
    teacher.executor = executor_from_args(args)
    ScoreStore.check(args.store, teacher.spec)
    check_teach_data(args.dataset, args.split, args.qrels, args.queries, args.candidates)

    dataset, sources = load_teach_data(args.dataset, args.split, args.qrels, args.queries, args.candidates)
    candidates = gather_candidates(dataset, sources, args.depth, args.force_positives, args.max_queries, not args.quiet)
    result = teach(teacher, dataset, candidates, args.store, show_progress=not args.quiet)
    summary = {
        "retrodistill_version": __version__,
        "teacher": teacher.spec.to_dict(),
        "fingerprint": teacher.spec.fingerprint(),
        "dataset": dataset.name,
        "candidates": args.candidates or ["bm25s"],
        "depth": args.depth,
        "force_positives": args.force_positives,
        "queries": result.queries,
        "pairs": result.pairs,
        "scored_now": result.scored_now,
        "seconds": round(result.seconds, 3),
        "model_load_seconds": round(result.model_load_seconds, 3),
        "units_per_s": None if result.units_per_s is None else round(result.units_per_s, 3),
        "rows_in_store": result.rows_in_store,
        "listwise_repairs": result.listwise_repairs,
    }
    shown = ["fingerprint", "queries", "pairs", "scored_now", "seconds", "rows_in_store"]
    if getattr(teacher, "backend_report", None):  # a measured backend=auto: the engine it chose, and why
        summary.update(engine=teacher.engine, backend_report=teacher.backend_report)
        shown.append("engine")
    write_json(Path(str(args.store) + ".json"), summary)
    print(json.dumps({k: summary[k] for k in shown}))
    return 0
