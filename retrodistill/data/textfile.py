"""Reading text files that may be gzip-compressed: every way a file can fail is a DataError naming it.

Lines are read as bytes and decoded one by one, so a byte that is not UTF-8 is reported on its own
line; a ``.gz`` that is not gzip, a truncated or corrupt gzip stream, a folder, a missing or unreadable
file all become one ``DataError`` with the path (and the line where one is known).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrodistill.errors import DataError

BOM = "\ufeff"


def check_readable(path: Path) -> None:
    """A DataError unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise DataError("is a folder, expected a file; check the path", str(path))
    if not path.exists():
        raise DataError("file not found; check the path", str(path))


def _read_error(exc: BaseException, path: Path, line: int | None) -> DataError:
    """The one-line DataError for an exception raised while opening or reading ``path``."""
    if isinstance(exc, UnicodeDecodeError):
        return DataError(
            f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
            str(path),
            line,
        )
    if isinstance(exc, gzip.BadGzipFile):
        return DataError("not a gzip file although its name ends in .gz; compress it or drop the .gz", str(path))
    if isinstance(exc, EOFError):
        return DataError("the gzip file is truncated (it ends mid-stream); copy or download it again", str(path))
    if isinstance(exc, zlib.error):
        return DataError(f"corrupt gzip data ({exc}); copy or download it again", str(path), line)
    if isinstance(exc, PermissionError):
        return DataError("permission denied; make the file readable", str(path))
    if isinstance(exc, IsADirectoryError):
        return DataError("is a folder, expected a file; check the path", str(path))
    reason = getattr(exc, "strerror", None) or exc
    return DataError(f"cannot read the file ({reason})", str(path), line)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, line ends kept; ``.gz`` files are decompressed."""
    path = Path(path)
    check_readable(path)
    number = 0
    try:
        handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115
        with handle:
            for number, raw in enumerate(handle, start=1):
                text = raw.decode("utf-8")
                yield number, text[1:] if number == 1 and text.startswith(BOM) else text
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as exc:
        line = number if isinstance(exc, UnicodeDecodeError) else (number + 1 if number else None)
        raise _read_error(exc, path, line) from None


def read_text(path: Path) -> str:
    """The whole file as one string (for formats parsed in one piece, such as JSON)."""
    return "".join(line for _, line in iter_lines(path))


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a bad line is a DataError naming it."""
    for number, line in iter_lines(path):
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
        if candidate.exists():
            return candidate
    raise DataError(f"no {stem} or {stem}.gz in this folder; is it a BEIR dataset folder?", str(folder))
