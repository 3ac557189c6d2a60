"""Compressed approximate search: an inverted file with product-quantised codes (FAISS IndexIVFPQ)."""

from __future__ import annotations

from typing import Any

from retrodistill.errors import ConfigError
from retrodistill.index.ivf import IVFIndex


class IVFPQIndex(IVFIndex):
    """Each vector is stored as ``m`` bytes (``m`` sub-vectors of ``dim / m`` dimensions, 8-bit codes)
    plus its 8-byte id, in ``nlist`` k-means cells; a query scans ``nprobe`` cells. Scores are the
    PQ estimate of the inner product (approximate; re-rank with exact vectors when it matters).
    ``pq_bytes`` is an alias of ``m``; ``m`` must divide ``dim``. Needs training.
    """

    name = "ivfpq"

    def __init__(
        self,
        dim: int,
        query_chunk: int = 256,
        device: str = "auto",
        nlist: int | None = None,
        nprobe: int = 16,
        m: int | None = None,
        pq_bytes: int | None = None,
        nbits: int = 8,
    ) -> None:
        if m is not None and pq_bytes is not None and m != pq_bytes:
            raise ConfigError("ivfpq: m and pq_bytes are the same setting; give one")
        m = int(m or pq_bytes or 48)
        if m < 1 or dim % m:
            raise ConfigError(f"ivfpq: m (pq_bytes) must divide the dimension {dim}, got {m}")
        if nbits != 8:
            raise ConfigError("ivfpq: only nbits=8 is supported (one byte per sub-vector)")
        self.m, self.nbits = m, int(nbits)
        super().__init__(dim, query_chunk, device, nlist, nprobe)

    @property
    def params(self) -> dict[str, Any]:
        return {**super().params, "m": self.m, "nbits": self.nbits}

    def _new_index(self, n_train: int) -> Any:
        quantizer = self.faiss.IndexFlatIP(self.dim)
        nlist = self._resolve_nlist(n_train)
        if n_train and n_train < 2**self.nbits:
            raise ConfigError(f"ivfpq: training needs at least {2**self.nbits} vectors, got {n_train}")
        return self.faiss.IndexIVFPQ(quantizer, self.dim, nlist, self.m, self.nbits, self.faiss.METRIC_INNER_PRODUCT)

    def _cloner_options(self) -> Any:
        options = self.faiss.GpuClonerOptions()
        options.useFloat16 = True  # GPU IVF-PQ needs float16 lookup tables for m > 48 sub-quantisers
        return options

    @classmethod
    def _build_params_of(cls, cpu_index: Any) -> dict[str, Any]:
        import faiss

        ivf = faiss.downcast_index(faiss.extract_index_ivf(cpu_index))
        return {"nlist": int(ivf.nlist), "m": int(ivf.pq.M), "nbits": int(ivf.pq.nbits)}
