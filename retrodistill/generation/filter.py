"""Filters on generated queries.

``round_trip_filter`` (Promptagator's consistency filter): keep a query only if its source passage comes back
in the top ``k`` of a first-stage retriever (BM25 by default) searching the whole corpus with it.
``meta_filter``: drop queries about the passage rather than its subject ("What does this passage say
about ...", "The study shows ...") and answers that echo the instruction ("Write a question about ...").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from retrodistill.data.records import Document, Query
from retrodistill.errors import ConfigError
from retrodistill.generation.store import GeneratedQuery
from retrodistill.retrieval.base import Retriever


@dataclass(frozen=True)
class FilterResult:
    """The kept queries (input order), the source passage's 1-based rank per query (None: not in top k)."""

    kept: list[GeneratedQuery]
    ranks: dict[str, int | None]
    k: int

    @property
    def kept_fraction(self) -> float:
        return len(self.kept) / len(self.ranks) if self.ranks else 0.0


_DEIXIS = re.compile(
    r"\b(?:this|the|that|above|given|following)\s+"
    r"(?:passage|text|article|paper|study|abstract|excerpt|document|author|authors|snippet)s?\b",
    re.IGNORECASE,
)
_ECHO = re.compile(
    r"\b(?:write|generate|ask|create)\s+(?:a|one|another)\s+(?:search\s+)?(?:question|query)\b"
    r"|\b(?:a|one|another|the|this|plausible|specific)\s+(?:search\s+)?(?:question|query)\s+"
    r"(?:that|about|which|for|on|goes|does)\b"
    r"|\banswer\s+to\s+(?:this|the)\s+(?:question|passage)\b|^\s*the\s+answer\b",
    re.IGNORECASE,
)


def is_meta_query(text: str) -> bool:
    """True when ``text`` talks about its source (``this passage``, ``the study``, ``the authors``) or echoes
    the instruction (``Write a question about ...``, ``The answer to this question is ...``): a searcher who
    has not read the passage would not type it."""
    return bool(_DEIXIS.search(text) or _ECHO.search(text))


def meta_filter(queries: Sequence[GeneratedQuery]) -> list[GeneratedQuery]:
    """The queries that are not ``is_meta_query``, in input order."""
    return [q for q in queries if not is_meta_query(q.text)]


def round_trip_filter(
    queries: Sequence[GeneratedQuery],
    corpus: Mapping[str, Document],
    k: int = 10,
    retriever: Retriever | None = None,
    show_progress: bool = False,
) -> FilterResult:
    """Search ``corpus`` with every query and keep those whose ``doc_id`` ranks in the top ``k``.

    ``retriever`` is any first stage, indexed here over ``corpus`` (default bm25s); ties are ordered by doc id.
    """
    if k < 1:
        raise ConfigError(f"round-trip k={k}: keep queries whose source ranks in the top k >= 1")
    if retriever is None:
        from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

        retriever = BM25sRetriever()
    retriever.index(corpus)
    run = retriever.retrieve([Query(q.query_id, q.text) for q in queries], k=k, show_progress=show_progress)
    ranks: dict[str, int | None] = {}
    kept = []
    for q in queries:
        docs = run.get(q.query_id, {})
        top = sorted(docs, key=lambda d: (-docs[d], d))[:k]
        ranks[q.query_id] = top.index(q.doc_id) + 1 if q.doc_id in top else None
        if ranks[q.query_id] is not None:
            kept.append(q)
    return FilterResult(kept, ranks, k)
