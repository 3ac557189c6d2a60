"""Shared FAISS plumbing: the CPU/GPU placement, search-time parameters, save and load.

GPU: when faiss was built with GPU support (``pip install 'retrodistill[gpu]'``, faiss-gpu-cu12) and
``faiss.get_num_gpus() > 0``, ``device="auto"`` (the default) moves flat, IVF and IVF-PQ indexes to
GPU 0 for training, adding and search; HNSW has no GPU version in FAISS and stays on the CPU.
``device="cpu"`` never uses a GPU; ``device="gpu"`` fails when none is usable. The GPU holds the
same vectors and gives the same results up to float rounding. Saved files are always CPU indexes.
"""

from __future__ import annotations

import os
from typing import IO, Any

import numpy as np

from retrodistill.errors import ConfigError, require
from retrodistill.index.base import VectorIndex

DEVICES = ("auto", "cpu", "gpu")


def import_faiss() -> Any:
    return require("faiss", purpose="FAISS indexes")


def gpu_count() -> int:
    """GPUs that faiss can use (0 with faiss-cpu)."""
    faiss = import_faiss()
    getter = getattr(faiss, "get_num_gpus", None)
    return int(getter()) if getter is not None else 0


class FaissIndex(VectorIndex):
    """A VectorIndex backed by one FAISS index (inner-product metric).

    Subclasses implement ``_new_index(n_train)`` (an empty CPU index; ``n_train`` is the number of
    training vectors, 0 when built before any data) and ``_search_params()`` (FAISS ParameterSpace
    names, e.g. ``{"nprobe": 16}``), and set ``build_on_init`` when the structure needs no data.
    """

    gpu_capable = True
    build_on_init = True
    params_class = "SearchParameters"

    def __init__(self, dim: int, query_chunk: int = 256, device: str = "auto") -> None:
        super().__init__(dim, query_chunk)
        if device not in DEVICES:
            raise ConfigError(f"unknown device {device!r} for a FAISS index; choose one of: {', '.join(DEVICES)}")
        self.faiss = import_faiss()
        self.device = device
        self.on_gpu = False
        self._gpu_resources: Any = None
        self._index: Any = None
        if self.build_on_init:
            self._set_index(self._new_index(0))

    def _new_index(self, n_train: int) -> Any:
        raise NotImplementedError

    def _search_params(self) -> dict[str, int]:
        return {}

    def _cloner_options(self) -> Any:
        return None

    @property
    def ntotal(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    @property
    def index(self) -> Any:
        """The underlying FAISS index (a GPU index when ``on_gpu``)."""
        return self._index

    def _set_index(self, index: Any) -> None:
        self._index = self._place(index)
        self._apply_search_params()

    def _place(self, index: Any) -> Any:
        if self.device == "cpu" or (self.device == "auto" and not self.gpu_capable):
            return index
        if not self.gpu_capable:
            raise ConfigError(f"{self.name} indexes have no FAISS GPU version; use device=cpu or auto")
        if gpu_count() == 0:
            if self.device == "gpu":
                raise ConfigError(
                    "device=gpu but faiss sees no GPU; install faiss with GPU support (pip uninstall faiss-cpu, "
                    "then pip install 'retrodistill[gpu]') on a machine with a CUDA GPU, or use device=auto"
                )
            return index
        self._gpu_resources = self.faiss.StandardGpuResources()
        options = self._cloner_options()
        if options is None:
            placed = self.faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
        else:
            placed = self.faiss.index_cpu_to_gpu(self._gpu_resources, 0, index, options)
        self.on_gpu = True
        return placed

    def set_search_params(self, **params: int) -> None:
        """Change search-time settings in place (``efSearch`` for hnsw, ``nprobe`` for ivf / ivfpq)."""
        allowed = set(self._search_params())
        unknown = set(params) - allowed
        if unknown:
            raise ConfigError(f"{self.name} has no search parameter {sorted(unknown)[0]!r}; it has: {sorted(allowed)}")
        for key, value in params.items():
            if int(value) < 1:
                raise ConfigError(f"{self.name}: {key} must be positive")
            setattr(self, key, int(value))
        self._apply_search_params()

    def _apply_search_params(self) -> None:
        params = self._search_params()
        if not params or self._index is None:
            return
        space = self.faiss.GpuParameterSpace() if self.on_gpu else self.faiss.ParameterSpace()
        for key, value in params.items():
            space.set_index_parameter(self._index, key, value)

    def _train(self, vectors: np.ndarray) -> None:
        if self._index is None:
            self._set_index(self._new_index(len(vectors)))
        if not self._index.is_trained:
            self._index.train(vectors)
            self._apply_search_params()

    def _add(self, vectors: np.ndarray) -> None:
        self._index.add(vectors)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self._index.search(queries, k)
        return scores, ids.astype(np.int64, copy=False)

    def _search_excluding(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """On the CPU, FAISS skips the excluded rows itself (an ID selector in the search parameters);
        GPU indexes take the deeper search of the base class."""
        if self.on_gpu:
            return super()._search_excluding(queries, k)
        faiss = self.faiss
        selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(len(self.excluded), faiss.swig_ptr(self.excluded)))
        params = self._selector_params(selector)
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids.astype(np.int64, copy=False)

    def _selector_params(self, selector: Any) -> Any:
        """FAISS search parameters (``params_class``) carrying ``selector`` and this index's search settings
        (they replace the index's own for that call, so efSearch / nprobe are set here too)."""
        params = getattr(self.faiss, self.params_class)()
        params.sel = selector
        for key, value in self._search_params().items():
            setattr(params, key, value)
        return params

    def cpu_index(self) -> Any:
        """A CPU copy of the index (the index itself when it is on the CPU)."""
        if self._index is None:
            raise ValueError(f"{self.name}: nothing to save; train or add vectors first")
        return self.faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index

    def write(self, handle: IO[bytes]) -> None:
        """The CPU index in FAISS's file format, streamed through ``handle.write`` in 1 MiB blocks."""
        self.faiss.write_index(self.cpu_index(), self.faiss.PyCallbackIOWriter(handle.write))

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], query_chunk: int = 256, mmap: bool = True, io_flags: int = 0, **params: Any
    ) -> FaissIndex:
        """Build parameters come from the file; search parameters (efSearch, nprobe) and device from ``params``.
        ``mmap`` matters only to types that memory-map part of the file (ivfpq with refine); ``io_flags``
        are FAISS's read flags."""
        faiss = import_faiss()
        if not os.path.isfile(path):
            raise ConfigError(f"{path}: index file not found")
        cpu = faiss.read_index(os.fspath(path), io_flags)
        if cpu.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ConfigError(f"{path}: expected an inner-product FAISS index")
        self = cls(int(cpu.d), query_chunk=query_chunk, **{**params, **cls._build_params_of(cpu)})
        self._set_index(cpu)
        return self

    @classmethod
    def _build_params_of(cls, cpu_index: Any) -> dict[str, Any]:
        """The build parameters stored in a FAISS index (e.g. nlist, M)."""
        return {}
