"""A bi-encoder as teacher: the cosine of a sentence-transformers model's query and passage embeddings.

Cheap enough to score every candidate of a large set, general enough to carry across corpora (it is
what GPL mines negatives with), and a natural member of a teacher ensemble beside a cross-encoder or
an LLM's query likelihood. Scores are cosines in [-1, 1] (unit-length embeddings), higher = more relevant.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

import numpy as np

from retrodistill.data.records import Document
from retrodistill.revision import model_revision
from retrodistill.teachers.base import Candidates, Teacher
from retrodistill.teachers.records import TeacherSpec


class BiEncoderTeacher(Teacher):
    """Pointwise cosine teacher; passage embeddings are kept per text, so a passage shared by several
    queries' candidate lists is encoded once per run (``cache_size`` passages at most)."""

    granularity = "pointwise"

    def __init__(
        self,
        model: str,
        batch_size: int = 64,
        max_seq_length: int | None = None,
        chunk_size: int = 512,
        cache_size: int = 200_000,
    ) -> None:
        super().__init__()
        self.model_id = model
        self.batch_size = int(batch_size)
        self.max_seq_length = max_seq_length
        self.chunk_size = int(chunk_size)
        self.cache_size = int(cache_size)
        self._passages: dict[str, np.ndarray] = {}

    @cached_property
    def spec(self) -> TeacherSpec:
        return TeacherSpec(
            "bi-encoder",
            self.model_id,
            model_revision(self.model_id),
            "pointwise",
            "cosine",
            "",
            {"max_seq_length": self.max_seq_length},
        )

    @cached_property
    def encoder(self):
        from retrodistill.students.bi_encoder import BiEncoder

        return BiEncoder(self.model_id, batch_size=self.batch_size, max_seq_length=self.max_seq_length)

    def load(self) -> None:
        self.encoder  # noqa: B018

    def _prepare(self, candidates: Candidates, corpus: Mapping[str, Document]) -> None:
        """When the candidates cover at least half of ``corpus``, encode the whole corpus once through the
        embedding cache that dense retrieval shares (``index.encode``), so a corpus the dense first stage
        already encoded costs nothing here."""
        unique = {d for ids in candidates.values() for d in ids}
        if len(unique) * 2 >= len(corpus) and len(self._passages) < len(unique):
            from retrodistill.index.encode import encode_corpus

            docs = list(corpus.values())
            vectors = encode_corpus(self.encoder, docs)
            if len(self._passages) + len(docs) > self.cache_size:
                self._passages.clear()
            self._passages.update(zip((doc.full_text() for doc in docs), vectors, strict=True))

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        queries = sorted({q for q, _ in pairs})
        new = sorted({p for _, p in pairs if p not in self._passages})
        if len(self._passages) + len(new) > self.cache_size:
            self._passages.clear()
            new = sorted({p for _, p in pairs})
        self._passages.update(zip(new, self.encoder.encode_passages(new), strict=True))
        q_vecs = dict(zip(queries, self.encoder.encode_queries(queries), strict=True))
        return [float(np.dot(q_vecs[q], self._passages[p])) for q, p in pairs]
