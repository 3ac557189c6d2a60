"""Opening text files that may be gzip-compressed, with a clear error when they are missing."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from retrodistill.errors import DataError


def open_text(path: Path) -> IO[str]:
    if not path.is_file():
        raise DataError("file not found; check the path", str(path))
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line is a DataError naming it."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"invalid JSON ({exc.msg} at column {exc.colno})", str(path), number) from None
            if not isinstance(obj, dict):
                raise DataError("expected a JSON object per line", str(path), number)
            yield number, obj


def find_file(folder: Path, stem: str) -> Path:
    """``folder/stem`` or ``folder/stem.gz``."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"no {stem} or {stem}.gz in this folder; is it a BEIR dataset folder?", str(folder))
