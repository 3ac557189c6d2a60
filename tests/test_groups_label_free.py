"""Label-free training groups from a teacher's ranking alone: which passages become positive and negatives."""

from __future__ import annotations

import pytest

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError
from retrodistill.training.groups import examples_from_teacher_ranking

CORPUS = {f"d{i}": Document(f"d{i}", f"text {i}", f"title {i}" if i % 2 else "") for i in range(8)}
QUERIES = {"q1": "first query", "q2": "second query"}
# q1's teacher ranking: d3 > d1 > d5 > d0 > d7 > d2 (d4, d6 unscored); q2: d6 > d2 = d4 (tie: d2 first) > d0.
RUN = {
    "q1": {"d0": 0.5, "d1": 2.0, "d2": -1.0, "d3": 3.0, "d5": 1.0, "d7": 0.0},
    "q2": {"d0": -2.0, "d2": 1.0, "d4": 1.0, "d6": 4.0},
    "q3": {"d1": 1.0},  # no query text: skipped
}


def test_top_candidate_is_positive_and_negatives_skip_the_two_best():
    examples = examples_from_teacher_ranking(QUERIES, CORPUS, {"q1": RUN["q1"]}, group_size=4, seed=0, negatives="top")
    (ex,) = examples
    assert ex.qid == "q1" and ex.query == "first query"
    # positive d3 (rank 1); negatives from ranks 3.. = d5, d0, d7 (d1 at rank 2 is skipped)
    assert ex.passages == tuple(CORPUS[d].full_text() for d in ["d3", "d5", "d0", "d7"])
    assert ex.scores == (3.0, 1.0, 0.5, 0.0)


def test_source_passage_is_positive_and_excluded_from_negatives():
    sources = {"q1": "d5", "q2": "d0"}
    examples = examples_from_teacher_ranking(
        QUERIES, CORPUS, RUN, group_size=3, seed=0, sources=sources, negatives="top"
    )
    by_q = {e.qid: e for e in examples}
    assert set(by_q) == {"q1"}  # q2 keeps one candidate below rank 2 once its positive d0 is left out
    # q1: positive d5 (teacher rank 3); ranks 3.. without d5 = d0, d7, d2
    assert by_q["q1"].passages == tuple(CORPUS[d].full_text() for d in ["d5", "d0", "d7"])
    assert by_q["q1"].scores == (1.0, 0.5, 0.0)
    # q2: ranking d6, d2, d4, d0 (tie broken by id); ranks 3.. = d4, d0; d0 is the positive -> only d4 left
    examples = examples_from_teacher_ranking(QUERIES, CORPUS, RUN, group_size=2, seed=0, sources=sources)
    q2 = next(e for e in examples if e.qid == "q2")
    assert q2.passages == (CORPUS["d0"].full_text(), CORPUS["d4"].full_text()) and q2.scores == (-2.0, 1.0)


def test_random_negatives_are_reproducible_and_drawn_from_the_allowed_ranks():
    runs = [examples_from_teacher_ranking(QUERIES, CORPUS, RUN, group_size=3, seed=7, depth=5) for _ in range(2)]
    assert runs[0] == runs[1]
    q1 = next(e for e in runs[0] if e.qid == "q1")
    allowed = {CORPUS[d].full_text() for d in ["d5", "d0", "d7"]}  # ranks 3..5
    assert q1.passages[0] == CORPUS["d3"].full_text() and set(q1.passages[1:]) <= allowed
    assert len(set(q1.passages[1:])) == 2


def test_unscored_source_skips_the_query_and_too_few_candidates_is_one_error():
    examples = examples_from_teacher_ranking(QUERIES, CORPUS, RUN, group_size=3, seed=0, sources={"q1": "d4"})
    assert [e.qid for e in examples] == ["q2"]  # d4 was never scored for q1
    with pytest.raises(ConfigError, match="no label-free training group"):
        examples_from_teacher_ranking(QUERIES, CORPUS, RUN, group_size=6, seed=0)


