"""Pick an IVF index's ``nprobe`` at build time: the fewest cells that reach a recall target on probe queries.

A fixed ``nprobe`` means a different recall on every corpus: 16 of 132 cells (a 5k-passage corpus) misses
about one true top-10 neighbour in eleven. FAISS's own answer is to tune search parameters on queries with
known neighbours (its ``ParameterSpace`` auto-tuning). Here the queries are made from the corpus itself:
a random span of 6 to 15 words of a sampled passage, encoded with the *query* encoder, so probes are short
and query-like, like the queries the index will see (a passage's own vector as a probe finds its
neighbours far too easily: it sits inside its cell). The probe's source passage is left out of both the
exact and the approximate top-k, so it cannot count as a hit. Exact neighbours come from the encoded corpus
by a plain inner product; ``recall@k`` is the mean share of them the index returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError

log = logging.getLogger(__name__)

SPAN_WORDS = (6, 15)
PLATEAU = 0.005


@dataclass(frozen=True)
class Calibration:
    """The chosen ``nprobe``, its measured recall@k, and recall@k for every ``nprobe`` tried."""

    nprobe: int
    recall: float
    target: float
    k: int
    probes: int
    curve: dict[int, float]
    reached: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for a manifest (curve keys as strings)."""
        return {
            "nprobe": self.nprobe,
            f"recall@{self.k}": round(self.recall, 4),
            "target": self.target,
            "reached": self.reached,
            "probes": self.probes,
            "curve": {str(p): round(r, 4) for p, r in self.curve.items()},
        }


def probe_spans(docs: Sequence[Document], n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Rows of up to ``n`` sampled passages with some text, and one random word span of each."""
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(docs))
    picked, spans = [], []
    for row in rows:
        words = docs[row].full_text().split()
        if not words:
            continue
        length = int(rng.integers(SPAN_WORDS[0], SPAN_WORDS[1] + 1))
        start = int(rng.integers(0, max(1, len(words) - length + 1)))
        picked.append(int(row))
        spans.append(" ".join(words[start : start + length]))
        if len(picked) == n:
            break
    return np.asarray(picked, dtype=np.int64), spans


def exact_top(queries: np.ndarray, vectors: np.ndarray, k: int, skip: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Row numbers of the ``k`` best inner products per query, skipping row ``skip[i]`` for query i."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(0, len(vectors), chunk):
        block = np.asarray(vectors[lo : lo + chunk], dtype=np.float32)
        scores = queries @ block.T
        inside = (skip >= lo) & (skip < lo + len(block))
        scores[np.flatnonzero(inside), skip[inside] - lo] = -np.inf
        ids = np.broadcast_to(np.arange(lo, lo + len(block), dtype=np.int64), scores.shape)
        best_s = np.concatenate([best_s, scores], axis=1)
        best_i = np.concatenate([best_i, ids], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def recall_at(index: Any, queries: np.ndarray, truth: np.ndarray, skip: np.ndarray, k: int) -> float:
    """Mean share of ``truth`` (n, k) that ``index`` returns in its top k, the row ``skip[i]`` left out."""
    _, found = index.search(queries, k + 1)
    hits = 0
    for i, row in enumerate(found):
        got = [int(r) for r in row if r >= 0 and r != skip[i]][:k]
        hits += len(set(got) & set(truth[i].tolist()))
    return hits / (k * len(queries))


def nprobe_grid(nlist: int) -> list[int]:
    """1, 2, 4, ... below ``nlist``, then ``nlist`` itself (every cell: exact for IVF-Flat)."""
    grid, p = [], 1
    while p < nlist:
        grid.append(p)
        p *= 2
    return [*grid, nlist]


def calibrate_nprobe(
    index: Any,
    encoder: Any,
    docs: Sequence[Document],
    vectors: np.ndarray,
    target: float,
    k: int = 10,
    probes: int = 256,
    seed: int = 0,
) -> Calibration:
    """Measure recall@k of ``index`` (an IVF index holding ``vectors``, one row per doc) over ``nprobe_grid``
    and set its ``nprobe`` to the smallest reaching ``target``. Where none does (PQ codes without refine),
    take the smallest within 0.005 of the best recall seen: more cells would cost time and buy nothing."""
    if not 0.0 < target <= 1.0:
        raise ConfigError(f"recall_target must lie in (0, 1], got {target}")
    rows, spans = probe_spans(docs, probes, seed)
    kk = min(k, len(docs) - 1)
    if kk < 1 or not spans:
        index.set_search_params(nprobe=index.nlist)
        return Calibration(index.nlist, 1.0, target, k, 0, {}, True)
    queries = np.ascontiguousarray(encoder.encode_queries(spans), dtype=np.float32)
    truth = exact_top(queries, vectors, kk, rows)
    curve: dict[int, float] = {}
    for nprobe in nprobe_grid(index.nlist):
        index.set_search_params(nprobe=nprobe)
        curve[nprobe] = recall_at(index, queries, truth, rows, kk)
        if curve[nprobe] >= target:
            break
    reached = max(curve.values()) >= target
    floor = target if reached else max(curve.values()) - PLATEAU
    chosen = min(p for p, r in curve.items() if r >= floor)
    index.set_search_params(nprobe=chosen)
    if not reached:
        log.warning(
            "%s: recall@%d reaches only %.3f (target %.2f) even scanning every cell; nprobe=%d. "
            "The codes, not the cells, limit it: add refine=fp16 (or flat) to re-rank with stored vectors",
            index.name, kk, max(curve.values()), target, chosen,
        )  # fmt: skip
    return Calibration(chosen, curve[chosen], target, kk, len(spans), curve, reached)
