"""The vector index interface: train (when needed), add float32 vectors, search top-k by inner product, save, load."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import IO, Any

import numpy as np

from retrodistill.atomic import atomic_open


class VectorIndex(ABC):
    """Inner-product top-k search. ``search`` walks the queries in chunks of ``query_chunk`` rows,
    so no (queries x corpus) score matrix larger than ``query_chunk x ntotal`` is ever built.

    Returns ``(scores, ids)``, both (n_queries, k): float32 inner products best first (approximate
    indexes return their own estimate of it, e.g. PQ-decoded), and int64 row numbers in insertion
    order (-1 where fewer than k vectors were found).

    Indexes that learn from data (IVF, PQ) are trained by ``train``; ``add`` trains on its own
    vectors first when ``train`` was not called. ``save`` writes one file; ``load`` reads it back.

    Rows deleted from an index directory stay in the file as tombstones: ``exclude(rows)`` makes
    ``search`` skip them (``_search_excluding``: a FAISS ID selector on the CPU, else a deeper search
    filtered here), so results equal those of an index built without them.
    """

    name = "index"

    def __init__(self, dim: int, query_chunk: int = 256) -> None:
        self.dim = int(dim)
        self.query_chunk = int(query_chunk)
        self.excluded = np.zeros(0, dtype=np.int64)

    @property
    @abstractmethod
    def ntotal(self) -> int: ...

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def params(self) -> dict[str, Any]:
        """The resolved build and search parameters (written to an index manifest)."""
        return {}

    def train(self, vectors: np.ndarray) -> None:
        """Learn the index structure (coarse centroids, codebooks) from a sample of vectors."""
        self._train(self._check(vectors))

    def add(self, vectors: np.ndarray) -> None:
        vectors = self._check(vectors)
        if not self.is_trained:
            self._train(vectors)
        self._add(vectors)

    def exclude(self, rows: np.ndarray | list[int]) -> None:
        """Skip these rows in every later search (deleted documents); replaces the previous set."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.ntotal):
            raise ValueError(f"{self.name}: excluded rows must lie in 0..{self.ntotal - 1}")
        self.excluded = rows

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check(queries)
        if k <= 0:
            raise ValueError("k must be positive")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        kk = min(k, self.ntotal - len(self.excluded))
        if kk <= 0:
            return scores, ids
        for start in range(0, len(queries), self.query_chunk):
            chunk = queries[start : start + self.query_chunk]
            s, i = self._search_excluding(chunk, kk) if len(self.excluded) else self._search(chunk, kk)
            s = np.where(i < 0, -np.inf, s).astype(np.float32, copy=False)
            scores[start : start + len(chunk), :kk] = s
            ids[start : start + len(chunk), :kk] = i
        return scores, ids

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the index to one file atomically (FAISS's own format; never pickle)."""
        with atomic_open(path, "wb") as handle:
            self.write(handle)

    def write(self, handle: IO[bytes]) -> None:
        """Stream the index's file format to ``handle`` (anything with ``write(bytes)``)."""
        raise NotImplementedError(f"{self.name} indexes cannot be saved")

    @classmethod
    def load(cls, path: str | os.PathLike[str], query_chunk: int = 256, **params: Any) -> VectorIndex:
        """Read an index written by ``save``; ``params`` may change search-time settings (efSearch, nprobe)."""
        raise NotImplementedError(f"{cls.name} indexes cannot be loaded")

    def _search_excluding(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k skipping ``self.excluded``: search ``k + len(excluded)`` deep and drop excluded rows."""
        deep = min(self.ntotal, k + len(self.excluded))
        scores, ids = self._search(queries, deep)
        keep = ~np.isin(ids, self.excluded) & (ids >= 0)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        for q in range(len(queries)):
            row_s, row_i = scores[q][keep[q]][:k], ids[q][keep[q]][:k]
            out_s[q, : len(row_s)], out_i[q, : len(row_i)] = row_s, row_i
        return out_s, out_i

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"{self.name}: expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors

    def _train(self, vectors: np.ndarray) -> None:  # noqa: B027 - optional hook
        """Learn from ``vectors``; nothing to learn by default."""

    @abstractmethod
    def _add(self, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) for a chunk of queries, k <= ntotal, best first."""
