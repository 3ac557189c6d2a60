"""``retrodistill`` entry point: argument parsing, logging, and one-line errors."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

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
    "report": "retrodistill.cli.report_cmd",
}


DEBUG_VARIABLE = "RETRODISTILL_DEBUG"


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as the one line every other error is (sub-commands inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"retrodistill: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
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
    """retrodistill's own INFO lines; only warnings and errors from libraries (they set their own levels).
    Under torchrun only rank 0 speaks: the other ranks log warnings and errors, without progress bars."""
    quiet = quiet or int(os.environ.get("RANK", "0") or 0) > 0
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


def _one_line(text: object, limit: int = 400) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Exit 0 on success, 2 for anything the user can fix (one line on stderr, no
    traceback), 1 for an internal error (one line; ``RETRODISTILL_DEBUG=1`` adds the traceback), 130 on Ctrl-C."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.quiet)
    from pydantic import ValidationError

    from retrodistill.errors import RetrodistillError, missing_dependency

    try:
        return int(args.handler(args) or 0)
    except RetrodistillError as exc:
        print(f"retrodistill: error: {_one_line(exc, 2000)}", file=sys.stderr)
        return 2
    except ImportError as exc:
        error = missing_dependency(exc, purpose=f"retrodistill {args.command}")
        if error is None:
            raise
        print(f"retrodistill: error: {error}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        print(f"retrodistill: error: invalid configuration: {where}: {_one_line(first['msg'])}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("retrodistill: interrupted; finished work is kept and a re-run resumes", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or folder that cannot be read or written: the user's to fix
        _traceback_if_debug()
        what = exc.strerror or _one_line(exc)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"retrodistill: error: {where}{_one_line(what)}", file=sys.stderr)
        return 2
    except Exception as exc:
        _traceback_if_debug()
        hint = "" if _debug() else f" (set {DEBUG_VARIABLE}=1 for the traceback)"
        print(f"retrodistill: error: internal error: {type(exc).__name__}: {_one_line(exc)}{hint}", file=sys.stderr)
        return 1


def _debug() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _traceback_if_debug() -> None:
    if _debug():
        import traceback

        traceback.print_exc()


if __name__ == "__main__":
    sys.exit(main())
