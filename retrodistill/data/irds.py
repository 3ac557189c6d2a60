"""Datasets by ir_datasets id (e.g. ``beir/scifact/test``, ``beir/nfcorpus/train``)."""

from __future__ import annotations

from retrodistill.data.checks import build_dataset
from retrodistill.data.records import Dataset, Document, Query
from retrodistill.errors import DataError, MissingDependencyError


def load_ir_dataset(dataset_id: str) -> Dataset:
    """Load docs, queries and qrels of an ir_datasets id; the id must name a split with qrels."""
    try:
        import ir_datasets
    except ImportError:
        raise MissingDependencyError("ir_datasets", purpose="ir_datasets ids") from None
    try:
        ds = ir_datasets.load(dataset_id)
    except KeyError:
        raise DataError(
            f"unknown ir_datasets id {dataset_id!r}; see https://ir-datasets.com (e.g. beir/scifact/test) "
            "or pass a BEIR folder path"
        ) from None
    if not ds.has_qrels():
        raise DataError(f"ir_datasets id {dataset_id!r} has no qrels; name a split such as {dataset_id}/test")
    if not ds.has_docs():
        raise DataError(f"ir_datasets id {dataset_id!r} has no documents to search")
    try:
        corpus = {d.doc_id: Document(d.doc_id, d.text, getattr(d, "title", "") or "") for d in ds.docs_iter()}
        all_queries = {q.query_id: Query(q.query_id, q.text) for q in ds.queries_iter()}
        qrels: dict[str, dict[str, int]] = {}
        for qrel in ds.qrels_iter():
            qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    except OSError as exc:
        raise DataError(
            f"ir_datasets could not read {dataset_id!r} ({exc}); is IR_DATASETS_HOME set to a writable "
            "folder holding its downloads?"
        ) from None
    queries = {qid: all_queries[qid] for qid in qrels if qid in all_queries}
    return build_dataset(dataset_id, corpus, queries, qrels, source=f"ir_datasets:{dataset_id}")
