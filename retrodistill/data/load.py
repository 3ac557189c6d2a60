"""One entry point from what a user types to a Dataset."""

from __future__ import annotations

import os
from pathlib import Path

from retrodistill.data.records import Dataset
from retrodistill.errors import DataError


def load_dataset(spec: str, split: str = "test") -> Dataset:
    """A BEIR folder path (``split`` picks qrels/<split>.tsv) or an ir_datasets id such as ``beir/scifact/test``."""
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        from retrodistill.data.beir import load_beir_folder

        return load_beir_folder(path, split)
    if path.exists():
        raise DataError("expected a BEIR folder or an ir_datasets id, got a file", str(path))
    if spec.startswith((".", "/", "~")):
        raise DataError("folder not found; check the path", spec)
    from retrodistill.data.irds import load_ir_dataset

    return load_ir_dataset(spec)
