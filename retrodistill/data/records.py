"""Small immutable records that flow between stages.

Runs and qrels use the nested-dict shape that ranx, ir_measures and pytrec_eval all accept:
``run[query_id][doc_id] = score`` (higher = more relevant) and ``qrels[query_id][doc_id] = grade``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Document:
    """A passage of a corpus. ``title`` may be empty."""

    doc_id: str
    text: str
    title: str = ""

    def full_text(self) -> str:
        """Title and text joined by a space, the BEIR / pyserini "flat" convention."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True, slots=True)
class Query:
    """A query with its id."""

    query_id: str
    text: str


@dataclass(frozen=True)
class Dataset:
    """Queries, judgements and either a corpus to search or candidate lists to re-rank.

    ``corpus`` maps doc ids to documents. For a re-ranking task (TREC DL top-100 lists)
    ``corpus`` holds the passages of the candidate lists and ``candidates`` the first-stage run.
    """

    name: str
    corpus: dict[str, Document]
    queries: dict[str, Query]
    qrels: Qrels
    candidates: Run | None = None
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def is_rerank_task(self) -> bool:
        return self.candidates is not None

    def judged_queries(self) -> list[Query]:
        """Queries that have at least one judgement, in qrels order (the ones evaluation uses)."""
        return [self.queries[qid] for qid in self.qrels if qid in self.queries]
