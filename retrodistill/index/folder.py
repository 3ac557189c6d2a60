"""Where an index directory is built: the target check, a temp folder beside it, and the swap into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from retrodistill.errors import ConfigError
from retrodistill.index.manifest import MANIFEST


def check_target(out: Path, overwrite: bool) -> None:
    """ConfigError unless ``out`` can be written (missing, or an index directory and ``overwrite``).
    Creates nothing: the parent folder is made once the build has something to write."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory; choose another --out")
    if not overwrite:
        raise ConfigError(f"{out} already exists; pass --force to replace it or choose another --out")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ConfigError(f"{out} is a non-empty directory without {MANIFEST}; refusing to replace it")


def make_readable(folder: Path) -> None:
    """Temp files are private (0600); the finished directory gets the usual umask permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for file in folder.iterdir():
        os.chmod(file, 0o666 & ~umask)


def swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def remove_stale_builds(out: Path) -> None:
    """Temp folders left by killed builds of ``out`` (their process is gone)."""
    for folder in out.parent.glob(f".{out.name}.building-*"):
        pid = folder.name.split("building-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def building(out: Path) -> Iterator[Path]:
    """A private temp folder beside ``out`` to write into; when the block ends without error it is made
    readable and swapped into place as ``out``, on any error (or a kill signal's exception) removed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(out)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.building-{os.getpid()}-"))
    try:
        yield tmp
        make_readable(tmp)
        swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
