"""BM25 as a teacher: lexical evidence to fuse with neural teachers (GPL and InPars mine with it too).

Scores are BM25 sums from bm25s (Lucene variant, Porter stemmer, English stopwords by default),
unbounded, higher = more relevant, 0 where no query term occurs. The statistics (IDF, lengths) are
those of the corpus passed to ``score``, so the same pair can score differently in another corpus;
a store is kept per training set, which fixes the corpus.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property

from retrodistill.data.records import Document
from retrodistill.teachers.base import Candidates, Teacher
from retrodistill.teachers.records import TeacherSpec


class BM25Teacher(Teacher):
    """Pointwise BM25 over the corpus being scored (indexed once per corpus); spec ``bm25`` or ``bm25,k1=1.2``."""

    granularity = "pointwise"

    def __init__(self, k1: float = 0.9, b: float = 0.4, stemmer: str | None = "porter") -> None:
        super().__init__()
        self.k1, self.b, self.stemmer = float(k1), float(b), stemmer
        self._corpus_key: tuple[int, int] | None = None
        self._rows: dict[str, int] = {}

    @cached_property
    def spec(self) -> TeacherSpec:
        from importlib.metadata import version

        options = {"k1": self.k1, "b": self.b, "stemmer": self.stemmer, "stopwords": "en"}
        return TeacherSpec("bm25", "bm25s", f"bm25s@{version('bm25s')}", "pointwise", "bm25", "", options)

    @cached_property
    def retriever(self):
        from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

        return BM25sRetriever(k1=self.k1, b=self.b, stemmer=self.stemmer)

    def load(self) -> None:
        self.retriever  # noqa: B018

    def _prepare(self, candidates: Candidates, corpus: Mapping[str, Document]) -> None:
        """Index ``corpus`` (skipped when it is the corpus indexed last)."""
        key = (id(corpus), len(corpus))
        if key != self._corpus_key:
            self.retriever.index(corpus)
            self._rows = {}
            for row, doc_id in enumerate(self.retriever.doc_ids):
                self._rows.setdefault(corpus[doc_id].full_text(), row)
            self._corpus_key = key

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        rows = {q: self.retriever.score_all(q) for q in {q for q, _ in pairs}}
        return [float(rows[q][self._rows[p]]) for q, p in pairs]
