"""Corpora to index, as users name them: an ir_datasets id, a BEIR folder, or a JSONL file."""

from __future__ import annotations

import os
from pathlib import Path

from retrodistill.data.records import Document
from retrodistill.errors import DataError, MissingDependencyError


def load_corpus(spec: str) -> dict[str, Document]:
    """Documents in file order: a JSONL(.gz) file of ``{"_id"|"id", "title", "text"}``, a BEIR folder
    (its corpus.jsonl[.gz]), or an ir_datasets id with documents (``beir/scifact/test``)."""
    from retrodistill.data.beir import read_corpus_jsonl
    from retrodistill.data.textfile import find_file

    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        return read_corpus_jsonl(find_file(path, "corpus.jsonl"))
    if path.is_file():
        return read_corpus_jsonl(path)
    if spec.startswith((".", "/", "~")) or spec.endswith((".jsonl", ".gz", ".json")):
        raise DataError("corpus file or folder not found; check the path", spec)
    return _irds_corpus(spec)


def _irds_corpus(dataset_id: str) -> dict[str, Document]:
    try:
        import ir_datasets
    except ImportError:
        raise MissingDependencyError("ir_datasets", purpose="ir_datasets ids") from None
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(
            f"unknown ir_datasets id {dataset_id!r}; pass an id such as beir/scifact/test, a BEIR folder "
            "or a JSONL file of {_id, title, text}"
        ) from None
    if not ds.has_docs():
        raise DataError(f"ir_datasets id {dataset_id!r} has no documents to index")
    try:
        corpus = {d.doc_id: Document(d.doc_id, d.text, getattr(d, "title", "") or "") for d in ds.docs_iter()}
    except OSError as exc:
        raise DataError(
            f"ir_datasets could not read {dataset_id!r} ({exc}); is IR_DATASETS_HOME a writable folder "
            "holding its downloads?"
        ) from None
    if not corpus:
        raise DataError(f"ir_datasets id {dataset_id!r} has an empty corpus")
    return corpus
