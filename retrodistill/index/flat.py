"""Exact inner-product search with FAISS (IndexFlatIP)."""

from __future__ import annotations

from typing import Any

from retrodistill.index.faiss_base import FaissIndex


class FaissFlatIndex(FaissIndex):
    """Exact search; FAISS blocks the score computation internally, keeping only k per query.
    Scores are exact inner products (cosine for normalised vectors). 4 * dim bytes per vector."""

    name = "flat"

    def _new_index(self, n_train: int) -> Any:
        return self.faiss.IndexFlatIP(self.dim)
