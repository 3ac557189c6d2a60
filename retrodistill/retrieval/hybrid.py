"""Hybrid retrieval: BM25 and a bi-encoder each search the whole corpus, their lists fused per query.

``method="rrf"``: reciprocal rank fusion, sum over both lists of ``1 / (rrf_k + rank)`` (rank 1-based;
Cormack et al., SIGIR 2009), a document missing from a list gets nothing from it. ``method="zscore"``:
``weight * z(dense) + (1 - weight) * z(bm25)`` with each list standardised over its own top ``pool``
(a document missing from one list takes that list's minimum z). Output scores are unitless, higher =
more relevant. ``weight`` only applies to ``zscore``; tune it on held-out queries, not on test.
"""

from __future__ import annotations

import numpy as np

from retrodistill.data.records import Document, Query
from retrodistill.errors import ConfigError
from retrodistill.retrieval.base import Retriever
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
from retrodistill.retrieval.dense import DenseRetriever

METHODS = ("rrf", "zscore")


class HybridRetriever(Retriever):
    """``hybrid:MODEL`` - bm25s + ``dense:MODEL`` fused by ``method`` over each one's top ``pool``."""

    name = "hybrid"

    def __init__(
        self,
        model: str,
        method: str = "rrf",
        weight: float = 0.5,
        rrf_k: int = 60,
        pool: int = 1000,
        cache_dir: str | None = None,
        show_progress: bool = True,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"unknown hybrid method {method!r}; choose {' or '.join(METHODS)}")
        if not 0.0 <= weight <= 1.0 or rrf_k < 1 or pool < 1:
            raise ConfigError("hybrid needs 0 <= weight <= 1, rrf_k >= 1 and pool >= 1")
        self.method, self.weight, self.rrf_k, self.pool = method, float(weight), int(rrf_k), int(pool)
        self.bm25 = BM25sRetriever()
        self.dense = DenseRetriever(model, cache_dir=cache_dir, show_progress=show_progress)

    def _index(self, docs: list[Document]) -> None:
        corpus = {doc.doc_id: doc for doc in docs}
        self.bm25.index(corpus)
        self.dense.index(corpus)

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        depth = max(k, self.pool)
        queries = [Query(str(i), text) for i, text in enumerate(texts)]
        lexical = self.bm25.retrieve(queries, depth, show_progress=False)
        dense = self.dense.retrieve(queries, depth, show_progress=False)
        return [
            self._fuse(_ranked(lexical.get(q.query_id, {})), _ranked(dense.get(q.query_id, {})))[:k] for q in queries
        ]

    def _fuse(self, lexical: list[tuple[str, float]], dense: list[tuple[str, float]]) -> list[tuple[str, float]]:
        fused: dict[str, float] = {}
        if self.method == "rrf":
            for hits in (lexical, dense):
                for rank, (doc_id, _) in enumerate(hits, start=1):
                    fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (self.rrf_k + rank)
        else:
            parts = [(1.0 - self.weight, _z(lexical)), (self.weight, _z(dense))]
            ids = {d for _, z in parts for d in z}
            for weight, z in parts:
                floor = min(z.values(), default=0.0)
                for doc_id in ids:
                    fused[doc_id] = fused.get(doc_id, 0.0) + weight * z.get(doc_id, floor)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _z(hits: list[tuple[str, float]]) -> dict[str, float]:
    if not hits:
        return {}
    values = np.array([s for _, s in hits], dtype=np.float64)
    spread = values.std()
    z = (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)
    return {doc_id: float(v) for (doc_id, _), v in zip(hits, z, strict=True)}
