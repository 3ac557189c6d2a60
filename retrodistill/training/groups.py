"""Training groups for students: (query, positive, negatives) with teacher scores, sampled reproducibly."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

from retrodistill.data.records import Dataset, Document, Run
from retrodistill.errors import ConfigError

log = logging.getLogger("retrodistill.students")


@dataclass(frozen=True)
class StudentExample:
    """One training row: the query, G passages (column 0 is a judged positive) and G teacher scores."""

    qid: str
    query: str
    passages: tuple[str, ...]
    scores: tuple[float, ...]


def sample_negatives(ranked: list[str], n: int, how: str, rng: random.Random) -> list[str]:
    """``top``: the n best-ranked; ``spread``: evenly spaced over the ranking; ``random``: uniform."""
    if len(ranked) < n:
        raise ValueError("not enough candidates")
    if how == "top":
        return ranked[:n]
    if how == "random":
        return rng.sample(ranked, n)
    step = len(ranked) / n
    return [ranked[int(i * step)] for i in range(n)]


def examples_from_teacher(
    dataset: Dataset, teacher_run: Run, group_size: int, negatives: str, seed: int
) -> list[StudentExample]:
    """One example per (query, judged positive the teacher scored); negatives from the teacher's other candidates.

    Raises ConfigError when no query has enough scored candidates for ``group_size``.
    """
    rng = random.Random(seed)
    examples: list[StudentExample] = []
    short = missing_pos = 0
    for qid, judged in dataset.qrels.items():
        scores = teacher_run.get(qid)
        if not scores or qid not in dataset.queries:
            continue
        positives = [d for d, g in judged.items() if g > 0 and d in scores]
        missing_pos += sum(1 for d, g in judged.items() if g > 0 and d not in scores)
        ranked = [d for d in sorted(scores, key=lambda d: (-scores[d], d)) if judged.get(d, 0) <= 0]
        if len(ranked) < group_size - 1:
            short += 1
            continue
        for pos in positives:
            negs = sample_negatives(ranked, group_size - 1, negatives, rng)
            ids = [pos, *negs]
            examples.append(
                StudentExample(
                    qid,
                    dataset.queries[qid].text,
                    tuple(dataset.corpus[d].full_text() for d in ids),
                    tuple(float(scores[d]) for d in ids),
                )
            )
    if missing_pos:
        log.warning("%d judged positives have no teacher score (teach with --force-positives)", missing_pos)
    if not examples:
        most = max((len(s) for s in teacher_run.values()), default=0)
        raise ConfigError(
            f"no training group: group_size {group_size} needs {group_size - 1} scored negatives per query "
            f"besides a scored positive; the store has at most {most} candidates per query "
            "(lower group_size, or teach more candidates with --force-positives)"
        )
    if short:
        log.warning("%d queries skipped: fewer than %d scored negatives", short, group_size - 1)
    return examples


def examples_from_qrels(dataset: Dataset, first_stage: Run, group_size: int, seed: int) -> list[StudentExample]:
    """Supervised groups without a teacher: positive + hard negatives from the first stage; scores are
    1 for the positive and 0 for negatives (only in-batch InfoNCE uses them)."""
    rng = random.Random(seed)
    examples = []
    for qid, judged in dataset.qrels.items():
        ranked = [
            d for d in sorted(first_stage.get(qid, {}), key=lambda d: -first_stage[qid][d]) if judged.get(d, 0) <= 0
        ]
        if len(ranked) < group_size - 1 or qid not in dataset.queries:
            continue
        for pos in (d for d, g in judged.items() if g > 0 and d in dataset.corpus):
            negs = sample_negatives(ranked, group_size - 1, "random", rng)
            ids = [pos, *negs]
            examples.append(
                StudentExample(
                    qid,
                    dataset.queries[qid].text,
                    tuple(dataset.corpus[d].full_text() for d in ids),
                    (1.0,) + (0.0,) * (group_size - 1),
                )
            )
    if not examples:
        raise ConfigError("no supervised training group could be built from these qrels")
    return examples


def examples_from_teacher_ranking(
    queries: Mapping[str, str],
    corpus: Mapping[str, Document],
    teacher_run: Run,
    group_size: int,
    seed: int,
    sources: Mapping[str, str] | None = None,
    skip_top: int = 2,
    depth: int | None = None,
    negatives: str = "random",
) -> list[StudentExample]:
    """Groups with no qrels: one example per query the teacher ranked.

    The positive is the query's source passage when ``sources`` names one (a generated query's passage;
    it must have a teacher score), else the teacher's top candidate. Negatives are drawn (``negatives`` as in
    :func:`sample_negatives`) from the teacher's ranking at ranks ``skip_top + 1`` .. ``depth`` (1-based, ties
    broken by doc id), the positive excluded: skipping the very top keeps likely false negatives out.
    Scores are the teacher's. Raises ConfigError when no query yields a group.
    """
    if skip_top < 0 or group_size < 2:
        raise ConfigError("label-free groups need group_size >= 2 and skip_top >= 0")
    rng = random.Random(seed)
    examples: list[StudentExample] = []
    short = unscored_source = 0
    for qid, scores in teacher_run.items():
        if qid not in queries or not scores:
            continue
        ranked = sorted(scores, key=lambda d: (-scores[d], d))
        positive = sources.get(qid) if sources else None
        if positive is not None and positive not in scores:
            unscored_source += 1
            continue
        positive = positive if positive is not None else ranked[0]
        pool = [d for d in ranked[skip_top:depth] if d != positive and d in corpus]
        if len(pool) < group_size - 1 or positive not in corpus:
            short += 1
            continue
        ids = [positive, *sample_negatives(pool, group_size - 1, negatives, rng)]
        examples.append(
            StudentExample(
                qid,
                queries[qid],
                tuple(corpus[d].full_text() for d in ids),
                tuple(float(scores[d]) for d in ids),
            )
        )
    if unscored_source:
        log.warning("%d queries skipped: the teacher did not score their source passage", unscored_source)
    if short:
        log.warning("%d queries skipped: fewer than %d candidates below rank %d", short, group_size - 1, skip_top)
    if not examples:
        raise ConfigError(
            f"no label-free training group: group_size {group_size} needs {group_size - 1} teacher-scored "
            f"candidates below rank {skip_top} per query (lower group_size or skip_top, or teach deeper candidates)"
        )
    return examples
