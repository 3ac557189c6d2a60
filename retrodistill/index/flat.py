"""Exact inner-product search with FAISS (IndexFlatIP)."""

from __future__ import annotations

import numpy as np

from retrodistill.errors import MissingDependencyError
from retrodistill.index.base import VectorIndex


class FaissFlatIndex(VectorIndex):
    """Exact search; FAISS blocks the score computation internally, keeping only k per query."""

    name = "flat"

    def __init__(self, dim: int, query_chunk: int = 256) -> None:
        super().__init__(dim, query_chunk)
        try:
            import faiss
        except ImportError:
            raise MissingDependencyError("faiss-cpu", purpose="FAISS indexes") from None
        self._index = faiss.IndexFlatIP(self.dim)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def _add(self, vectors: np.ndarray) -> None:
        self._index.add(vectors)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self._index.search(queries, k)
        return scores, ids.astype(np.int64, copy=False)
