"""Small immutable records of the teacher stage: a teacher's identity, its scores, and training groups."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Granularity = Literal["pointwise", "pairwise", "listwise"]
GRANULARITIES: tuple[str, ...] = ("pointwise", "pairwise", "listwise")


@dataclass(frozen=True)
class TeacherSpec:
    """Everything that changes a teacher's scores; two teachers with equal specs give equal scores.

    ``semantics`` says what a stored score is: ``logit`` (cross-encoder), ``mean-log-prob`` (query
    likelihood), ``logit-diff`` (yes minus no), ``prob-a`` (pairwise P(A wins) for the stored order),
    ``neg-rank`` (listwise: -rank, 1-based). Higher is always more relevant.
    """

    kind: str
    model: str
    revision: str
    granularity: Granularity
    semantics: str
    template: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fingerprint(self) -> str:
        """A short hash of the spec (sorted JSON): the store's key for this teacher."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.kind}:{self.model} ({self.granularity}, {self.semantics}, {self.fingerprint()})"


@dataclass(frozen=True, slots=True)
class ScoredPair:
    """A pointwise or listwise score of one (query, document); higher = more relevant."""

    qid: str
    docid: str
    score: float


@dataclass(frozen=True, slots=True)
class Preference:
    """A pairwise judgement: P(``doc_a`` is more relevant than ``doc_b``) with ``doc_a`` shown first."""

    qid: str
    doc_a: str
    doc_b: str
    prob: float


@dataclass(frozen=True)
class TrainingGroup:
    """One query's candidates with their teacher scores, and which of them qrels judge relevant."""

    qid: str
    positives: tuple[str, ...]
    doc_ids: tuple[str, ...]
    scores: tuple[float, ...]
