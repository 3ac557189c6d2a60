"""The extra systems of ``/compare``: BM25 over the index's own doc store, and a teacher re-ranking the
student's top k, each beside the served student on the same query.

BM25 (bm25s, the defaults of ``BM25sRetriever``) is built at start-up from every document of
``docs.sqlite``, so the columns rank the same corpus; the teacher (any ``--teacher`` spec, built by the
CLI, which sits above this layer) scores the student's top k with that whole corpus as its context (a
``bm25`` teacher takes its IDF statistics from it). Both keep the corpus in memory: enable them for
corpora that fit.
"""

from __future__ import annotations

import threading
from typing import Any

from retrodistill.data.records import Document, Query
from retrodistill.errors import ConfigError
from retrodistill.index.store import Hit, IndexDir

QUERY_ID = "q"


class SideBySide:
    """BM25 and teacher scoring for one index directory; either may be off (``bm25=False``, ``teacher=None``)."""

    def __init__(self, store: IndexDir, bm25: bool = False, teacher: Any = None) -> None:
        self.store, self.teacher = store, teacher
        self.corpus: dict[str, Document] = {}
        self.rows: dict[str, int] = {}
        self.bm25: Any = None
        self._lock = threading.Lock()
        if not bm25 and teacher is None:
            return
        rows = store.live_rows
        for row, doc in zip(rows, store.docs.get(rows), strict=True):
            if doc is None or doc.doc_id != store.ids[row]:
                raise ConfigError(f"{store.path}: the doc store does not match the index at row {row}; rebuild it")
            self.corpus[doc.doc_id] = doc
            self.rows[doc.doc_id] = row
        if bm25:
            from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

            self.bm25 = BM25sRetriever()
            self.bm25.index(self.corpus)
        if teacher is not None:
            teacher.load()

    def bm25_hits(self, query: str, k: int) -> list[Hit]:
        """BM25's top ``k`` (fewer when fewer documents share a term with the query), best first."""
        with self._lock:
            run = self.bm25.retrieve([Query(QUERY_ID, query)], k, show_progress=False)
        return [Hit(self.rows[doc_id], doc_id, score) for doc_id, score in run[QUERY_ID].items()]

    def teacher_scores(self, query: str, hits: list[Hit]) -> list[float]:
        """The teacher's score of each hit for ``query``, in the order of ``hits``."""
        if not hits:
            return []
        with self._lock:
            queries, candidates = {QUERY_ID: Query(QUERY_ID, query)}, {QUERY_ID: [h.doc_id for h in hits]}
            run = self.teacher.score(queries, candidates, self.corpus, show_progress=False)
        return [float(run[QUERY_ID][h.doc_id]) for h in hits]
