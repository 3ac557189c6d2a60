"""Exact inner-product search in numpy: the oracle the FAISS indexes are checked against."""

from __future__ import annotations

import numpy as np

from retrodistill.index.base import VectorIndex


class NumpyFlatIndex(VectorIndex):
    """Scores a chunk of queries against all vectors, keeps the top k with argpartition.

    Ties are broken by the lower row number, as FAISS's flat index does.
    """

    name = "numpy"

    def __init__(self, dim: int, query_chunk: int = 256) -> None:
        super().__init__(dim, query_chunk)
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    @property
    def ntotal(self) -> int:
        return sum(len(b) for b in self._blocks)

    def _add(self, vectors: np.ndarray) -> None:
        self._blocks.append(vectors.copy())
        self._matrix = None

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._matrix is None:
            self._matrix = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        scores = queries @ self._matrix.T
        n = scores.shape[1]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(queries), 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        ids = np.take_along_axis(top, order, axis=1).astype(np.int64)
        return np.take_along_axis(top_scores, order, axis=1).astype(np.float32), ids
