"""Metric values against hand computation and pytrec_eval (an independent implementation)."""

from __future__ import annotations

import math

import pytest

from retrodistill.errors import ConfigError
from retrodistill.eval.measures import evaluate

QRELS = {"q1": {"d1": 3, "d2": 1, "d9": 2}, "q2": {"d5": 1}, "q3": {"d7": 1}}
RUN = {
    "q1": {"d2": 0.9, "d3": 0.8, "d1": 0.7, "d4": 0.1},
    "q2": {"d6": 0.5, "d8": 0.4, "d5": 0.3},
}


def _dcg(gains):
    """trec_eval's DCG: linear gain (the grade itself), log2(rank + 1) discount."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_ndcg_rr_recall_by_hand():
    # q1 ranking d2(1) d3(0) d1(3) d4(0); ideal 3, 2, 1. q2: d5 at rank 3. q3 unanswered -> 0.
    ndcg_q1 = _dcg([1, 0, 3, 0]) / _dcg([3, 2, 1])
    ndcg_q2 = _dcg([0, 0, 1]) / _dcg([1])
    result = evaluate(RUN, QRELS, ["nDCG@10", "MRR@10", "Recall@100", "RR(rel=2)@10"])
    assert result.per_query["nDCG@10"]["q1"] == pytest.approx(ndcg_q1)
    assert result.per_query["nDCG@10"]["q2"] == pytest.approx(ndcg_q2)
    assert result.per_query["nDCG@10"]["q3"] == 0.0
    assert result.aggregate["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert result.aggregate["RR@10"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert result.aggregate["R@100"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert result.per_query["RR(rel=2)@10"]["q1"] == pytest.approx(1 / 3)


def test_agrees_with_pytrec_eval_on_real_run(data_dir):
    import pytrec_eval

    from retrodistill.data.rankllm import load_rerank_task

    task = load_rerank_task(
        data_dir / "trec-dl-2019" / "2019qrels-pass.txt",
        data_dir / "trec-dl-2019" / "rank_llm" / "BM25" / "retrieve_results_dl19.json.gz",
    )
    ours = evaluate(task.candidates, task.qrels, ["nDCG@10", "R@100"])
    evaluator = pytrec_eval.RelevanceEvaluator(task.qrels, {"ndcg_cut.10", "recall.100"})
    theirs = evaluator.evaluate(task.candidates)
    for qid, values in theirs.items():
        assert ours.per_query["nDCG@10"][qid] == pytest.approx(values["ndcg_cut_10"], abs=1e-9)
        assert ours.per_query["R@100"][qid] == pytest.approx(values["recall_100"], abs=1e-9)
    assert ours.aggregate["nDCG@10"] == pytest.approx(0.5058, abs=5e-4)  # pyserini's published BM25 figure


def test_unknown_measure_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown measure 'nDGC@10'"):
        evaluate(RUN, QRELS, ["nDGC@10"])
