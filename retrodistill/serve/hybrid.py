"""``POST /search`` with ``mode: "hybrid"``: BM25 (the ``--bm25`` index of ``retrodistill.serve.compare``)
and the student each rank their top ``max(k, hybrid_depth)``, fused per query by
``retrodistill.retrieval.fusion.fuse`` (the fusion of ``retrodistill eval --system hybrid:MODEL``), cut to k.

A fused hit's score is the fusion's unitless score (higher = better); it is also the hit's retrieval score,
the first stage a re-ranker then re-orders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from retrodistill.index.store import Hit
from retrodistill.retrieval.fusion import fuse
from retrodistill.serve.settings import ServeSettings

MODES = ("dense", "hybrid")


def fuse_hits(dense: list[Hit], lexical: list[Hit], k: int, method: str, settings: ServeSettings) -> list[Hit]:
    """The student's ``dense`` and BM25's ``lexical`` hits of one query fused by ``method``, best ``k`` first."""
    rows = {hit.doc_id: hit.row for hit in (*dense, *lexical)}
    fused = fuse(
        {hit.doc_id: hit.score for hit in lexical},
        {hit.doc_id: hit.score for hit in dense},
        method,
        settings.hybrid_weight,
        settings.hybrid_rrf_k,
    )
    return [Hit(rows[doc_id], doc_id, score) for doc_id, score in fused[:k]]


async def hybrid_hits(
    service: Any,
    submit: Callable[[list[tuple[str, int]]], Awaitable[list[list[Hit]]]],
    texts: list[str],
    k: int,
    method: str,
    settings: ServeSettings,
) -> list[list[Hit]]:
    """Fused top ``k`` per query of ``texts``: the student's hits through ``submit`` (the micro-batcher),
    BM25's from ``service.side`` in a worker thread, each side ``max(k, settings.hybrid_depth)`` deep."""
    depth = max(k, settings.hybrid_depth)
    dense = await submit([(text, depth) for text in texts])
    lexical = [await asyncio.to_thread(service.side.bm25_hits, text, depth) for text in texts]
    return [fuse_hits(d, lex, k, method, settings) for d, lex in zip(dense, lexical, strict=True)]
