"""One entry point from what a user types to a Dataset."""

from __future__ import annotations

import os
from pathlib import Path

from retrodistill.data.records import Dataset
from retrodistill.errors import DataError


def load_dataset(spec: str, split: str = "test", qrels: str | None = None) -> Dataset:
    """A BEIR folder path (``split`` picks qrels/<split>.tsv) or an ir_datasets id such as ``beir/scifact/test``.

    ``qrels`` (a TREC or BEIR qrels file) replaces the dataset's own judgments.
    """
    folder = _folder(spec)
    if folder is not None:
        from retrodistill.data.beir import load_beir_folder

        dataset = load_beir_folder(folder, split)
    else:
        from retrodistill.data.irds import load_ir_dataset

        dataset = load_ir_dataset(spec)
    if qrels:
        from dataclasses import replace

        from retrodistill.data.trec import read_qrels

        dataset = replace(dataset, qrels=read_qrels(qrels))
    return dataset


def check_dataset(spec: str, split: str = "test") -> None:
    """Fail now, with one line, when ``spec`` names no BEIR folder split or known ir_datasets id (reads no data)."""
    folder = _folder(spec)
    if folder is not None:
        if not (folder / "qrels" / f"{split}.tsv").is_file():
            available = sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
            if not available:
                raise DataError(
                    "no queries or qrels here, only a corpus? write training queries with `retrodistill generate "
                    "--corpus FOLDER --out q.sqlite --export GEN` and use GEN with --split generated, or run "
                    "`distill` with a generate block",
                    spec,
                )
            raise DataError(f"no qrels for split {split!r}; available splits: {', '.join(available)}", spec)
        return
    try:
        import ir_datasets
    except ImportError:
        return  # load_dataset names the missing package
    if spec not in ir_datasets.registry:
        raise DataError(
            f"unknown ir_datasets id {spec!r}; see https://ir-datasets.com (e.g. beir/scifact/test) "
            "or pass a BEIR folder path"
        )


def _folder(spec: str) -> Path | None:
    """The BEIR folder ``spec`` names, or None for an ir_datasets id; a file or a missing folder is a DataError."""
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return path
    if path.exists():
        raise DataError("expected a BEIR folder or an ir_datasets id, got a file", str(path))
    if spec.startswith((".", "/", "~")):
        raise DataError("folder not found; check the path", spec)
    return None
