"""Exact inner-product search in numpy: the oracle the FAISS indexes are checked against."""

from __future__ import annotations

import os
from typing import IO, Any

import numpy as np

from retrodistill.errors import ConfigError
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

    def write(self, handle: IO[bytes]) -> None:
        """A plain ``.npy`` matrix (no pickle)."""
        np.save(handle, self._matrix_all(), allow_pickle=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], query_chunk: int = 256, **params: Any) -> NumpyFlatIndex:
        params.pop("device", None)
        params.pop("mmap", None)
        if params:
            raise ConfigError(f"numpy takes no parameters, got: {', '.join(params)}")
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read a numpy index ({exc})") from None
        index = cls(matrix.shape[1], query_chunk)
        index.add(matrix)
        return index

    def _matrix_all(self) -> np.ndarray:
        if self._matrix is None:
            if not self._blocks:
                return np.zeros((0, self.dim), dtype=np.float32)
            self._matrix = np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
        return self._matrix

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = queries @ self._matrix_all().T
        n = scores.shape[1]
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(queries), 1))
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=1)
        ids = np.take_along_axis(top, order, axis=1).astype(np.int64)
        return np.take_along_axis(top_scores, order, axis=1).astype(np.float32), ids
