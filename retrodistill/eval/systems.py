"""What ``--system`` accepts, checked before any data or model loads.

Retrieval mode: a RETRIEVERS spec (``bm25s``, ``dense:MODEL``, ``index:DIR``, ``server:URL``) or ``run:PATH``.
Re-ranking mode: a student re-ranker (``dense:MODEL``, ``colbert:MODEL``), any teacher of TEACHERS
(``cross-encoder:MODEL``, ``llm:MODEL,...``, with ``store=PATH`` to keep its scores), or ``run:PATH``.
Every re-ranking system also takes ``interpolate=W`` (see ``retrodistill.retrieval.fusion``).
"""

from __future__ import annotations

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
    return [*kinds, "run"]


def bind_system(spec: SystemSpec, rerank_mode: bool, cache_dir: str | None = None) -> BoundSystem:
    """Check one system spec completely (kind, argument, option names and values); construct nothing."""
    from retrodistill.retrieval import RERANKERS, RETRIEVERS
    from retrodistill.teachers import TEACHERS, bind_teacher

    weight = _interpolation(spec, rerank_mode)
    spec = replace(spec, options={k: v for k, v in spec.options.items() if k != "interpolate"})
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
