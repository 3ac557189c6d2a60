"""Corpora to index, as users name them: an ir_datasets id, a BEIR folder, or a JSONL file."""

from __future__ import annotations

import os
from pathlib import Path

from retrodistill.data.records import Document
from retrodistill.errors import DataError


def load_corpus(spec: str) -> dict[str, Document]:
    """Documents in file order: a JSONL(.gz) file of ``{"_id"|"id", "title", "text"}``, a BEIR folder
    (its corpus.jsonl[.gz]), or an ir_datasets id with documents (``beir/scifact/test``)."""
    from retrodistill.data.beir import read_corpus_jsonl
    from retrodistill.data.irds import load_ir_corpus
    from retrodistill.data.textfile import find_file

    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return read_corpus_jsonl(find_file(path, "corpus.jsonl"))
    if path.is_file():
        return read_corpus_jsonl(path)
    if spec.startswith((".", "/", "~")) or spec.endswith((".jsonl", ".gz", ".json")):
        raise DataError("corpus file or folder not found; check the path", spec)
    return load_ir_corpus(spec)
