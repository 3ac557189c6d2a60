"""The API's wire models: responses (``SearchResponse``, ``CompareResponse``, ``ErrorResponse``, ...)
and the request models, built per app from the settings' limits so /openapi.json documents them.

This module does not use ``from __future__ import annotations``: pydantic reads the request models'
annotations, which name limits local to their factory, at run time.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from retrodistill.serve.settings import SYSTEMS, ServeSettings


class ErrorResponse(BaseModel):
    error: str = Field(description="what is wrong, in one line")
    detail: Any = Field(None, description="validation details, when there are any")


class Hit(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the service's Result records, field by field

    rank: int = Field(description="1-based position")
    doc_id: str
    score: float = Field(
        description="ranking score: the re-ranker's or teacher's output when re-ranked, else retrieval_score"
    )
    retrieval_score: float = Field(
        description="first-stage score: inner product of query and document embeddings (BM25 in a bm25 column); "
        'with mode "hybrid" the fused score (rrf: sum of 1 / (rrf_k + rank) over BM25 and the student; '
        "zscore: weight * z(student) + (1 - weight) * z(BM25)), unitless, higher = better"
    )
    title: str
    snippet: str


class QueryResult(BaseModel):
    query: str
    hits: list[Hit]


class SearchResponse(BaseModel):
    results: list[QueryResult] = Field(description="one entry per query, in request order")
    k: int
    reranked: bool
    latency_ms: float = Field(description="time spent in the server on this request")


class Column(BaseModel):
    system: str = Field(description="bm25, student, reranker or teacher")
    label: str = Field(description="what ranked this column, in words")
    hits: list[Hit]
    latency_ms: float = Field(
        description="time to rank this column and read its documents (re-rankers: with the "
        "student's first stage they re-rank)"
    )


class CompareResponse(BaseModel):
    query: str
    k: int
    columns: list[Column] = Field(description="one per system, in request order")
    latency_ms: float = Field(description="time spent in the server on this request")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, loading or failed")
    error: str | None = None


def request_model(settings: ServeSettings) -> type[BaseModel]:
    query_text = Annotated[
        str, StringConstraints(min_length=1, max_length=settings.max_query_chars, pattern=r"\S", strict=True)
    ]

    class SearchRequest(BaseModel):
        """Give ``query`` (one string) or ``queries`` (a list); ``k`` results per query."""

        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"query": "how do vaccines work", "k": 10}]},
        )

        query: query_text | None = Field(None, description="one query (not blank)")
        queries: list[query_text] | None = Field(
            None, min_length=1, description=f"several queries, at most {settings.max_queries} (else 413)"
        )
        k: int = Field(settings.default_k, ge=1, le=settings.max_k, strict=True, description="results per query")
        rerank: bool = Field(
            False, strict=True, description="re-rank the top k with the server's cross-encoder (400 if none)"
        )
        mode: Literal["dense", "hybrid"] = Field(
            "dense",
            description="dense: the student's index; hybrid: BM25 and the student fused per query (400 unless the "
            f"server runs with --bm25; each side's top max(k, {settings.hybrid_depth}) is fused)",
        )
        fusion: Literal["rrf", "zscore"] | None = Field(
            None, description=f"with mode hybrid: rrf or zscore (default {settings.hybrid_fusion})"
        )

        @model_validator(mode="after")
        def _one_of(self) -> "SearchRequest":
            if (self.query is None) == (self.queries is None):
                raise ValueError("give exactly one of 'query' or 'queries'")
            if self.fusion is not None and self.mode != "hybrid":
                raise ValueError("'fusion' applies only with mode 'hybrid'")
            return self

    return SearchRequest


def compare_model(settings: ServeSettings) -> type[BaseModel]:
    system_name = Annotated[str, StringConstraints(min_length=1, max_length=40, strict=True)]

    class CompareRequest(BaseModel):
        """One ``query``, ``k`` results from each of ``systems`` (default: every one the server offers)."""

        model_config = ConfigDict(
            extra="forbid", json_schema_extra={"examples": [{"query": "how do vaccines work", "k": 10}]}
        )

        query: Annotated[
            str, StringConstraints(min_length=1, max_length=settings.max_query_chars, pattern=r"\S", strict=True)
        ]
        k: int = Field(settings.default_k, ge=1, le=settings.max_k, strict=True, description="results per column")
        systems: list[system_name] | None = Field(
            None,
            min_length=1,
            max_length=len(SYSTEMS),
            description=f"columns, in order, from {', '.join(SYSTEMS)} (400 for one the server does not offer)",
        )

    return CompareRequest
