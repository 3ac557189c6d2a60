"""Datasets by ir_datasets id (e.g. ``beir/scifact/test``, ``beir/nfcorpus/train``)."""

from __future__ import annotations

from typing import Any

from retrodistill.data.checks import build_dataset
from retrodistill.data.records import Dataset, Document, Query
from retrodistill.errors import DataError, MissingDependencyError


def load_ir_dataset(dataset_id: str) -> Dataset:
    """Load docs, queries and qrels of an ir_datasets id; the id must name a split with qrels."""
    ds = _open(dataset_id)
    if not ds.has_qrels():
        raise DataError(f"ir_datasets id {dataset_id!r} has no qrels; name a split such as {dataset_id}/test")
    corpus = load_ir_corpus(dataset_id, ds)
    try:
        all_queries = {q.query_id: Query(q.query_id, q.text) for q in ds.queries_iter()}
        qrels: dict[str, dict[str, int]] = {}
        for qrel in ds.qrels_iter():
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    except OSError as exc:
        raise _read_error(dataset_id, exc) from None
    queries = {qid: all_queries[qid] for qid in qrels if qid in all_queries}
    return build_dataset(dataset_id, corpus, queries, qrels, source=f"ir_datasets:{dataset_id}")


def load_ir_corpus(dataset_id: str, ds: Any = None) -> dict[str, Document]:
    """The documents of an ir_datasets id in corpus order (no queries or qrels needed, e.g. to index)."""
    ds = ds if ds is not None else _open(dataset_id)
    if not ds.has_docs():
        raise DataError(f"ir_datasets id {dataset_id!r} has no documents")
    try:
        corpus = {d.doc_id: Document(d.doc_id, d.text, getattr(d, "title", "") or "") for d in ds.docs_iter()}
    except OSError as exc:
        raise _read_error(dataset_id, exc) from None
    if not corpus:
        raise DataError(f"ir_datasets id {dataset_id!r} has an empty corpus")
    return corpus


def _open(dataset_id: str) -> Any:
    try:
        import ir_datasets
    except ImportError:
        raise MissingDependencyError("ir_datasets", purpose="ir_datasets ids") from None
    try:
        return ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(
            f"unknown ir_datasets id {dataset_id!r}; see https://ir-datasets.com (e.g. beir/scifact/test) "
            "or pass a BEIR folder path"
        ) from None


def _read_error(dataset_id: str, exc: OSError) -> DataError:
    return DataError(
        f"ir_datasets could not read {dataset_id!r} ({exc}); is IR_DATASETS_HOME set to a writable "
        "folder holding its downloads?"
    )
