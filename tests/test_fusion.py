"""Interpolating a re-ranker with its first stage, checked by hand."""

from __future__ import annotations

import math
import warnings

import pytest

from retrodistill.errors import ConfigError
from retrodistill.retrieval.fusion import interpolate

FIRST = {"q": {"a": 12.0, "b": 10.0, "c": 8.0, "d": 1.0}}
RERANKED = {"q": {"a": -1.0, "b": 3.0, "c": 1.0, "d": -9.0}}  # d is below depth: its score is the tail's


def test_mix_is_the_weighted_sum_of_per_query_z_scores():
    fused = interpolate(RERANKED, FIRST, 0.5, depth=3)["q"]
    # first stage over a, b, c: mean 10, population sd sqrt(8/3); re-ranker: mean 1, sd sqrt(8/3)
    sd = math.sqrt(8 / 3)
    assert fused["a"] == pytest.approx(0.5 * (-2 / sd) + 0.5 * (2 / sd))
    assert fused["b"] == pytest.approx(0.5 * (2 / sd) + 0.5 * (0 / sd))
    assert fused["c"] == pytest.approx(0.5 * (0 / sd) + 0.5 * (-2 / sd))
    assert fused["d"] < min(fused["a"], fused["b"], fused["c"])  # below depth keeps its place beneath


def test_weights_zero_and_one_give_each_input_order():
    def order(run):
        return sorted(run["q"], key=lambda d: -run["q"][d])

    assert order(interpolate(RERANKED, FIRST, 0.0, depth=3)) == ["a", "b", "c", "d"]
    assert order(interpolate(RERANKED, FIRST, 1.0, depth=3)) == ["b", "c", "a", "d"]


def test_constant_scores_and_bad_weight():
    flat = interpolate({"q": {"a": 2.0, "b": 2.0}}, {"q": {"a": 5.0, "b": 4.0}}, 0.9)["q"]
    assert flat["a"] == pytest.approx(0.1) and flat["b"] == pytest.approx(-0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a query BM25 found nothing for is empty, not a numpy warning
        assert interpolate({"q": {}}, {"q": {}}, 0.5) == {"q": {}}
    with pytest.raises(ConfigError, match=r"outside \[0, 1\]"):
        interpolate(RERANKED, FIRST, 1.5)
    with pytest.raises(ValueError, match="lacks 1 of its top-4"):
        interpolate({"q": {"a": 1.0, "b": 2.0, "c": 0.0}}, FIRST, 0.5)
