"""``retrodistill`` entry point: argument parsing, logging, and one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from retrodistill import __version__

COMMANDS = {
    "eval": "retrodistill.cli.eval_cmd",
    "data": "retrodistill.cli.data_cmd",
    "index": "retrodistill.cli.index_cmd",
    "serve": "retrodistill.cli.serve_cmd",
    "teach": "retrodistill.cli.teach_cmd",
    "teacher": "retrodistill.cli.teacher_cmd",
    "train": "retrodistill.cli.train_cmd",
    "distill": "retrodistill.cli.distill_cmd",
    "generate": "retrodistill.cli.generate_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="retrodistill",
        description="Turn rerankers into fast retrievers: first stages, teachers, students, FAISS, evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"retrodistill {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def _configure_logging(quiet: bool) -> None:
    """retrodistill's own INFO lines; only warnings and errors from libraries (they set their own levels)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: record.name.startswith("retrodistill") or record.levelno >= logging.ERROR)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    from pydantic import ValidationError

    from retrodistill.errors import RetrodistillError

    try:
        return int(args.handler(args) or 0)
    except RetrodistillError as exc:
        print(f"retrodistill: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        print(f"retrodistill: error: invalid configuration: {where}: {first['msg']}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retrodistill: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
