"""Hybrid retrieval: BM25 and a bi-encoder each search the whole corpus, their lists fused per query.

``method="rrf"``: reciprocal rank fusion, sum over both lists of ``1 / (rrf_k + rank)`` (rank 1-based;
Cormack et al., SIGIR 2009), a document missing from a list gets nothing from it. ``method="zscore"``:
``weight * z(dense) + (1 - weight) * z(bm25)`` with each list standardised over its own top ``pool``
(a document missing from one list takes that list's minimum z). Output scores are unitless, higher =
more relevant. ``weight`` only applies to ``zscore``; tune it on held-out queries, not on test. The fusion
itself is ``retrodistill.retrieval.fusion.fuse``, which the server's ``mode: "hybrid"`` uses too.
"""

from __future__ import annotations

from pathlib import Path

from retrodistill.data.records import Document, Query
from retrodistill.errors import ConfigError
from retrodistill.retrieval.base import Retriever
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
from retrodistill.retrieval.dense import DenseRetriever
from retrodistill.retrieval.fusion import METHODS, fuse


class HybridRetriever(Retriever):
    """``hybrid:MODEL`` - bm25s + ``dense:MODEL`` fused by ``method`` over each one's top ``pool``. When MODEL
    is an index directory (``retrodistill index build``, e.g. a ColBERT one) its search is the student side."""

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
        self.dense: Retriever
        if (Path(model) / "manifest.json").is_file():
            from retrodistill.retrieval.index_dir import IndexDirRetriever

            self.dense = IndexDirRetriever(model)
        else:
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
            fuse(lexical.get(q.query_id, {}), dense.get(q.query_id, {}), self.method, self.weight, self.rrf_k)[:k]
            for q in queries
        ]
