"""Training checkpoints and finished model folders, written so that a kill never leaves a half folder.

One layout for every trainer that resumes by itself: ``<folder>/step-<N>/`` holds whatever the trainer
saved at step N (model files, ``state.pt`` of optimizer/scheduler state, ``history.json``). A checkpoint
is written into a temp folder beside it, every file fsynced, then renamed to ``step-N``; so any
``step-N`` folder is complete, and the last ``keep`` are kept. Trainer state is read back with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only, never code.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retrodistill.errors import DataError

log = logging.getLogger("retrodistill.training")

STATE = "state.pt"
HISTORY = "history.json"
PREFIX = "step-"


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and the folders themselves to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_dir(target: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Build a folder atomically: ``write(tmp)`` fills a temp folder beside ``target``, which then replaces it.

    An existing ``target`` is moved aside first and removed after the rename, so at every instant
    ``target`` is either the old complete folder or the new complete one (never half of either).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        write(tmp)
        _fsync_tree(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Checkpoints:
    """The ``step-N`` checkpoints of one training run in ``folder``; the newest ``keep`` are kept."""

    def __init__(self, folder: str | os.PathLike[str], keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = keep

    def steps(self) -> list[tuple[int, Path]]:
        """(step, folder) of every complete checkpoint, oldest first (temp folders of a killed save are skipped)."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in self.folder.iterdir():
            number = path.name[len(PREFIX) :]
            if path.name.startswith(PREFIX) and number.isdigit() and path.is_dir():
                found.append((int(number), path))
        return sorted(found)

    def last(self) -> tuple[int, Path] | None:
        """The newest complete checkpoint, or None when the run starts from scratch."""
        done = self.steps()
        return done[-1] if done else None

    def save(self, step: int, state: dict[str, Any], history: list[dict], write_model: Callable[[Path], None]) -> Path:
        """Write checkpoint ``step``: the model (``write_model(folder)``), ``state.pt`` and ``history.json``."""
        import torch

        def write(tmp: Path) -> None:
            write_model(tmp)
            torch.save(state, tmp / STATE)
            (tmp / HISTORY).write_text(json.dumps(history), encoding="utf-8")

        self.folder.mkdir(parents=True, exist_ok=True)
        self._remove_temp()
        path = write_dir(self.folder / f"{PREFIX}{step}", write)
        for _, old in self.steps()[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def _remove_temp(self) -> None:
        """Temp folders a killed save left behind."""
        for path in self.folder.glob(f".{PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def load(path: Path) -> tuple[dict[str, Any], list[dict]]:
        """(state, history) of one checkpoint folder; anything but plain tensors and containers is refused."""
        import pickle

        import torch

        state_file, history_file = path / STATE, path / HISTORY
        fix = f"delete {path} to resume from the checkpoint before it, or the whole output folder to start over"
        if not state_file.is_file() or not history_file.is_file():
            raise DataError(f"checkpoint is incomplete (no {STATE} or {HISTORY}); {fix}", str(path))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the refusal below says enough
                state = torch.load(state_file, weights_only=True, map_location="cpu")
        except pickle.UnpicklingError as exc:
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
            reason = f"it names {found.group(1)}" if found else type(exc).__name__
            raise DataError(
                f"refused to load: it holds objects other than tensors and plain data ({reason}); {fix}",
                str(state_file),
            ) from None
        except (RuntimeError, EOFError, OSError) as exc:
            raise DataError(f"unreadable checkpoint state ({type(exc).__name__}); {fix}", str(state_file)) from None
        try:
            history = json.loads(history_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"unreadable checkpoint history ({exc}); {fix}", str(history_file)) from None
        if not isinstance(state, dict) or not isinstance(history, list):
            raise DataError(f"not a retrodistill checkpoint; {fix}", str(path))
        return state, history
