"""Per-stage peak memory: the kernel's high-water mark, reset between stages, against known allocations.

Each check runs in a fresh interpreter, so the test suite's own heap (models, caches) cannot blur it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, numpy as np
from retrodistill.memory import mark, peak_rss_mb, peak_since_mark, release, reset_peak, rss_mb
out = {"resettable": mark()}
out["base"] = rss_mb()
block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
out["peak_with_block"] = peak_rss_mb()
del block
release()
out["after_release"] = rss_mb()
reset_peak()  # a second part of the stage starts, as each evaluated system does
out["part_peak"] = peak_rss_mb()
out["stage_peak"] = peak_since_mark()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def measured() -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not out["resettable"]:
        pytest.skip("this platform cannot reset the peak (no /proc/self/clear_refs)")
    return out


def test_a_part_peak_covers_its_allocation_and_resets_after_it(measured):
    assert measured["peak_with_block"] >= measured["base"] + 190
    assert measured["after_release"] < measured["base"] + 50  # handed back
    assert measured["part_peak"] < measured["base"] + 50  # the next part does not inherit the peak


def test_an_outer_stage_keeps_the_highest_peak_of_its_parts(measured):
    assert measured["stage_peak"] >= measured["base"] + 190
