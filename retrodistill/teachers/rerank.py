"""Teachers as re-rankers for ``retrodistill eval`` (RERANKERS ``cross-encoder`` and ``llm``)."""

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


class CrossEncoderReranker(TeacherReranker):
    """``cross-encoder:MODEL[,batch_size=4|32,max_length=256,dtype=bfloat16,store=PATH]``: raw logits."""

    def __init__(
        self,
        model: str,
        batch_size: int | None = None,
        max_length: int | None = None,
        dtype: str = "float32",
        store: str | None = None,
    ):
        from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

        teacher = CrossEncoderTeacher(model, batch_size=batch_size, max_length=max_length, dtype=dtype)
        super().__init__(teacher, store)


class LLMReranker(TeacherReranker):
    """``llm:MODEL,gguf_file=F,mode=ql|yesno|prp|listwise[,...]``: see ``LLMTeacherConfig`` for the modes."""

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        mode: str = "ql",
        template: str | None = None,
        batch_size: int = 8,
        window: int | None = 3,
        list_window: int = 20,
        stride: int = 10,
        max_passage_tokens: int = 160,
        listwise_passage_tokens: int = 48,
        max_new_tokens: int = 96,
        chat: bool | None = None,
        store: str | None = None,
    ):
        from retrodistill.teachers.llm import LLMTeacher

        teacher = LLMTeacher(
            model,
            gguf_file=gguf_file,
            mode=mode,
            template=template,
            batch_size=batch_size,
            window=window,
            list_window=list_window,
            stride=stride,
            max_passage_tokens=max_passage_tokens,
            listwise_passage_tokens=listwise_passage_tokens,
            max_new_tokens=max_new_tokens,
            chat=chat,
        )
        super().__init__(teacher, store)
