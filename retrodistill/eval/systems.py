"""What ``--system`` accepts, checked before any data or model loads.

Retrieval mode: a RETRIEVERS spec (``bm25s``, ``dense:MODEL``, ``index:DIR``, ``server:URL``) or ``run:PATH``.
Re-ranking mode: a student re-ranker (``dense:MODEL``, ``colbert:MODEL``), any teacher of TEACHERS
(``cross-encoder:MODEL``, ``llm:MODEL,...``, with ``store=PATH`` to keep its scores), or ``run:PATH``.
Every re-ranking system also takes ``interpolate=W`` (see ``retrodistill.retrieval.fusion``).
Either mode: ``ensemble:A+B[,method=zscore|rrf,weights=W1/W2,k=60]`` fuses the runs of systems named
earlier in the same evaluation (by name or label; ``retrodistill.teachers.ensemble``); re-ranking
systems are fused over the candidates they re-scored only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from retrodistill.errors import ConfigError
from retrodistill.specs import SystemSpec, bind


@dataclass(frozen=True)
class BoundSystem:
    """A checked system: its spec, the interpolation weight (re-ranking only) and how to build it."""

    spec: SystemSpec
    interpolate: float | None
    build: Callable[[], Any] | None  # None for run:PATH


def system_kinds(rerank_mode: bool) -> list[str]:
    from retrodistill.retrieval import RERANKERS, RETRIEVERS
    from retrodistill.teachers import TEACHERS

    kinds = [*RERANKERS.names(), *TEACHERS.names()] if rerank_mode else RETRIEVERS.names()
    return [*kinds, "run", "ensemble"]


def bind_system(spec: SystemSpec, rerank_mode: bool, cache_dir: str | None = None) -> BoundSystem:
    """Check one system spec completely (kind, argument, option names and values); construct nothing."""
    from retrodistill.retrieval import RERANKERS, RETRIEVERS
    from retrodistill.teachers import TEACHERS, bind_teacher

    weight = _interpolation(spec, rerank_mode)
    spec = replace(spec, options={k: v for k, v in spec.options.items() if k != "interpolate"})
    if spec.kind == "ensemble":
        ensemble_members(spec)
        if weight is not None:
            raise ConfigError(f"{spec.name}: interpolate= goes on its members, not on the ensemble")
        return BoundSystem(spec, None, None)
    if spec.kind == "run":
        if not spec.arg:
            raise ConfigError("run needs a file: write run:PATH")
        if spec.options:
            raise ConfigError(f"run takes no options (got {', '.join(spec.options)})")
        return BoundSystem(spec, weight, None)
    if rerank_mode and spec.kind in TEACHERS:
        store = spec.options.get("store")
        teacher = bind_teacher(replace(spec, options={k: v for k, v in spec.options.items() if k != "store"}))

        def build_teacher_reranker() -> Any:
            from retrodistill.teachers.rerank import TeacherReranker

            return TeacherReranker(teacher.build(), None if store is None else str(store))

        return BoundSystem(spec, weight, build_teacher_reranker)
    registry = RERANKERS if rerank_mode else RETRIEVERS
    if spec.kind not in registry:
        what = "re-ranker" if rerank_mode else "retriever"
        kinds = ", ".join(system_kinds(rerank_mode))
        raise ConfigError(f"unknown {what} {spec.kind!r}; choose one of: {kinds}")
    bound = bind(registry.get(spec.kind), spec, cache_dir=cache_dir)
    return BoundSystem(spec, weight, bound.build)


def _interpolation(spec: SystemSpec, rerank_mode: bool) -> float | None:
    """The ``interpolate=W`` option of a re-ranking system (weight of the re-ranker vs its candidates)."""
    if "interpolate" not in spec.options:
        return None
    value = spec.options["interpolate"]
    if not rerank_mode or spec.kind == "run":
        raise ConfigError(f"interpolate= mixes a re-ranker with its candidates; {spec.name} re-ranks nothing")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"interpolate={value} for {spec.name}: give a weight in [0, 1], e.g. interpolate=0.3")
    return float(value)


@dataclass(frozen=True)
class EnsembleMembers:
    """What ``ensemble:A+B,...`` asks for: the member names, one weight each, the method and RRF's k."""

    names: list[str]
    weights: list[float]
    method: str
    k: int


def ensemble_members(spec: SystemSpec) -> EnsembleMembers:
    """Check an ``ensemble:`` spec on its own (members are resolved by the evaluation, which knows the names)."""
    from retrodistill.teachers.ensemble import METHODS

    example = "ensemble:bm25+bi-encoder:sentence-transformers/all-MiniLM-L6-v2,method=zscore"
    names = [n.strip() for n in (spec.arg or "").split("+")]
    if len(names) < 2 or not all(names):
        raise ConfigError(f"{spec.name}: name two or more systems of this evaluation joined by '+', e.g. {example}")
    unknown = set(spec.options) - {"method", "weights", "k"}
    if unknown:
        raise ConfigError(f"{spec.name}: unknown option(s) {', '.join(sorted(unknown))}; it takes method, weights, k")
    method = str(spec.options.get("method", "zscore"))
    if method not in METHODS:
        raise ConfigError(f"{spec.name}: method={method}; choose one of {', '.join(METHODS)}")
    raw = spec.options.get("weights")
    try:
        weights = [1.0] * len(names) if raw is None else [float(w) for w in str(raw).split("/")]
    except ValueError:
        weights = []
    if len(weights) != len(names) or not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise ConfigError(f"{spec.name}: weights={raw}; give {len(names)} weights >= 0 joined by '/', e.g. 1/0.5")
    k = spec.options.get("k", 60)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"{spec.name}: k={k}; give RRF's k as a whole number >= 1, e.g. k=60")
    return EnsembleMembers(names, weights, method, k)
