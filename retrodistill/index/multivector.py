"""A multi-vector (ColBERT) index: full-corpus late-interaction retrieval, as ColBERT's end-to-end mode does it
(Khattab & Zaharia, SIGIR 2020, section 3.6), without PLAID's residual compression.

Every passage is a bag of token vectors, stored in float16 (one matrix for the corpus plus row offsets).
A FAISS index over the token vectors generates candidates: each query token finds its ``ncandidates``
nearest passage tokens (inner product) and the passages that own them are the candidates. Every
candidate is then scored exactly: MaxSim = sum over query tokens of the max inner product with any of the
passage's tokens, on the stored float16 tokens cast to float32; higher = more relevant. ``exhaustive``
scores every passage (the reference the candidate stage is measured against).

The token index is exact (``IndexFlatIP``) while ``nlist`` is 0, else an inverted file of ``nlist`` cells
with 8-bit scalar-quantised tokens (``IVF{nlist},SQ8``, 1 byte per dimension), ``nprobe`` cells searched.
Token pooling (PyLate's ``pool_factor``): each passage's tokens are clustered (Ward linkage on their
vectors) into ``ceil(n / pool_factor)`` groups whose means replace them, shrinking the store and the
token index by about ``pool_factor``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrodistill.atomic import atomic_open
from retrodistill.errors import ConfigError

TOKENS, OFFSETS, TOKEN_INDEX, META = "tokens.npy", "offsets.npy", "tokens.faiss", "multivector.json"


def pool_tokens(tokens: np.ndarray, pool_factor: int) -> np.ndarray:
    """A passage's (n, dim) token vectors pooled to ceil(n / pool_factor) cluster means (Ward linkage)."""
    n = len(tokens)
    target = max(1, math.ceil(n / pool_factor))
    if pool_factor <= 1 or n <= target or n < 3:
        return tokens
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(tokens.astype(np.float64), method="ward"), t=target, criterion="maxclust")
    return np.stack([tokens[labels == c].mean(axis=0) for c in np.unique(labels)]).astype(np.float32)


