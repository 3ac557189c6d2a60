"""``hybrid:MODEL`` against fusions computed here from independent BM25 and numpy-cosine rankings."""

from __future__ import annotations

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
from retrodistill.retrieval.first_stage import bind_retriever

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def rankings(scifact_slice, bi_encoder):
    data = load_dataset(str(scifact_slice), "test")
    queries = data.judged_queries()[:8]
    bm25 = BM25sRetriever()
    bm25.index(data.corpus)
    lexical = bm25.retrieve(queries, 1000, show_progress=False)
    ids = list(data.corpus)
    docs = bi_encoder.encode_passages([data.corpus[d].full_text() for d in ids])
    cosine = bi_encoder.encode_queries([q.text for q in queries]) @ docs.T
    dense = {q.query_id: dict(zip(ids, row.tolist(), strict=True)) for q, row in zip(queries, cosine, strict=True)}
    return data, queries, lexical, dense


def _order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))


def test_rrf_equals_hand_fusion(rankings):
    data, queries, lexical, dense = rankings
    hybrid = bind_retriever(f"hybrid:{MODEL},show_progress=false").build()
    hybrid.index(data.corpus)
    run = hybrid.retrieve(queries, 10, show_progress=False)
    for q in queries:
        fused: dict[str, float] = {}
        for ranking in (lexical[q.query_id], dense[q.query_id]):
            for rank, d in enumerate(_order(ranking), start=1):
                fused[d] = fused.get(d, 0.0) + 1 / (60 + rank)
        expected = _order(fused)[:10]
        assert _order(run[q.query_id]) == expected
        assert [run[q.query_id][d] for d in expected] == pytest.approx([fused[d] for d in expected])


def test_zscore_weight_equals_hand_interpolation(rankings):
    data, queries, lexical, dense = rankings
    hybrid = bind_retriever(f"hybrid:{MODEL},method=zscore,weight=0.7,pool=50,show_progress=false").build()
    hybrid.index(data.corpus)
    run = hybrid.retrieve(queries, 10, show_progress=False)
    for q in queries:
        parts = []
        for w, ranking in ((0.3, lexical[q.query_id]), (0.7, dense[q.query_id])):
            top = _order(ranking)[:50]
            values = np.array([ranking[d] for d in top])
            z = dict(zip(top, (values - values.mean()) / values.std(), strict=True))
            parts.append((w, z))
        pool = {d for _, z in parts for d in z}
        fused = {d: sum(w * z.get(d, min(z.values())) for w, z in parts) for d in pool}
        expected = _order(fused)[:10]
        assert _order(run[q.query_id]) == expected
        assert [run[q.query_id][d] for d in expected] == pytest.approx([fused[d] for d in expected], abs=1e-5)


def test_bad_method_is_one_line(scifact_slice):
    from retrodistill.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown hybrid method 'max'"):
        bind_retriever(f"hybrid:{MODEL},method=max").build()
