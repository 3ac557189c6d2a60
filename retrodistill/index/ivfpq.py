"""Compressed approximate search: an inverted file with product-quantised codes (FAISS IndexIVFPQ),
optionally re-ranked with stored vectors (FAISS IndexRefine)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from retrodistill.errors import ConfigError
from retrodistill.index.ivf import IVFIndex

REFINE = {"flat": None, "fp16": "QT_fp16", "sq8": "QT_8bit"}


class IVFPQIndex(IVFIndex):
    """Each vector is stored as ``m`` bytes (``m`` sub-vectors of ``dim / m`` dimensions, 8-bit codes)
    plus its 8-byte id, in ``nlist`` k-means cells; a query scans ``nprobe`` cells (chosen at build time for
    ``recall_target`` when not given, as for IVFIndex). Scores are the
    PQ estimate of the inner product (approximate; re-rank with exact vectors when it matters).
    ``pq_bytes`` is an alias of ``m``; ``m`` must divide ``dim``. Needs training.

    ``refine`` (``flat``, ``fp16`` or ``sq8``) also stores each vector in that form (4, 2 or 1 bytes per
    dimension) and re-scores the PQ shortlist of ``k * k_factor`` candidates with it, so scores are exact
    (flat) or near-exact inner products. The stored vectors are read memory-mapped from the index file
    (``mmap``, the default when loading), so RAM holds the PQ codes and the page cache what queries touch.
    A memory-mapped index cannot take vectors: updates load it with ``mmap=False``. CPU only.

    ``opq=True`` learns a rotation before the PQ (FAISS OPQMatrix, Ge et al. 2013, "Optimized Product
    Quantization") so each sub-vector carries a similar share of the variance; the codes stay ``m`` bytes,
    the rotation adds ``dim * dim * 4`` bytes once. Refinement, when set, re-scores with the unrotated vectors.
    """

    name = "ivfpq"

    def __init__(
        self,
        dim: int,
        query_chunk: int = 256,
        device: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        m: int | None = None,
        pq_bytes: int | None = None,
        nbits: int = 8,
        refine: str | None = None,
        k_factor: int = 4,
        opq: bool = False,
        recall_target: float = 0.95,
    ) -> None:
        if m is not None and pq_bytes is not None and m != pq_bytes:
            raise ConfigError("ivfpq: m and pq_bytes are the same setting; give one")
        m = int(m or pq_bytes or 48)
        if m < 1 or dim % m:
            raise ConfigError(f"ivfpq: m (pq_bytes) must divide the dimension {dim}, got {m}")
        if nbits != 8:
            raise ConfigError("ivfpq: only nbits=8 is supported (one byte per sub-vector)")
        if refine is not None and refine not in REFINE:
            raise ConfigError(f"ivfpq: refine must be one of {', '.join(REFINE)}, got {refine!r}")
        if k_factor < 1:
            raise ConfigError("ivfpq: k_factor must be positive")
        self.m, self.nbits = m, int(nbits)
        self.refine, self.k_factor, self.opq = refine, int(k_factor), bool(opq)
        self.gpu_capable = refine is None  # FAISS has no GPU IndexRefine
        self.mmapped = False
        super().__init__(dim, query_chunk, device, nlist, nprobe, recall_target)

    @property
    def params(self) -> dict[str, Any]:
        extra = {"refine": self.refine, "k_factor": self.k_factor} if self.refine else {}
        rotation = {"opq": True} if self.opq else {}
        return {**super().params, "m": self.m, "nbits": self.nbits, **rotation, **extra}

    def _new_index(self, n_train: int) -> Any:
        quantizer = self.faiss.IndexFlatIP(self.dim)
        nlist = self._resolve_nlist(n_train)
        if n_train and n_train < 2**self.nbits:
            raise ConfigError(f"ivfpq: training needs at least {2**self.nbits} vectors, got {n_train}")
        ivfpq = self.faiss.IndexIVFPQ(quantizer, self.dim, nlist, self.m, self.nbits, self.faiss.METRIC_INNER_PRODUCT)
        coarse: Any = ivfpq
        self._parts: list[Any] = [quantizer, ivfpq]  # the Python objects FAISS points into
        if self.opq:
            rotation = self.faiss.OPQMatrix(self.dim, self.m)
            coarse = self.faiss.IndexPreTransform(rotation, ivfpq)
            self._parts += [rotation, coarse]
        if self.refine is None:
            return coarse
        if REFINE[self.refine] is None:
            exact = self.faiss.IndexFlatIP(self.dim)
        else:
            kind = getattr(self.faiss.ScalarQuantizer, REFINE[self.refine])
            exact = self.faiss.IndexScalarQuantizer(self.dim, kind, self.faiss.METRIC_INNER_PRODUCT)
        self._parts.append(exact)
        return self.faiss.IndexRefine(coarse, exact)

    def _search_params(self) -> dict[str, int]:
        params = super()._search_params()
        return {**params, "k_factor_rf": self.k_factor} if self.refine else params

    def set_search_params(self, **params: int) -> None:
        """As FaissIndex's, plus ``k_factor`` (the refine shortlist is k * k_factor) when ``refine`` is set."""
        if "k_factor" in params:
            value = int(params.pop("k_factor"))
            if not self.refine or value < 1:
                raise ConfigError("ivfpq: k_factor needs refine and must be positive")
            self.k_factor = value
        params.pop("k_factor_rf", None)
        super().set_search_params(**params)

    def _selector_params(self, selector: Any) -> Any:
        """The IVF's parameters (selector, nprobe), wrapped for the rotation and the refinement when set."""
        ivf = self.faiss.SearchParametersIVF()
        ivf.sel, ivf.nprobe = selector, super()._search_params()["nprobe"]
        params, keep = ivf, [ivf]
        if self.opq:
            params = self.faiss.SearchParametersPreTransform()
            params.sel, params.index_params = selector, ivf
            keep.append(params)
        if self.refine is not None:
            refine = self.faiss.IndexRefineSearchParameters()
            refine.sel, refine.base_index_params, refine.k_factor = selector, params, float(self.k_factor)
            params = refine
        self._base_params = keep  # kept alive for the call
        return params

    def _add(self, vectors: np.ndarray) -> None:
        if self.mmapped:
            raise ConfigError(
                "ivfpq: this index was opened memory-mapped (refine) and cannot take vectors; load it with mmap=False"
            )
        super()._add(vectors)

    @classmethod
    def load(cls, path: str | os.PathLike[str], query_chunk: int = 256, mmap: bool = True, **params: Any) -> Any:
        """As FaissIndex.load; with ``refine`` and ``mmap`` the stored vectors stay on disk, memory-mapped."""
        if not (mmap and params.get("refine")):
            return super().load(path, query_chunk, **params)
        self = super().load(path, query_chunk, io_flags=cls._mmap_flag(), **params)
        self.mmapped = True
        return self

    @staticmethod
    def _mmap_flag() -> int:
        import faiss

        return int(faiss.IO_FLAG_MMAP_IFC)

    def _cloner_options(self) -> Any:
        options = self.faiss.GpuClonerOptions()
        options.useFloat16 = True  # GPU IVF-PQ needs float16 lookup tables for m > 48 sub-quantisers
        return options

    @classmethod
    def _build_params_of(cls, cpu_index: Any) -> dict[str, Any]:
        import faiss

        ivf = faiss.downcast_index(faiss.extract_index_ivf(cpu_index))
        params = {"nlist": int(ivf.nlist), "m": int(ivf.pq.M), "nbits": int(ivf.pq.nbits)}
        top = faiss.downcast_index(cpu_index)
        coarse = faiss.downcast_index(top.base_index) if isinstance(top, faiss.IndexRefine) else top
        if isinstance(coarse, faiss.IndexPreTransform):
            params["opq"] = True
        if isinstance(top, faiss.IndexRefine):
            exact = faiss.downcast_index(top.refine_index)
            if isinstance(exact, faiss.IndexScalarQuantizer):
                kinds = {int(getattr(faiss.ScalarQuantizer, v)): k for k, v in REFINE.items() if v}
                params["refine"] = kinds.get(int(exact.sq.qtype), "fp16")
            else:
                params["refine"] = "flat"
        return params
