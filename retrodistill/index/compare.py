"""How close an approximate index comes to exact search: recall@k against a reference and query time."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from retrodistill.index.base import VectorIndex


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |top-k found ∩ top-k exact| / |top-k exact|; ids are rows, -1 = none."""
    if found.shape[0] != exact.shape[0]:
        raise ValueError("found and exact must have one row per query")
    total = 0.0
    for got, want in zip(found[:, :k], exact[:, :k], strict=True):
        truth = {int(i) for i in want if i >= 0}
        total += len(truth & {int(i) for i in got if i >= 0}) / max(len(truth), 1)
    return total / max(len(found), 1)


@dataclass(frozen=True)
class Comparison:
    k: int
    queries: int
    recall: float
    seconds_a: float
    seconds_b: float

    @property
    def speedup(self) -> float:
        """How many times faster A searched than B (the reference)."""
        return self.seconds_b / self.seconds_a if self.seconds_a > 0 else float("inf")

    def as_dict(self) -> dict[str, float]:
        return {
            "k": self.k,
            "queries": self.queries,
            f"recall@{self.k}": round(self.recall, 4),
            "ms_per_query_a": round(1000 * self.seconds_a / max(self.queries, 1), 4),
            "ms_per_query_b": round(1000 * self.seconds_b / max(self.queries, 1), 4),
            "speedup_a_vs_b": round(self.speedup, 2),
        }


def timed_search(index: VectorIndex, queries: np.ndarray, k: int, repeats: int = 1) -> tuple[np.ndarray, float]:
    """Row ids of the top k and the best wall time of ``repeats`` searches of all queries."""
    best, ids = float("inf"), np.empty((0, k), dtype=np.int64)
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        _, ids = index.search(queries, k)
        best = min(best, time.perf_counter() - start)
    return ids, best


def compare_indexes(a: VectorIndex, b: VectorIndex, queries: np.ndarray, k: int = 10, repeats: int = 1) -> Comparison:
    """Recall@k of ``a`` against ``b`` (the reference, usually ``flat``) on the same rows, with timings."""
    if a.ntotal != b.ntotal:
        raise ValueError(f"the indexes hold different numbers of vectors ({a.ntotal} vs {b.ntotal})")
    ids_a, sec_a = timed_search(a, queries, k, repeats)
    ids_b, sec_b = timed_search(b, queries, k, repeats)
    return Comparison(k, len(queries), recall_at_k(ids_a, ids_b, k), sec_a, sec_b)
