"""The vector index interface: add float32 vectors, search top-k by inner product in bounded memory."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class VectorIndex(ABC):
    """Inner-product top-k search. ``search`` walks the queries in chunks of ``query_chunk`` rows,
    so no (queries x corpus) score matrix larger than ``query_chunk x ntotal`` is ever built.

    Returns ``(scores, ids)``, both (n_queries, k): float32 inner products best first, and int64
    row numbers in insertion order (-1 where fewer than k vectors exist).
    """

    name = "index"

    def __init__(self, dim: int, query_chunk: int = 256) -> None:
        self.dim = int(dim)
        self.query_chunk = int(query_chunk)

    @property
    @abstractmethod
    def ntotal(self) -> int: ...

    def add(self, vectors: np.ndarray) -> None:
        self._add(self._check(vectors))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check(queries)
        if k <= 0:
            raise ValueError("k must be positive")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        kk = min(k, self.ntotal)
        if kk == 0:
            return scores, ids
        for start in range(0, len(queries), self.query_chunk):
            chunk = queries[start : start + self.query_chunk]
            s, i = self._search(chunk, kk)
            scores[start : start + len(chunk), :kk] = s
            ids[start : start + len(chunk), :kk] = i
        return scores, ids

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"{self.name}: expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for a chunk of queries, k <= ntotal, best first."""
