"""Approximate search on a HNSW graph (FAISS IndexHNSWFlat, inner product). CPU only in FAISS."""

from __future__ import annotations

from typing import Any

from retrodistill.errors import ConfigError
from retrodistill.index.faiss_base import FaissIndex


class HNSWIndex(FaissIndex):
    """Graph search over the full vectors: scores are exact inner products of the neighbours found.

    ``M`` links per node (memory: 4 * dim + ~8 * M bytes per vector), ``efConstruction`` the build
    beam, ``efSearch`` the search beam (higher = better recall, slower; can change after loading).
    No training; vectors can be added at any time.
    """

    name = "hnsw"
    params_class = "SearchParametersHNSW"
    gpu_capable = False

    def __init__(
        self,
        dim: int,
        query_chunk: int = 256,
        device: str = "auto",
        M: int = 32,
        efConstruction: int = 200,
        efSearch: int = 128,
    ) -> None:
        if min(M, efConstruction, efSearch) < 1:
            raise ConfigError("hnsw: M, efConstruction and efSearch must be positive")
        self.M, self.efConstruction, self.efSearch = int(M), int(efConstruction), int(efSearch)
        super().__init__(dim, query_chunk, device)

    @property
    def params(self) -> dict[str, Any]:
        return {"M": self.M, "efConstruction": self.efConstruction, "efSearch": self.efSearch}

    def _new_index(self, n_train: int) -> Any:
        index = self.faiss.IndexHNSWFlat(self.dim, self.M, self.faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.efConstruction
        return index

    def _search_params(self) -> dict[str, int]:
        return {"efSearch": self.efSearch}

    @classmethod
    def _build_params_of(cls, cpu_index: Any) -> dict[str, Any]:
        import faiss

        graph = faiss.downcast_index(cpu_index).hnsw
        return {"M": int(graph.nb_neighbors(1)), "efConstruction": int(graph.efConstruction)}
