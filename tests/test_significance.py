from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from retrodistill.errors import ConfigError
from retrodistill.eval.significance import paired_test


def test_t_test_matches_hand_formula():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 50)
    b = a - 0.05 + rng.normal(0, 0.1, 50)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p_hand = 2 * stats.t.sf(abs(t), df=len(d) - 1)
    assert paired_test(a, b, "t-test") == pytest.approx(p_hand, rel=1e-9)


def test_randomization_close_to_t_test_and_deterministic():
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, 200)
    b = a - 0.02 + rng.normal(0, 0.15, 200)
    p_rand = paired_test(a, b, "randomization", permutations=20_000, seed=3)
    assert p_rand == paired_test(a, b, "randomization", permutations=20_000, seed=3)
    assert p_rand == pytest.approx(paired_test(a, b, "t-test"), abs=0.03)


def test_clear_difference_and_identical_systems():
    a = np.linspace(0.5, 1.0, 40)
    assert paired_test(a, a - 0.2, "randomization") < 0.001
    assert paired_test(a, a, "t-test") == 1.0
    assert paired_test(a, a, "randomization") == 1.0
    with pytest.raises(ConfigError):
        paired_test(a, a - 0.1, "wilcoxon?")
