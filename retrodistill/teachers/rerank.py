"""Any teacher as a re-ranker for ``retrodistill eval`` (``--system cross-encoder:MODEL``, ``llm:MODEL,...``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from retrodistill.data.records import Document, Query, Run
from retrodistill.teachers.base import Teacher

log = logging.getLogger(__name__)


class TeacherReranker:
    """Re-ranks the top ``depth`` candidates of each list with a teacher; the rest keep their order below.

    With ``store`` the teacher's scores are kept in (and reused from) a score store.
    """

    name = "teacher-rerank"

    def __init__(self, teacher: Teacher, store: str | None = None) -> None:
        self.teacher = teacher
        self.store_path = store

    def rerank(
        self,
        queries: Mapping[str, Query],
        candidates: Run,
        corpus: Mapping[str, Document],
        depth: int | None = None,
        show_progress: bool = True,
    ) -> Run:
        from retrodistill.retrieval.rerank import rank_lists, with_tail

        ranked, lists = rank_lists(queries, candidates, depth)
        store = None
        if self.store_path:
            from retrodistill.teachers.store import ScoreStore

            store = ScoreStore(self.store_path, self.teacher.spec)
        try:
            scored = self.teacher.score(queries, lists, corpus, store=store, show_progress=show_progress)
        finally:
            if store is not None:
                store.close()
        if self.teacher.repairs:
            log.info("listwise answer repairs: %s", dict(self.teacher.repairs))
        return {q: with_tail(dict(scored[q]), ids) for q, ids in ranked.items()}
