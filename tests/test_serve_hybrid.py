"""``POST /search`` with ``mode: "hybrid"`` against real servers on 127.0.0.1: the fused lists equal a fusion
computed here from the same server's dense results and BM25 column, without --bm25 it is refused, and the
default mode answers as before."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from test_serve import LiveServer, slice_data  # noqa: F401  (slice_data is a fixture)

from retrodistill.serve.app import create_app
from retrodistill.serve.service import SearchService
from retrodistill.serve.settings import ServeSettings

DEPTH, WEIGHT = 30, 0.7


def _serve(index_dir, **options):
    settings = ServeSettings(index_dir=str(index_dir), **options)
    return LiveServer(create_app(settings, service=SearchService(settings)), settings)


@pytest.fixture(scope="module")
def hybrid_server(slice_data):  # noqa: F811
    """Started with bm25 (``--bm25``), fusing each side's top 30; default fusion zscore with weight 0.7."""
    _, index_dir, *_ = slice_data
    with _serve(index_dir, bm25=True, hybrid_depth=DEPTH, hybrid_fusion="zscore", hybrid_weight=WEIGHT) as live:
        yield live.url


@pytest.fixture(scope="module")
def plain_server(slice_data):  # noqa: F811
    """Started without --bm25."""
    _, index_dir, *_ = slice_data
    with _serve(index_dir) as live:
        yield live.url


def search(url: str, body: dict) -> httpx.Response:
    return httpx.post(url + "/search", json=body, timeout=60)


def _ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))


def _hand_rrf(lexical: dict[str, float], dense: dict[str, float]) -> dict[str, float]:
    fused: dict[str, float] = {}
    for ranking in (lexical, dense):
        for rank, doc_id in enumerate(_ranked(ranking), start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (60 + rank)
    return fused


def _hand_zscore(lexical: dict[str, float], dense: dict[str, float], weight: float) -> dict[str, float]:
    parts = []
    for w, ranking in ((1 - weight, lexical), (weight, dense)):
        values = np.array(list(ranking.values()))
        parts.append((w, dict(zip(ranking, (values - values.mean()) / values.std(), strict=True))))
    pool = {d for _, z in parts for d in z}
    return {d: sum(w * z.get(d, min(z.values())) for w, z in parts) for d in pool}


def test_hybrid_mode_equals_fusion_of_the_servers_own_dense_and_bm25_lists(hybrid_server, slice_data):  # noqa: F811
    ds, _, queries, _, _ = slice_data
    k, differs = 5, 0
    for query in queries[:6]:
        dense_hits = search(hybrid_server, {"query": query, "k": DEPTH, "mode": "dense"}).json()["results"][0]["hits"]
        dense = {h["doc_id"]: h["score"] for h in dense_hits}
        body = {"query": query, "k": DEPTH, "systems": ["bm25"]}
        column = httpx.post(hybrid_server + "/compare", json=body, timeout=60).json()["columns"][0]
        lexical = {h["doc_id"]: h["score"] for h in column["hits"]}
        assert len(dense) == DEPTH and 0 < len(lexical) <= DEPTH
        zscore = _hand_zscore(lexical, dense, WEIGHT)
        for fusion, want in (("rrf", _hand_rrf(lexical, dense)), ("zscore", zscore), (None, zscore)):
            asked = {"query": query, "k": k, "mode": "hybrid"} | ({"fusion": fusion} if fusion else {})
            response = search(hybrid_server, asked)
            assert response.status_code == 200, response.text
            data = response.json()
            assert set(data) == {"results", "k", "reranked", "latency_ms"} and data["reranked"] is False
            hits = data["results"][0]["hits"]
            expected = _ranked(want)[:k]
            assert [h["doc_id"] for h in hits] == expected, (fusion, query)
            np.testing.assert_allclose([h["score"] for h in hits], [want[d] for d in expected], rtol=1e-9)
            assert [h["retrieval_score"] for h in hits] == [h["score"] for h in hits]
            assert [h["rank"] for h in hits] == list(range(1, k + 1))
            top = ds.corpus[hits[0]["doc_id"]]
            assert hits[0]["title"] == top.title and top.text.startswith(hits[0]["snippet"].removesuffix(" …"))
            differs += expected not in (_ranked(dense)[:k], _ranked(lexical)[:k])
    assert differs > 0, "fusion never changed a ranking: this test could not tell fusion from either side alone"


def test_hybrid_needs_bm25_and_default_mode_is_unchanged(plain_server, hybrid_server, slice_data):  # noqa: F811
    _, _, queries, want_scores, want_ids = slice_data
    off = search(plain_server, {"query": queries[0], "mode": "hybrid"})
    assert off.status_code == 400 and off.headers["content-type"].startswith("application/json")
    assert "--bm25" in off.json()["error"] and "hybrid" in off.json()["error"]
    for body in (
        {"query": "ok", "mode": "sparse"},
        {"query": "ok", "mode": "hybrid", "fusion": "max"},
        {"query": "ok", "fusion": "rrf"},
    ):
        response = search(hybrid_server, body)
        assert response.status_code == 422 and response.json()["error"], (body, response.text)
    for url in (plain_server, hybrid_server):
        implicit = search(url, {"queries": queries[:3], "k": 10}).json()
        explicit = search(url, {"queries": queries[:3], "k": 10, "mode": "dense"}).json()
        for data in (implicit, explicit):
            assert set(data) == {"results", "k", "reranked", "latency_ms"}
            assert [[h["doc_id"] for h in r["hits"]] for r in data["results"]] == want_ids[:3].tolist()
            scores = [[h["score"] for h in r["hits"]] for r in data["results"]]
            np.testing.assert_allclose(scores, want_scores[:3], atol=1e-4)
            assert all(h["retrieval_score"] == h["score"] for r in data["results"] for h in r["hits"])


def test_hybrid_cost_counts_the_depth_each_side_ranks(slice_data):  # noqa: F811
    """Hybrid ranks max(k, hybrid_depth) per side, so the budget counts that depth, not k: with max_cost 30,
    "cost" at k 10 is 4 + 10 in dense mode (served) and 4 + 30 in hybrid mode (refused, 413)."""
    _, index_dir, *_ = slice_data
    with _serve(index_dir, bm25=True, hybrid_depth=DEPTH, max_cost=30) as live:
        assert search(live.url, {"query": "cost", "k": 10}).status_code == 200
        refused = search(live.url, {"query": "cost", "k": 10, "mode": "hybrid"})
        assert refused.status_code == 413, refused.text
        assert "cost 34 > max_cost 30" in refused.json()["error"] and "hybrid_depth" in refused.json()["error"]
