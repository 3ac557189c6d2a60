"""How pairwise and listwise teachers' answers become scores: which pairs, which windows, how wins add up.

See ``retrodistill.teachers.base`` for the cost formulas these functions implement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from retrodistill.errors import ConfigError


def comparison_pairs(n: int, window: int | None) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, that pairwise ranking compares: all, or those at most ``window`` apart."""
    reach = n if window is None else window
    return [(i, j) for i in range(n) for j in range(i + 1, min(n, i + reach + 1))]


def sliding_windows(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans of a back-to-front sliding window, the last one clamped to start at 0."""
    if window < 1 or stride < 1:
        raise ConfigError(f"window and stride must be >= 1 (got window={window}, stride={stride})")
    if n <= 0:
        return []
    spans: list[tuple[int, int]] = []
    end = n
    while True:
        start = max(end - window, 0)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= stride


def aggregate_preferences(doc_ids: Sequence[str], prefs: Mapping[tuple[str, str], float]) -> dict[str, float]:
    """Sum of win probabilities per document, both orders averaged (see the module docstring)."""
    scores = {d: -1e-6 * i for i, d in enumerate(doc_ids)}
    seen: set[frozenset[str]] = set()
    for a, b in prefs:
        if a not in scores or b not in scores or frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        forward, backward = prefs.get((a, b)), prefs.get((b, a))
        views = [p for p in (forward, None if backward is None else 1.0 - backward) if p is not None]
        win = sum(views) / len(views)
        scores[a] += win
        scores[b] += 1.0 - win
    return scores
