"""The teaching job: a teacher scores every candidate of a dataset into a resumable score store.

Used by ``retrodistill teach`` and by the ``distill`` pipeline. Keys already in the store are skipped
before the model loads, so a finished job re-runs without loading it and a killed one resumes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from retrodistill.data.records import Dataset
from retrodistill.teachers.base import Teacher, check_inputs

log = logging.getLogger("retrodistill.teach")


@dataclass(frozen=True)
class TeachResult:
    """What one ``teach`` call did.

    ``pairs`` counts (query, candidate) pairs asked for; ``scored_now`` the units (pairs, prompts or
    queries, by the teacher's granularity) that were not in the store and were scored now;
    ``units_per_s`` their rate (None when nothing was scored); ``listwise_repairs`` the fixes made to
    listwise answers during this call.
    """

    queries: int
    pairs: int
    scored_now: int
    seconds: float
    model_load_seconds: float
    units_per_s: float | None
    rows_in_store: int
    listwise_repairs: dict[str, int] = field(default_factory=dict)


def teach(
    teacher: Teacher,
    data: Dataset,
    candidates: Mapping[str, Sequence[str]],
    store_path: str | Path,
    show_progress: bool = True,
) -> TeachResult:
    """Score ``candidates`` (query id -> doc ids, first-stage order) of ``data`` into the store at ``store_path``."""
    from retrodistill.teachers.store import ScoreStore

    spec = teacher.spec
    check_inputs(data.queries, candidates, data.corpus)
    repairs_before = Counter(teacher.repairs)
    with ScoreStore(store_path, spec) as store:
        pending = teacher.pending(candidates, store)
        load_seconds, start = 0.0, time.perf_counter()
        if pending:
            log.info("%s: %d of the units to score are not in %s yet", spec.describe(), pending, store_path)
            teacher.load()
            load_seconds, start = time.perf_counter() - start, time.perf_counter()
            teacher.score(data.queries, candidates, data.corpus, store=store, show_progress=show_progress)
        else:
            log.info("%s: every score is already in %s; nothing to do", spec.describe(), store_path)
        seconds = time.perf_counter() - start
        rows = len(store)
    return TeachResult(
        queries=len(candidates),
        pairs=sum(len(ids) for ids in candidates.values()),
        scored_now=pending,
        seconds=seconds,
        model_load_seconds=load_seconds,
        units_per_s=teacher.last_rate if pending else None,
        rows_in_store=rows,
        listwise_repairs=dict(Counter(teacher.repairs) - repairs_before),
    )


def fuse_stores(
    members: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None, method: str = "zscore"
) -> int:
    """Fuse the member stores' runs per query (``teachers.ensemble``) into a new store at ``out`` with the
    ensemble's identity; written beside ``out`` and moved into place, so a kill leaves the old one or none.
    Returns the rows written."""
    import os

    from retrodistill.teachers.ensemble import ensemble_stores
    from retrodistill.teachers.records import ScoredPair
    from retrodistill.teachers.store import ScoreStore

    spec, run = ensemble_stores(members, weights, method)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    with ScoreStore(tmp, spec) as store:
        rows = store.add([ScoredPair(q, d, s) for q, docs in run.items() for d, s in docs.items()])
    for stale in (Path(f"{out}-wal"), Path(f"{out}-shm")):
        stale.unlink(missing_ok=True)
    os.replace(tmp, out)
    log.info("ensemble of %d teachers (%s) fused into %s: %d scores", len(members), method, out, rows)
    return rows
