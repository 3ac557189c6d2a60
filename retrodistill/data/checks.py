"""Consistency checks shared by the loaders: counted warnings where skipping is expected."""

from __future__ import annotations

import logging

from retrodistill.data.records import Dataset, Document, Qrels, Query, Run
from retrodistill.errors import DataError

log = logging.getLogger("retrodistill.data")


def build_dataset(
    name: str,
    corpus: dict[str, Document],
    queries: dict[str, Query],
    qrels: Qrels,
    candidates: Run | None = None,
    source: str = "",
) -> Dataset:
    """Validate and assemble a dataset.

    An empty corpus or empty qrels is an error. Judged queries without text are dropped and
    judged documents absent from the corpus are kept (they count as unretrievable); both are
    counted in a warning and in ``meta["warnings"]``.
    """
    where = source or name
    if not corpus:
        raise DataError("the corpus is empty", where)
    if not qrels:
        raise DataError("there are no relevance judgements for this split", where)
    warnings: dict[str, int] = {}
    missing_queries = [qid for qid in qrels if qid not in queries]
    if missing_queries:
        warnings["qrels_queries_without_text"] = len(missing_queries)
        log.warning(
            "%s: %d judged queries have no text and are skipped (first: %s)",
            where,
            len(missing_queries),
            missing_queries[0],
        )
        qrels = {qid: docs for qid, docs in qrels.items() if qid in queries}
        if not qrels:
            raise DataError("no judged query has a text; do the qrels belong to these queries?", where)
    missing_docs = [(qid, did) for qid, docs in qrels.items() for did in docs if did not in corpus]
    if missing_docs and candidates is None:
        warnings["qrels_docs_not_in_corpus"] = len(missing_docs)
        log.warning(
            "%s: %d judgements name documents absent from the corpus; they count as unretrievable "
            "(first: query %s, doc %s)",
            where,
            len(missing_docs),
            *missing_docs[0],
        )
    if candidates is not None:
        absent = sum(1 for docs in candidates.values() for did in docs if did not in corpus)
        if absent:
            raise DataError(f"{absent} candidate documents have no text in the corpus", where)
    return Dataset(
        name=name,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        candidates=candidates,
        meta={"source": where, "warnings": warnings},
    )
