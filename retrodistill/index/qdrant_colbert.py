"""ColBERT token vectors in a Qdrant multi-vector collection: the ``qdrant-colbert`` index type, the
multi-vector counterpart of ``qdrant`` (``pip install 'retrodistill[qdrant]'``).

Each passage is one point holding its (tokens, dim) matrix; the collection compares with Qdrant's
``MAX_SIM`` on the dot product, so a point's score is the sum over query tokens of the largest inner
product with any of its tokens: the MaxSim of the ``colbert`` index, computed by the database (higher =
more relevant). Token vectors are rounded to float16 before upload, the values the ``colbert`` index
stores, so both score the same numbers. Token pooling (``pool_factor``) works as it does there.

On a server, Qdrant's HNSW graph over the multi-vectors answers (``hnsw_ef``), ``exact=True`` scans every
point; local mode (no ``url``) always scans, and its index file carries the passage offsets and float16
tokens (``.npy``, no pickle) so the directory is self-contained. Deleted rows are a ``must_not`` filter.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from retrodistill.errors import ConfigError
from retrodistill.index.multivector import pool_tokens
from retrodistill.index.qdrant import QdrantCollection


class QdrantMultiVectorIndex(QdrantCollection):
    """Passages of ``dim``-d token vectors as points of one multi-vector collection; ``search`` takes
    (n, query tokens, dim) queries and returns (scores, rows) like the ``colbert`` index."""

    name = "qdrant-colbert"
    FORMAT = "retrodistill-qdrant-multivector/1"
    multi_vector = True
    on_gpu = False
    is_trained = True

    def __init__(
        self,
        dim: int,
        query_chunk: int = 64,
        device: str = "auto",
        url: str | None = None,
        collection: str | None = None,
        exact: bool = False,
        hnsw_ef: int = 128,
        m: int = 16,
        ef_construct: int = 100,
        pool_factor: int = 1,
        api_key_env: str = "QDRANT_API_KEY",
        upload_batch: int = 64,
        timeout: int = 60,
    ) -> None:
        if min(dim, query_chunk, pool_factor) < 1:
            raise ConfigError(f"{self.name}: dim, query_chunk and pool_factor must be positive")
        self.dim, self.query_chunk, self.pool_factor = int(dim), int(query_chunk), int(pool_factor)
        self.excluded = np.zeros(0, dtype=np.int64)
        self._connect(url, collection, exact, hnsw_ef, m, ef_construct, api_key_env, upload_batch, timeout)
        self._ntokens = 0
        self._local: list[np.ndarray] = []

    @property
    def ntokens(self) -> int:
        return self._ntokens

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "pool_factor": self.pool_factor}

    def _vector_params(self) -> Any:
        models = self.models
        return models.VectorParams(
            size=self.dim,
            distance=models.Distance.DOT,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        )

    def _fits(self, vectors: Any) -> str | None:
        size = getattr(vectors, "size", None)
        if size != self.dim:
            return f"holds {size}-d vectors, the index directory {self.dim}-d token vectors"
        if getattr(vectors, "multivector_config", None) is None:
            return "holds one vector per point, the index directory ColBERT token vectors (multi-vector points)"
        return None

    def add(self, docs: Sequence[np.ndarray]) -> None:
        """Append passages, each a (tokens >= 1, dim) float array, pooled by ``pool_factor``."""
        pooled = []
        for doc in docs:
            doc = np.asarray(doc, dtype=np.float32)
            if doc.ndim != 2 or doc.shape[1] != self.dim or not len(doc):
                raise ValueError(f"{self.name}: each passage must be (tokens >= 1, {self.dim}), got {doc.shape}")
            pooled.append(pool_tokens(doc, self.pool_factor).astype(np.float16))
        self._append(pooled)

    def _append(self, passages: list[np.ndarray]) -> None:
        self._upsert(passages)
        self._ntokens += sum(len(p) for p in passages)
        if self.url is None:
            self._local.extend(passages)

    def exclude(self, rows: Sequence[int] | np.ndarray) -> None:
        """Skip these passages (deleted documents) in every later search; replaces the previous set."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.ntotal):
            raise ValueError(f"{self.name}: excluded rows must lie in 0..{self.ntotal - 1}")
        self.excluded = rows

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passages for (n, query tokens, dim) queries: (scores, rows), both (n, k), best first,
        -inf / -1 where fewer than k passages qualify."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 3 or queries.shape[2] != self.dim:
            raise ValueError(f"{self.name}: expected queries (n, tokens, {self.dim}), got {queries.shape}")
        if k <= 0:
            raise ValueError("k must be positive")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        kk = min(k, self.ntotal - len(self.excluded))
        for start in range(0, len(queries), self.query_chunk) if kk > 0 else ():
            chunk = queries[start : start + self.query_chunk]
            s, i = self._query([q.tolist() for q in chunk], kk)
            scores[start : start + len(chunk), :kk], rows[start : start + len(chunk), :kk] = s, i
        return scores, rows

    def save(self, path: str | os.PathLike[str]) -> None:
        from retrodistill.atomic import atomic_open

        with atomic_open(path, "wb") as handle:
            self.write(handle)

    def write(self, handle: IO[bytes]) -> None:
        """A JSON line naming the collection; in local mode the passage offsets (int64) and the float16
        token matrix follow as two ``.npy`` arrays."""
        handle.write(self._header(tokens=self.ntokens, pool_factor=self.pool_factor))
        if self.url is None:
            lengths = [len(p) for p in self._local]
            offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
            tokens = np.concatenate(self._local) if self._local else np.zeros((0, self.dim), dtype=np.float16)
            np.save(handle, offsets, allow_pickle=False)
            np.save(handle, tokens.astype(np.float16), allow_pickle=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], query_chunk: int = 64, mmap: bool = True, **params: Any
    ) -> QdrantMultiVectorIndex:
        """Reconnect to the collection named in the file (``url`` / ``collection`` in ``params`` override
        it), or refill the local one from the stored tokens; ``pool_factor`` is fixed at build time."""
        header, payload = cls._read(path)
        url = params.pop("url", header["url"])
        collection = params.pop("collection", header["collection"])
        pool_factor = params.pop("pool_factor", header["pool_factor"])
        if pool_factor != header["pool_factor"]:
            raise ConfigError(f"{cls.name}: pool_factor is fixed at build time ({header['pool_factor']}); rebuild")
        self = cls(int(header["dim"]), query_chunk, url=url, collection=collection, pool_factor=pool_factor, **params)
        rows = int(header["rows"])
        if url is None:
            buffer = io.BytesIO(payload)
            offsets = np.load(buffer, allow_pickle=False)
            tokens = np.load(buffer, allow_pickle=False)
            if (
                offsets.shape != (rows + 1,)
                or tokens.shape != (int(header["tokens"]), self.dim)
                or offsets[0] != 0
                or offsets[-1] != len(tokens)
                or np.any(np.diff(offsets) < 1)
            ):
                raise ValueError("the stored token vectors, offsets and header disagree")
            self._append([tokens[a:b] for a, b in itertools.pairwise(offsets)])
            return self
        self._attach(rows)
        self._ntokens = int(header["tokens"])
        return self
