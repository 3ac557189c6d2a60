"""A corpus alone, with no queries or judgements: a BEIR folder, a corpus.jsonl[.gz] file or an ir_datasets id."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from retrodistill.data.records import Document
from retrodistill.errors import DataError, MissingDependencyError

log = logging.getLogger("retrodistill.data")


def load_corpus(spec: str) -> dict[str, Document]:
    """Documents by id, in file order. Passages with no text (title and text blank) are skipped with a
    counted warning; a corpus with none left is a DataError, as is an empty one."""
    path = Path(os.path.expanduser(spec))
    if path.is_dir() or path.is_file():
        from retrodistill.data.beir import read_corpus_jsonl
        from retrodistill.data.textfile import find_file

        source = find_file(path, "corpus.jsonl") if path.is_dir() else path
        corpus = read_corpus_jsonl(source)
        where = str(source)
    elif spec.startswith((".", "/", "~")) or spec.endswith((".jsonl", ".gz")):
        raise DataError("corpus not found; give a BEIR folder, a corpus.jsonl file or an ir_datasets id", spec)
    else:
        corpus, where = _irds_corpus(spec), f"ir_datasets:{spec}"
    kept = {d: doc for d, doc in corpus.items() if doc.full_text().strip()}
    if not kept:
        raise DataError(f"none of the {len(corpus)} passages has any text; give each passage a 'text'", where)
    if len(kept) < len(corpus):
        log.warning("%s: %d passages with no text skipped", where, len(corpus) - len(kept))
    return kept


def _irds_corpus(dataset_id: str) -> dict[str, Document]:
    try:
        import ir_datasets
    except ImportError:
        raise MissingDependencyError("ir_datasets", purpose="ir_datasets ids") from None
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(
            f"unknown ir_datasets id {dataset_id!r}; see https://ir-datasets.com (e.g. beir/scifact) "
            "or pass a BEIR folder or corpus.jsonl path"
        ) from None
    if not ds.has_docs():
        raise DataError(f"ir_datasets id {dataset_id!r} has no documents")
    try:
        corpus = {d.doc_id: Document(d.doc_id, d.text, getattr(d, "title", "") or "") for d in ds.docs_iter()}
    except OSError as exc:
        raise DataError(
            f"ir_datasets could not read {dataset_id!r} ({exc}); is IR_DATASETS_HOME set to a writable "
            "folder holding its downloads?"
        ) from None
    if not corpus:
        raise DataError(f"ir_datasets id {dataset_id!r} has an empty corpus")
    return corpus