class MultiVectorIndex:
    """Token vectors of ``dim`` dimensions per passage; passages are rows in insertion order."""

    name = "colbert"

    def __init__(
        self,
        dim: int,
        ncandidates: int = 64,
        nlist: int = 0,
        nprobe: int = 16,
        pool_factor: int = 1,
        exhaustive: bool = False,
        query_chunk: int = 64,
    ) -> None:
        if min(dim, ncandidates, nprobe, pool_factor, query_chunk) < 1 or nlist < 0:
            raise ConfigError("colbert index: dim, ncandidates, nprobe, pool_factor must be positive, nlist >= 0")
        from retrodistill.index.faiss_base import import_faiss

        self.faiss = import_faiss()
        self.dim, self.ncandidates, self.nlist, self.nprobe = int(dim), int(ncandidates), int(nlist), int(nprobe)
        self.pool_factor, self.exhaustive, self.query_chunk = int(pool_factor), bool(exhaustive), int(query_chunk)
        self.tokens = np.zeros((0, dim), dtype=np.float16)
        self.offsets = np.zeros(1, dtype=np.int64)
        self.excluded = np.zeros(0, dtype=np.int64)
        self._token_index: Any = None

    @property
    def ntotal(self) -> int:
        return len(self.offsets) - 1

    @property
    def ntokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def params(self) -> dict[str, Any]:
        return {
            "ncandidates": self.ncandidates,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "pool_factor": self.pool_factor,
            "exhaustive": self.exhaustive,
        }

    def add(self, docs: Sequence[np.ndarray]) -> None:
        """Append passages, each a (tokens, dim) float array (at least one token)."""
        pooled = []
        for doc in docs:
            doc = np.asarray(doc, dtype=np.float32)
            if doc.ndim != 2 or doc.shape[1] != self.dim or not len(doc):
                raise ValueError(f"colbert index: each passage must be (tokens >= 1, {self.dim}), got {doc.shape}")
            pooled.append(pool_tokens(doc, self.pool_factor))
        if not pooled:
            return
        block = np.concatenate(pooled)
        lengths = np.array([len(p) for p in pooled], dtype=np.int64)
        if self._token_index is None:
            self._token_index = self._new_token_index(block)
        self._token_index.add(block)
        self.tokens = np.concatenate([self.tokens, block.astype(np.float16)])
        self.offsets = np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(lengths)])

    def _new_token_index(self, sample: np.ndarray) -> Any:
        faiss = self.faiss
        if self.nlist == 0:
            return faiss.IndexFlatIP(self.dim)
        if len(sample) < 39 * self.nlist:
            raise ConfigError(f"colbert index: nlist={self.nlist} needs >= {39 * self.nlist} tokens to train on")
        index = faiss.index_factory(self.dim, f"IVF{self.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        return index

    def exclude(self, rows: Sequence[int] | np.ndarray) -> None:
        """Skip these passages (deleted documents) in every later search; replaces the previous set."""
        self.excluded = np.unique(np.asarray(rows, dtype=np.int64))

    def passage(self, row: int) -> np.ndarray:
        """Passage ``row``'s stored token vectors as float32."""
        return np.asarray(self.tokens[self.offsets[row] : self.offsets[row + 1]], dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passages for (n, query tokens, dim) queries: (scores, rows), both (n, k), best first,
        -inf / -1 where fewer than k passages qualify. Ties go to the lower row."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 3 or queries.shape[2] != self.dim:
            raise ValueError(f"colbert index: expected queries (n, tokens, {self.dim}), got {queries.shape}")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        if self.ntotal == 0:
            return scores, rows
        owners = None if self.exhaustive else self._candidates(queries)
        for i, query in enumerate(queries):
            cands = np.arange(self.ntotal) if owners is None else owners[i]
            cands = cands[~np.isin(cands, self.excluded)] if len(self.excluded) else cands
            if not len(cands):
                continue
            found = self.maxsim(query, cands)
            order = np.lexsort((cands, -found))[:k]
            scores[i, : len(order)], rows[i, : len(order)] = found[order], cands[order]
        return scores, rows

    def _candidates(self, queries: np.ndarray) -> list[np.ndarray]:
        """Per query, the passages owning any of its tokens' ``ncandidates`` nearest tokens."""
        n, length, _ = queries.shape
        if hasattr(self._token_index, "nprobe"):
            self._token_index.nprobe = self.nprobe
        kk = min(self.ncandidates, self.ntokens)
        out = []
        for start in range(0, n, self.query_chunk):
            chunk = queries[start : start + self.query_chunk]
            _, ids = self._token_index.search(chunk.reshape(-1, self.dim), kk)
            ids = ids.reshape(len(chunk), length * kk)
            for row in ids:
                row = row[row >= 0]
                out.append(np.unique(np.searchsorted(self.offsets, row, side="right") - 1))
        return out

    def maxsim(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact MaxSim of one (query tokens, dim) query against passages ``rows``, float32."""
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        spans = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        sims = np.asarray(self.tokens[spans], dtype=np.float32) @ query.T  # (tokens of all rows, query tokens)
        owner = np.repeat(np.arange(len(rows)), ends - starts)
        best = np.full((len(rows), query.shape[0]), -np.inf, dtype=np.float32)
        np.maximum.at(best, owner, sims)
        return best.sum(axis=1)

    def write(self, folder: str | Path) -> list[str]:
        """The token store, offsets, token index and settings as files in ``folder`` (each atomic); their names."""
        folder = Path(folder)
        with atomic_open(folder / TOKENS, "wb") as handle:
            np.save(handle, self.tokens, allow_pickle=False)
        with atomic_open(folder / OFFSETS, "wb") as handle:
            np.save(handle, self.offsets, allow_pickle=False)
        with atomic_open(folder / TOKEN_INDEX, "wb") as handle:
            self.faiss.write_index(self._token_index, self.faiss.PyCallbackIOWriter(handle.write))
        meta = {"dim": self.dim, "passages": self.ntotal, "tokens": self.ntokens, **self.params}
        with atomic_open(folder / META, "w") as handle:
            handle.write(json.dumps(meta, indent=2) + "\n")
        return [TOKENS, OFFSETS, TOKEN_INDEX, META]

    @classmethod
    def load(cls, folder: str | Path, mmap: bool = True, **search: Any) -> MultiVectorIndex:
        """Read ``write``'s files (tokens memory-mapped unless ``mmap=False``); ``search`` overrides
        ncandidates / nprobe / exhaustive."""
        folder = Path(folder)
        meta = json.loads((folder / META).read_text())
        unknown = set(search) - {"ncandidates", "nprobe", "exhaustive"}
        if unknown:
            raise ConfigError(f"colbert index: unknown search parameter {sorted(unknown)[0]!r}")
        build = {k: meta[k] for k in ("ncandidates", "nlist", "nprobe", "pool_factor", "exhaustive")}
        self = cls(int(meta["dim"]), **{**build, **search})
        self.tokens = np.load(folder / TOKENS, mmap_mode="r" if mmap else None, allow_pickle=False)
        self.offsets = np.load(folder / OFFSETS, allow_pickle=False)
        self._token_index = self.faiss.read_index(str(folder / TOKEN_INDEX))
        if self.tokens.shape != (meta["tokens"], self.dim) or len(self.offsets) != meta["passages"] + 1:
            raise ValueError("the token store, offsets and settings disagree")
        return self
