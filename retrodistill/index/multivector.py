"""A multi-vector (ColBERT) index: full-corpus late-interaction retrieval, as ColBERT's end-to-end mode does it
(Khattab & Zaharia, SIGIR 2020, section 3.6), without PLAID's residual compression.

Every passage is a bag of token vectors, stored in float16 (one matrix for the corpus plus row offsets).
A FAISS index over the token vectors generates candidates: each query token finds its ``ncandidates``
nearest passage tokens (inner product) and the passages that own them are the candidates. Every
candidate is then scored exactly: MaxSim = sum over query tokens of the max inner product with any of the
passage's tokens, on the stored float16 tokens cast to float32; higher = more relevant. ``exhaustive``
scores every passage (the reference the candidate stage is measured against).

The token index is an inverted file of ``nlist`` cells with 8-bit scalar-quantised tokens (``IVF{nlist},SQ8``,
1 byte per dimension), ``nprobe`` cells searched; ``nlist=None`` (default) picks ``default_nlist`` of the first
batch of tokens, ``nlist=0`` an exact ``IndexFlatIP`` (it scans every token: ~10x slower per query on SciFact).
Token pooling (PyLate's ``pool_factor``): each passage's tokens are clustered (Ward linkage on their
vectors) into ``ceil(n / pool_factor)`` groups whose means replace them, shrinking the store and the
token index by about ``pool_factor``.

The index is one file (``index.colbert`` in an index directory): a magic line, a JSON header (dim, counts,
parameters, and where each section starts), then 64-byte-aligned sections: the passage offsets (int64),
the float16 token store (memory-mapped when loaded) and the FAISS token index. GPU: with faiss-gpu and a
GPU, ``device="auto"`` puts the token index on GPU 0; the MaxSim stage runs in numpy either way.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from retrodistill.errors import ConfigError

MAGIC = b"retrodistill-multivector/1\n"
ALIGN = 64
BUILD = ("nlist", "pool_factor")
SEARCH = ("ncandidates", "nprobe", "exhaustive")


def pool_tokens(tokens: np.ndarray, pool_factor: int) -> np.ndarray:
    """A passage's (n, dim) token vectors pooled to ceil(n / pool_factor) cluster means (Ward linkage)."""
    n = len(tokens)
    target = max(1, math.ceil(n / pool_factor))
    if pool_factor <= 1 or n <= target or n < 3:
        return tokens
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(tokens.astype(np.float64), method="ward"), t=target, criterion="maxclust")
    return np.stack([tokens[labels == c].mean(axis=0) for c in np.unique(labels)]).astype(np.float32)


def default_nlist(n_tokens: int) -> int:
    """The power of two nearest sqrt(tokens), at most tokens / 39 (FAISS's least points per centroid);
    0 (exact) below 64 cells."""
    nlist = 2 ** round(math.log2(max(n_tokens, 1)) / 2)
    while nlist > 1 and 39 * nlist > n_tokens:
        nlist //= 2
    return nlist if nlist >= 64 else 0


