"""Teacher ensembles: several stored teachers' runs fused per query into one run with one identity.

Methods (output scores unitless, higher = more relevant):

* ``zscore``: sum over members of ``weight * z``, where ``z`` standardises a member's scores over the
  candidates it scored for that query (population standard deviation; a constant list gives zeros);
* ``rrf``: reciprocal-rank fusion, sum over members of ``weight / (k + rank)``, rank 1-based in the
  member's order (ties by doc id).

A candidate a member did not score gets nothing from it (for ``zscore`` that is the member's mean).
The fused identity is a ``TeacherSpec`` of kind ``ensemble`` whose options name every member's spec
fingerprint and weight and the method, so a store of fused scores is tied to exactly that mix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from retrodistill.data.records import Run
from retrodistill.errors import ConfigError
from retrodistill.teachers.records import TeacherSpec

METHODS = ("zscore", "rrf")


def _check(n: int, weights: Sequence[float] | None, method: str) -> list[float]:
    if method not in METHODS:
        raise ConfigError(f"unknown ensemble method {method!r}; choose one of {', '.join(METHODS)}")
    if n < 1:
        raise ConfigError("an ensemble needs at least one teacher")
    weights = [1.0] * n if weights is None else [float(w) for w in weights]
    if len(weights) != n or any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise ConfigError(f"give one weight >= 0 per teacher ({n}), not all zero; got {list(weights)}")
    return weights


def _zscores(scores: dict[str, float]) -> dict[str, float]:
    values = list(scores.values())
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return {d: (s - mean) / spread if spread > 0 else 0.0 for d, s in scores.items()}


def fuse_runs(runs: Sequence[Run], weights: Sequence[float] | None = None, method: str = "zscore", k: int = 60) -> Run:
    """The weighted fusion of ``runs`` per query (queries of any member), as described above."""
    weights = _check(len(runs), weights, method)
    fused: Run = {}
    for run, weight in zip(runs, weights, strict=True):
        for qid, scores in run.items():
            if not scores:
                continue
            out = fused.setdefault(qid, {})
            if method == "zscore":
                parts = _zscores(scores)
            else:
                ranked = sorted(scores, key=lambda d: (-scores[d], d))
                parts = {d: 1.0 / (k + rank) for rank, d in enumerate(ranked, start=1)}
            for d, part in parts.items():
                out[d] = out.get(d, 0.0) + weight * part
    return fused


def fuse_reranked(
    runs: Sequence[Run],
    first_stage: Run,
    depth: int,
    weights: Sequence[float] | None = None,
    method: str = "zscore",
    k: int = 60,
) -> Run:
    """The fusion of re-rankers' runs over the candidates they scored, shaped like each of them.

    Each run is one re-ranker's output over ``first_stage``: its top ``depth`` candidates re-scored and the
    rest appended beneath in first-stage order (``retrieval.rerank.with_tail``). Only the re-scored
    candidates are fused, as :func:`fuse_runs` fuses stores, because the tail's placeholder scores (one unit
    apart, hundreds of them) would swamp every member's z-scores; the rest follow in first-stage order.
    """
    from retrodistill.retrieval.rerank import with_tail

    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")
    ranked = {qid: sorted(docs, key=lambda d: (-docs[d], d)) for qid, docs in first_stage.items()}
    scored = [
        {qid: {d: run[qid][d] for d in ids[:depth] if d in run.get(qid, {})} for qid, ids in ranked.items()}
        for run in runs
    ]
    fused = fuse_runs(scored, weights, method, k)
    return {qid: with_tail(scores, ranked[qid]) for qid, scores in fused.items()}


def ensemble_spec(
    specs: Sequence[TeacherSpec], weights: Sequence[float] | None = None, method: str = "zscore", k: int = 60
) -> TeacherSpec:
    """One identity for the mix: members (fingerprint, description, weight) in order, method and k."""
    weights = _check(len(specs), weights, method)
    members = [
        {"fingerprint": s.fingerprint(), "teacher": s.describe(), "weight": w}
        for s, w in zip(specs, weights, strict=True)
    ]
    options: dict[str, object] = {"method": method, "members": members}
    if method == "rrf":
        options["k"] = k
    model = "+".join(f"{s.kind}:{s.model}" for s in specs)
    return TeacherSpec(
        "ensemble", model, "+".join(s.fingerprint() for s in specs), "listwise", f"fused-{method}", "", options
    )


def ensemble_stores(
    paths: Sequence[str | os.PathLike[str]], weights: Sequence[float] | None = None, method: str = "zscore", k: int = 60
) -> tuple[TeacherSpec, Run]:
    """Open stored teachers (``ScoreStore`` files), fuse their runs; returns the ensemble's spec and run."""
    from retrodistill.teachers.store import ScoreStore

    specs, runs = [], []
    for path in paths:
        with ScoreStore.open(path) as store:
            specs.append(store.spec)
            runs.append(store.run())
    return ensemble_spec(specs, weights, method, k), fuse_runs(runs, weights, method, k)
