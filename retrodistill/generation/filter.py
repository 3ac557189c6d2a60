"""Round-trip consistency filter: keep a generated query only if its source passage comes back in the
top ``k`` of a first-stage retriever (BM25 by default) searching the whole corpus with it."""

from __future__ import annotations

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