class MultiVectorIndex:
    """Token vectors of ``dim`` dimensions per passage; passages are rows in insertion order. ``search``
    takes (n, query tokens, dim) queries and returns (scores, rows) like a ``VectorIndex``."""

    name = "colbert"
    multi_vector = True

    def __init__(
        self,
        dim: int,
        ncandidates: int = 64,
        nlist: int | None = None,
        nprobe: int = 16,
        pool_factor: int = 1,
        exhaustive: bool = False,
        query_chunk: int = 64,
        device: str = "auto",
    ) -> None:
        if min(dim, ncandidates, nprobe, pool_factor, query_chunk) < 1 or (nlist is not None and nlist < 0):
            raise ConfigError("colbert index: ncandidates, nprobe and pool_factor must be positive, nlist >= 0")
        from retrodistill.index.faiss_base import DEVICES, import_faiss

        if device not in DEVICES:
            raise ConfigError(f"unknown device {device!r} for a colbert index; choose one of: {', '.join(DEVICES)}")
        self.faiss = import_faiss()
        self.dim, self.ncandidates, self.nprobe = int(dim), int(ncandidates), int(nprobe)
        self.nlist = None if nlist is None else int(nlist)
        self.pool_factor, self.exhaustive, self.query_chunk = int(pool_factor), bool(exhaustive), int(query_chunk)
        self.device, self.on_gpu = device, False
        self.tokens: np.ndarray = np.zeros((0, dim), dtype=np.float16)
        self.offsets = np.zeros(1, dtype=np.int64)
        self.excluded = np.zeros(0, dtype=np.int64)
        self._token_index: Any = None
        self._gpu_resources: Any = None

    @property
    def ntotal(self) -> int:
        return len(self.offsets) - 1

    @property
    def ntokens(self) -> int:
        return int(self.offsets[-1])

    @property
    def is_trained(self) -> bool:
        return True

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
        """Append passages, each a (tokens, dim) float array (at least one token). The first add trains
        the token index (IVF) on its tokens; later adds keep its cells."""
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
            self._token_index = self._place(self._new_token_index(block))
        self._token_index.add(block)
        self.tokens = np.concatenate([self.tokens, block.astype(np.float16)])
        self.offsets = np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(lengths)])

    def _new_token_index(self, sample: np.ndarray) -> Any:
        faiss = self.faiss
        if self.nlist is None:
            self.nlist = default_nlist(len(sample))
        if self.nlist == 0:
            return faiss.IndexFlatIP(self.dim)
        if len(sample) < 39 * self.nlist:
            raise ConfigError(
                f"colbert index: nlist={self.nlist} needs >= {39 * self.nlist} tokens to train on, the first "
                f"batch has {len(sample)}; lower nlist"
            )
        index = faiss.index_factory(self.dim, f"IVF{self.nlist},SQ8", faiss.METRIC_INNER_PRODUCT)
        index.train(sample)
        return index

    def _place(self, index: Any) -> Any:
        """``index`` on GPU 0 when the device asks for it and faiss sees a GPU."""
        from retrodistill.index.faiss_base import gpu_count

        if self.device == "cpu" or gpu_count() == 0:
            if self.device == "gpu":
                raise ConfigError("device=gpu but faiss sees no GPU; install faiss-gpu or use device=auto")
            return index
        self._gpu_resources = self.faiss.StandardGpuResources()
        self.on_gpu = True
        return self.faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    def exclude(self, rows: Sequence[int] | np.ndarray) -> None:
        """Skip these passages (deleted documents) in every later search; replaces the previous set."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= self.ntotal):
            raise ValueError(f"colbert index: excluded rows must lie in 0..{self.ntotal - 1}")
        self.excluded = rows

    def passage(self, row: int) -> np.ndarray:
        """Passage ``row``'s stored token vectors as float32."""
        return np.asarray(self.tokens[self.offsets[row] : self.offsets[row + 1]], dtype=np.float32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passages for (n, query tokens, dim) queries: (scores, rows), both (n, k), best first,
        -inf / -1 where fewer than k passages qualify. Ties go to the lower row."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 3 or queries.shape[2] != self.dim:
            raise ValueError(f"colbert index: expected queries (n, tokens, {self.dim}), got {queries.shape}")
        if k <= 0:
            raise ValueError("k must be positive")
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

    def maxsim(self, query: np.ndarray, rows: np.ndarray, block: int = 512) -> np.ndarray:
        """Exact MaxSim of one (query tokens, dim) query against passages ``rows``, float32, computed
        ``block`` passages at a time on the stored float16 tokens cast to float32."""
        out = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), block):
            part = rows[start : start + block]
            starts, ends = self.offsets[part], self.offsets[part + 1]
            lengths = ends - starts
            firsts = np.cumsum(lengths) - lengths
            spans = np.repeat(starts - firsts, lengths) + np.arange(int(lengths.sum()))
            sims = np.asarray(self.tokens[spans], dtype=np.float32) @ query.T  # (tokens of part, query tokens)
            out[start : start + len(part)] = np.maximum.reduceat(sims, firsts, axis=0).sum(axis=1)
        return out

    def write(self, handle: IO[bytes]) -> None:
        """The index as one file (see the module docstring), streamed through ``handle.write``."""
        if self._token_index is None:
            raise ValueError("colbert index: nothing to save; add passages first")
        cpu = self.faiss.index_gpu_to_cpu(self._token_index) if self.on_gpu else self._token_index
        token_index = self.faiss.serialize_index(cpu)
        sections, at = {}, 0
        for name, size in (
            ("offsets", self.offsets.nbytes),
            ("tokens", self.ntokens * self.dim * 2),
            ("token_index", token_index.nbytes),
        ):
            sections[name] = [at, int(size)]
            at += -(-size // ALIGN) * ALIGN
        header = {"dim": self.dim, "passages": self.ntotal, "tokens": self.ntokens, **self.params, "sections": sections}
        raw = json.dumps(header).encode()
        lead = len(MAGIC) + 8 + len(raw)
        handle.write(MAGIC + struct.pack("<Q", len(raw)) + raw + b"\0" * (-lead % ALIGN))
        tokens = np.ascontiguousarray(self.tokens, dtype=np.float16)
        parts = (self.offsets.astype("<i8").tobytes(), None, token_index.tobytes())
        for (_, size), data in zip(sections.values(), parts, strict=True):
            if data is None:
                for start in range(0, len(tokens), 1 << 16):
                    handle.write(tokens[start : start + (1 << 16)].tobytes())
            else:
                handle.write(data)
            handle.write(b"\0" * (-size % ALIGN))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], query_chunk: int = 64, mmap: bool = True, **params: Any
    ) -> MultiVectorIndex:
        """Read ``write``'s file, the token store memory-mapped unless ``mmap=False``. ``params`` may set
        the search parameters (ncandidates, nprobe, exhaustive) and the device; build parameters must
        equal the file's. ValueError when the file is damaged."""
        device = params.pop("device", "auto")
        unknown = set(params) - set(BUILD) - set(SEARCH)
        if unknown:
            raise ConfigError(f"colbert index: unknown search parameter {sorted(unknown)[0]!r}; it has: {list(SEARCH)}")
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                raise ValueError("not a retrodistill multi-vector index file")
            raw = handle.read(8)
            if len(raw) != 8:
                raise ValueError("the file ends inside its header")
            (length,) = struct.unpack("<Q", raw)
            header = json.loads(handle.read(min(length, size)).decode("utf-8"))
        lead = len(MAGIC) + 8 + length
        base = lead + (-lead % ALIGN)
        for key in BUILD:
            if key in params and params[key] != header[key]:
                raise ConfigError(f"colbert index: {key} is fixed at build time ({header[key]}); rebuild to change it")
        search = {key: params.get(key, header[key]) for key in SEARCH}
        self = cls(
            int(header["dim"]), **search, **{k: header[k] for k in BUILD}, query_chunk=query_chunk, device=device
        )
        sections = {name: (base + start, n) for name, (start, n) in header["sections"].items()}
        if any(start + n > size for start, n in sections.values()):
            raise ValueError("the file is shorter than its header says")
        start, n = sections["offsets"]
        self.offsets = np.fromfile(path, dtype="<i8", count=n // 8, offset=start).astype(np.int64)
        start, n = sections["tokens"]
        shape = (int(header["tokens"]), self.dim)
        if mmap:
            self.tokens = np.memmap(path, dtype=np.float16, mode="r", offset=start, shape=shape)
        else:
            self.tokens = np.fromfile(path, dtype=np.float16, count=n // 2, offset=start).reshape(shape)
        start, n = sections["token_index"]
        cpu = self.faiss.deserialize_index(np.fromfile(path, dtype=np.uint8, count=n, offset=start))
        self._token_index = self._place(cpu)
        offsets = self.offsets
        if (
            len(offsets) != header["passages"] + 1
            or offsets[0] != 0
            or offsets[-1] != shape[0]
            or np.any(np.diff(offsets) < 1)
            or cpu.ntotal != shape[0]
            or cpu.d != self.dim
        ):
            raise ValueError("the token store, offsets and token index disagree")
        return self
