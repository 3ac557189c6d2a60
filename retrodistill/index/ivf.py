"""Approximate search with an inverted file over k-means cells (FAISS IndexIVFFlat, inner product)."""

from __future__ import annotations

import math
from typing import Any

from retrodistill.errors import ConfigError
from retrodistill.index.faiss_base import FaissIndex

DEFAULT_NPROBE = 16


def default_nlist(n_train: int) -> int:
    """About 4 * sqrt(n) cells, but at least 39 training vectors per cell (FAISS's k-means minimum)."""
    return max(1, min(int(4 * math.sqrt(max(n_train, 1))), n_train // 39))


class IVFIndex(FaissIndex):
    """Vectors are stored in full inside ``nlist`` cells; a query scans the ``nprobe`` nearest cells,
    so scores are exact inner products of the candidates found. Needs training (k-means on the
    vectors given to ``train``, or to the first ``add``). ``nlist=None`` picks ``default_nlist``.

    ``nprobe=None`` (the default) leaves the choice to ``retrodistill index build``, which sets the fewest
    cells whose recall@10 on probe queries reaches ``recall_target`` (see ``calibrate``); searched before
    that, the index scans ``DEFAULT_NPROBE`` cells.
    """

    name = "ivf"
    params_class = "SearchParametersIVF"
    build_on_init = False

    def __init__(
        self,
        dim: int,
        query_chunk: int = 256,
        device: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        recall_target: float = 0.95,
    ) -> None:
        if (nlist is not None and nlist < 1) or (nprobe is not None and nprobe < 1):
            raise ConfigError(f"{self.name}: nlist and nprobe must be positive")
        if not 0.0 < recall_target <= 1.0:
            raise ConfigError(f"{self.name}: recall_target must lie in (0, 1], got {recall_target}")
        self.nlist = None if nlist is None else int(nlist)
        self.nprobe = None if nprobe is None else int(nprobe)
        self.recall_target = float(recall_target)
        super().__init__(dim, query_chunk, device)

    @property
    def params(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "recall_target": self.recall_target}

    @property
    def needs_calibration(self) -> bool:
        """True while ``nprobe`` was neither given nor calibrated."""
        return self.nprobe is None

    def _resolve_nlist(self, n_train: int) -> int:
        if self.nlist is None:
            self.nlist = default_nlist(n_train)
        if n_train and n_train < self.nlist:
            raise ConfigError(
                f"{self.name}: nlist={self.nlist} needs at least that many training vectors, got {n_train}"
            )
        return self.nlist

    def _new_index(self, n_train: int) -> Any:
        quantizer = self.faiss.IndexFlatIP(self.dim)
        nlist = self._resolve_nlist(n_train)
        return self.faiss.IndexIVFFlat(quantizer, self.dim, nlist, self.faiss.METRIC_INNER_PRODUCT)

    def _search_params(self) -> dict[str, int]:
        nprobe = self.nprobe or DEFAULT_NPROBE
        return {"nprobe": min(nprobe, self.nlist or nprobe)}

    @classmethod
    def _build_params_of(cls, cpu_index: Any) -> dict[str, Any]:
        import faiss

        return {"nlist": int(faiss.extract_index_ivf(cpu_index).nlist)}
