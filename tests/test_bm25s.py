"""bm25s scores against an independent BM25 (Lucene variant) computed here from the same tokens."""

from __future__ import annotations

import math
from collections import Counter

import bm25s
import pytest
import Stemmer

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.eval.measures import evaluate
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever


def _lucene_bm25(doc_tokens, query_tokens, k1, b):
    n = len(doc_tokens)
    avgdl = sum(len(d) for d in doc_tokens) / n
    df = Counter(t for d in doc_tokens for t in set(d))
    tfs = [Counter(d) for d in doc_tokens]
    scores = []
    for tf, doc in zip(tfs, doc_tokens, strict=True):
        norm = k1 * (1 - b + b * len(doc) / avgdl)
        score = 0.0
        for term in query_tokens:  # repeated query terms count again, as in Anserini
            if term in tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf[term] / (tf[term] + norm)
        scores.append(score)
    return scores


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.5, 0.75)])
def test_scores_match_independent_formula(scifact_slice, k1, b):
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())
    retriever = BM25sRetriever(k1=k1, b=b)
    retriever.index(ds.corpus)
    queries = ds.judged_queries()[:15]
    run = retriever.retrieve(queries, k=10, show_progress=False)
    stemmer = Stemmer.Stemmer("porter")
    doc_tokens = bm25s.tokenize(
        [d.full_text() for d in docs], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    for query in queries:
        q_tokens = bm25s.tokenize([query.text], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)[
            0
        ]
        expected = _lucene_bm25(doc_tokens, q_tokens, k1, b)
        best = sorted(range(len(docs)), key=lambda i: -expected[i])[:10]
        got = run[query.query_id]
        assert len(got) == 10
        for i in best:
            if expected[i] > expected[best[-1]] + 1e-4:  # ties at the cut may fall either way
                assert got[docs[i].doc_id] == pytest.approx(expected[i], rel=1e-4)


def test_retrieval_quality_and_options(scifact_slice):
    ds = load_dataset(str(scifact_slice))
    retriever = BM25sRetriever()
    retriever.index(ds.corpus)
    run = retriever.retrieve(ds.judged_queries(), k=100, show_progress=False)
    assert evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"] > 0.6
    no_stem = BM25sRetriever(stemmer=None)
    no_stem.index(ds.corpus)
    assert no_stem.retrieve(ds.judged_queries()[:3], k=5, show_progress=False) != retriever.retrieve(
        ds.judged_queries()[:3], k=5, show_progress=False
    )
    with pytest.raises(ConfigError, match="unknown stemmer 'klingon'"):
        BM25sRetriever(stemmer="klingon")
