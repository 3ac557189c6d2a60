"""What an eval table says it measured: first-stage k vs re-rank depth, truncated lists, captions, titles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from retrodistill.data.load import load_dataset
from retrodistill.data.trec import read_run, write_run
from retrodistill.errors import ConfigError
from retrodistill.eval.config import EvalConfig
from retrodistill.eval.harness import run_evaluation
from retrodistill.eval.report import TRUNCATED, render_table, write_outputs
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
README = Path(__file__).resolve().parents[1] / "README.md"


def _text(report) -> str:
    console = Console(record=True, width=240)
    console.print(render_table(report))
    return console.export_text()


def test_a_30_deep_candidate_list_says_its_recall_at_100_is_on_30_docs(scifact_slice, tmp_path):
    ds = load_dataset(str(scifact_slice))
    judged = {d for docs in ds.qrels.values() for d in docs}
    others = sorted(d for d in ds.corpus if d not in judged)
    # 29 unjudged docs, then the query's first relevant doc at rank 30 for every other query
    run = {}
    for i, (qid, rel) in enumerate(ds.qrels.items()):
        ids = others[i : i + 29] + ([sorted(rel)[0]] if i % 2 == 0 else others[i + 29 : i + 30])
        run[qid] = {d: 30.0 - rank for rank, d in enumerate(ids)}
    write_run(run, tmp_path / "cands.trec")
    config = EvalConfig(
        dataset=str(scifact_slice), candidates=str(tmp_path / "cands.trec"), measures=["R@100", "P@30"], plot=False
    )
    report = run_evaluation(config, show_progress=False)
    (row,) = report.results
    expected = sum(1 / len(rel) for i, rel in enumerate(ds.qrels.values()) if i % 2 == 0) / len(ds.qrels)
    assert row.name == "candidates" and row.evaluation.aggregate["R@100"] == pytest.approx(expected)
    assert row.longest == 30 and row.truncated == {"R@100": 30}  # P@30 sees every doc it needs

    table = _text(report)
    note = TRUNCATED.format(n=30)
    assert f"{expected:.4f} ‡" in table and f"‡ R@100 {note}: candidates" in table
    assert "†" not in table  # one row: nothing was tested, so no dagger legend
    assert f"{report.dataset}:" in table.splitlines()[0] and str(tmp_path) not in table
    metrics = json.loads((write_outputs(report, tmp_path / "out") / "metrics.json").read_text())
    (saved,) = metrics["systems"]
    assert saved["truncated"] == {"R@100": note} and saved["longest_list"] == 30
    assert saved["metrics"]["R@100"] == pytest.approx(expected)
    assert TRUNCATED.format(n="N") in README.read_text(encoding="utf-8")  # the README names the same note


def test_rerank_top_depth_keeps_the_rest_below_in_first_stage_order(scifact_slice, tmp_path, bi_encoder):
    ds = load_dataset(str(scifact_slice))
    depth = 7
    config = EvalConfig(
        dataset=str(scifact_slice),
        candidates="bm25s",
        depth=depth,
        systems=[f"dense:{MODEL}"],
        measures=["nDCG@10", "R@100"],
        cache_dir=str(tmp_path / "cache"),
        plot=False,
    )
    report = run_evaluation(config, show_progress=False)
    first, dense = report.results

    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    full = bm25.retrieve(ds.judged_queries(), k=len(ds.corpus), show_progress=False)
    top100 = {q: sorted(docs, key=lambda d: (-docs[d], d))[:100] for q, docs in full.items()}
    relevant = {q: {d for d, g in rel.items() if g > 0} for q, rel in ds.qrels.items()}
    recall = [len(rel & set(top100.get(q, []))) / len(rel) for q, rel in relevant.items()]
    assert first.run == full  # k=1000 > corpus: the whole BM25 ranking, not its top `depth`
    assert first.evaluation.aggregate["R@100"] == pytest.approx(sum(recall) / len(recall))
    assert first.truncated == {} and dense.truncated == {}

    for qid, docs in first.run.items():
        ranked = sorted(docs, key=lambda d: (-docs[d], d))
        head, tail = ranked[:depth], ranked[depth:]
        qvec = bi_encoder.encode_queries([ds.queries[qid].text])[0]
        cosines = bi_encoder.encode_passages([ds.corpus[d].full_text() for d in head]) @ qvec
        expected_head = [head[i] for i in np.argsort(-cosines, kind="stable")]
        got = dense.run[qid]
        order = sorted(got, key=lambda d: (-got[d], d))
        assert set(got) == set(docs)
        assert order[:depth] == expected_head
        assert [got[d] for d in head] == pytest.approx(cosines.tolist(), abs=1e-5)
        assert order[depth:] == tail  # first-stage order beneath the re-ranked block
        assert all(got[d] < min(cosines) for d in tail)
    # re-ordering inside the top 7 leaves the top-100 set alone: the same recall at 100
    assert dense.evaluation.aggregate["R@100"] == pytest.approx(first.evaluation.aggregate["R@100"])

    table = _text(report)
    assert f"re-rankers re-score the top {depth} candidates per query" in table and "‡" not in table
    metrics = json.loads((write_outputs(report, tmp_path / "out") / "metrics.json").read_text())
    assert metrics["rerank"] == {"candidates": "bm25s", "depth": depth}
    assert [s["longest_list"] for s in metrics["systems"]] == [first.longest] * 2
    assert len(read_run(tmp_path / "out" / "bm25s.trec")[qid]) == len(first.run[qid])


def test_rankllm_table_is_titled_by_dataset_and_flags_recall_past_its_lists(data_dir, tmp_path):
    dl = data_dir / "trec-dl-2019"
    cands = dl / "rank_llm" / "BM25" / "retrieve_results_dl19.json.gz"
    config = EvalConfig(
        qrels=str(dl / "2019qrels-pass.txt"), candidates=str(cands), measures=["nDCG@10", "R@1000"], plot=False
    )
    report = run_evaluation(config, show_progress=False)
    (row,) = report.results
    assert report.dataset == "dl19" and row.longest == 100 and row.truncated == {"R@1000": 100}
    table = _text(report)
    assert table.splitlines()[0].strip().startswith("dl19:") and "retrieve_results" not in table
    assert f"‡ R@1000 {TRUNCATED.format(n=100)}: candidates" in table and "†" not in table


def test_an_ensemble_row_fuses_the_members_z_scores_over_the_re_scored_candidates(scifact_slice, tmp_path):
    depth = 7
    config = EvalConfig(
        dataset=str(scifact_slice),
        candidates="bm25s",
        depth=depth,
        systems=[
            f"dense:{MODEL},label=minilm",
            "bm25,label=lex",
            "ensemble:minilm+lex,weights=1/0.5",
        ],
        measures=["nDCG@10"],
        cache_dir=str(tmp_path / "cache"),
        plot=False,
    )
    report = run_evaluation(config, show_progress=False)
    first, minilm, bm25, fused = report.results
    assert fused.name == "ensemble:minilm+lex"
    for qid, docs in first.run.items():
        ranked = sorted(docs, key=lambda d: (-docs[d], d))
        head = ranked[:depth]
        parts = []
        for member in (minilm, bm25):
            x = np.array([member.run[qid][d] for d in head])
            parts.append((x - x.mean()) / x.std())
        mix = parts[0] + 0.5 * parts[1]
        got = fused.run[qid]
        order = sorted(got, key=lambda d: (-got[d], d))
        assert [got[d] for d in head] == pytest.approx(mix.tolist(), abs=1e-9)
        assert set(order[:depth]) == set(head) and order[depth:] == ranked[depth:]

    bad = EvalConfig(dataset=str(scifact_slice), candidates="bm25s", systems=["bm25", "ensemble:bm25+minilm"])
    with pytest.raises(ConfigError, match="'minilm' is not a system listed before it"):
        run_evaluation(bad, show_progress=False)
    for weights in ("1", "nan/1", "inf/1", "-1/1", "0/0"):
        with pytest.raises(ValueError, match="weights"):
            spec = f"ensemble:bm25+bm25,weights={weights}"
            EvalConfig(dataset=str(scifact_slice), candidates="bm25s", systems=["bm25", spec])
