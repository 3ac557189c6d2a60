"""Paired significance tests over per-query values (Smucker et al., CIKM 2007)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrodistill.errors import ConfigError

TESTS = ("t-test", "randomization")


def paired_test(
    a: Sequence[float], b: Sequence[float], test: str = "t-test", permutations: int = 10_000, seed: int = 0
) -> float:
    """Two-sided p-value that systems with per-query values ``a`` and ``b`` (same query order) differ.

    ``t-test``: Student's paired t-test. ``randomization``: Fisher's paired randomisation test,
    flipping the sign of each query's difference at random ``permutations`` times; the p-value
    counts permutations at least as extreme as observed, with the observed one included.
    Identical inputs give p = 1.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("paired tests need two equally long 1-d sequences")
    diff = x - y
    if len(diff) < 2 or np.allclose(diff, 0.0):
        return 1.0
    if test == "t-test":
        from scipy.stats import ttest_rel

        p = float(ttest_rel(x, y).pvalue)
        return 1.0 if np.isnan(p) else p
    if test == "randomization":
        rng = np.random.default_rng(seed)
        observed = abs(diff.mean())
        extreme = 1
        for start in range(0, permutations, 1000):
            n = min(1000, permutations - start)
            signs = rng.choice((-1.0, 1.0), size=(n, len(diff)))
            extreme += int((np.abs((signs * diff).mean(axis=1)) >= observed - 1e-12).sum())
        return extreme / (permutations + 1)
    raise ConfigError(f"unknown significance test {test!r}; choose one of: {', '.join(TESTS)}")
