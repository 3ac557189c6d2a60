"""Per-stage peak memory: the kernel's high-water mark, reset between stages, against a known allocation."""

from __future__ import annotations

import numpy as np
import pytest

from retrodistill.memory import peak_rss_mb, release, reset_peak, rss_mb


def test_a_stage_peak_covers_its_allocation_and_resets_after_it():
    if not reset_peak():
        pytest.skip("this platform cannot reset the peak (no /proc/self/clear_refs)")
    base = rss_mb()
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    assert peak_rss_mb() >= base + 190
    del block
    release()
    assert rss_mb() < base + 50  # handed back
    reset_peak()
    assert peak_rss_mb() < base + 50  # the next stage does not inherit the previous peak


def test_an_outer_stage_keeps_the_highest_peak_of_its_parts():
    from retrodistill.memory import mark, peak_since_mark

    if not mark():
        pytest.skip("this platform cannot reset the peak (no /proc/self/clear_refs)")
    base = rss_mb()
    block = np.ones(150 * 2**20 // 8)  # the first part peaks at +150 MiB
    del block
    release()
    reset_peak()  # a second part starts, as each evaluated system does
    assert peak_rss_mb() < base + 50
    assert peak_since_mark() >= base + 140  # the stage still reports the first part's peak