def test_ensemble_fusion_matches_hand_computed_zscore_and_rrf(tmp_path):
    import math

    from retrodistill.teachers.ensemble import ensemble_spec, ensemble_stores, fuse_runs
    from retrodistill.teachers.records import ScoredPair, TeacherSpec
    from retrodistill.teachers.store import ScoreStore

    a = {"q": {"x": 3.0, "y": 1.0, "z": 2.0}}
    b = {"q": {"x": 0.0, "y": 10.0}}  # b did not score z
    # z-scores: a mean 2, sd sqrt(2/3) -> x +1.2247, y -1.2247, z 0; b mean 5, sd 5 -> x -1, y +1
    sd = math.sqrt(2 / 3)
    fused = fuse_runs([a, b], [2.0, 1.0], "zscore")
    assert fused["q"] == pytest.approx({"x": 2 * (1 / sd) - 1, "y": 2 * (-1 / sd) + 1, "z": 0.0})
    # rrf k=60: a ranks x, z, y; b ranks y, x
    rrf = fuse_runs([a, b], [1.0, 3.0], "rrf", k=60)
    assert rrf["q"] == pytest.approx({"x": 1 / 61 + 3 / 62, "y": 1 / 63 + 3 / 61, "z": 1 / 62})
    ca = TeacherSpec("llm", "m1", "r1", "pointwise", "mean-log-prob")
    cb = TeacherSpec("cross-encoder", "m2", "r2", "pointwise", "logit")
    for path, spec, run in ((tmp_path / "a.sqlite", ca, a), (tmp_path / "b.sqlite", cb, b)):
        with ScoreStore(path, spec) as store:
            store.add([ScoredPair("q", d, s) for d, s in run["q"].items()])
    spec, run = ensemble_stores([tmp_path / "a.sqlite", tmp_path / "b.sqlite"], [2.0, 1.0])
    assert run == fused
    assert [m["fingerprint"] for m in spec.options["members"]] == [ca.fingerprint(), cb.fingerprint()]
    assert [m["weight"] for m in spec.options["members"]] == [2.0, 1.0]
    assert spec.fingerprint() != ensemble_spec([ca, cb], [1.0, 2.0]).fingerprint()
    assert spec.fingerprint() != ensemble_spec([ca, cb], [2.0, 1.0], "rrf").fingerprint()
    with pytest.raises(ConfigError, match="one weight"):
        fuse_runs([a, b], [1.0])
    with pytest.raises(ConfigError, match="unknown ensemble method"):
        fuse_runs([a], method="borda")


def test_reranked_runs_fuse_over_the_scored_candidates_only_and_keep_the_tail_in_first_stage_order():
    import math

    from retrodistill.retrieval.rerank import with_tail
    from retrodistill.teachers.ensemble import fuse_reranked, fuse_runs

    first = {"q": {"a": 9.0, "b": 8.0, "c": 7.0, "d": 6.0, "e": 5.0, "f": 4.0}}
    order = ["a", "b", "c", "d", "e", "f"]
    # two re-rankers scored the top 3 (a cosine-like and a BM25-like scale); with_tail puts d, e, f beneath
    cosine = {"q": with_tail({"a": 0.50, "b": 0.70, "c": 0.60}, order)}
    lexical = {"q": with_tail({"a": 30.0, "b": 10.0, "c": 20.0}, order)}
    fused = fuse_reranked([cosine, lexical], first, depth=3)
    # per member over a, b, c: cosine z = (-1.2247, +1.2247, 0), lexical z = (+1.2247, -1.2247, 0)
    sd = math.sqrt(2 / 3)
    assert {d: fused["q"][d] for d in "abc"} == pytest.approx({"a": 0.0, "b": 0.0, "c": 0.0}, abs=1e-12)
    ranked = sorted(fused["q"], key=lambda d: (-fused["q"][d], d))
    assert ranked[3:] == ["d", "e", "f"] and max(fused["q"][d] for d in "def") < min(fused["q"][d] for d in "abc")
    weighted = fuse_reranked([cosine, lexical], first, depth=3, weights=[2.0, 1.0])
    assert weighted["q"]["b"] == pytest.approx(2 / sd - 1 / sd)
    assert sorted(weighted["q"], key=lambda d: -weighted["q"][d])[:3] == ["b", "c", "a"]
    # fusing the whole runs lets the tail's unit steps set each member's spread: the cosine member's 0.2
    # range vanishes and the lexical member alone orders the top (a, c, b), which is what the above avoids
    naive = fuse_runs([cosine, lexical], [2.0, 1.0])
    assert sorted(naive["q"], key=lambda d: -naive["q"][d])[:3] == ["a", "c", "b"]
    with pytest.raises(ConfigError):
        fuse_reranked([cosine], first, depth=0)
