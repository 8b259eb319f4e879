"""Time intervals as (start, end) tuples in seconds: union, intersection, complement, totals.

Both the generator's ground truth and the scorer's measurements are lists of such intervals; they share these operations so that
"dead air" or "speech total" is computed the same way on both sides of an accuracy comparison.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Interval = tuple[float, float]


def merge(intervals: Iterable[Interval], min_gap: float = 0.0) -> list[Interval]:
    """Sorted union. Overlapping or touching intervals join, and so do neighbours less than `min_gap` apart."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and (start <= merged[-1][1] or start - merged[-1][1] < min_gap):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The time covered by both lists. Each list must be sorted and free of overlaps (as `merge` returns)."""
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if end > start:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def complement(intervals: Iterable[Interval], duration: float) -> list[Interval]:
    """The stretches of [0, duration) that no interval covers, in order; intervals may be unsorted or overlap."""
    gaps: list[Interval] = []
    covered_until = 0.0
    for start, end in sorted(intervals):
        if start > covered_until:
            gaps.append((covered_until, start))
        covered_until = max(covered_until, end)
    if duration > covered_until:
        gaps.append((covered_until, duration))
    return gaps


def total(intervals: Iterable[Interval]) -> float:
    """Summed length; overlapping intervals count twice, so pass a `merge`d list for covered time."""
    return sum(end - start for start, end in intervals)


def longest(intervals: Iterable[Interval]) -> float:
    """Length of the longest interval, 0.0 for none."""
    return max((end - start for start, end in intervals), default=0.0)


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where a boolean per-frame mask is True, for turning frame decisions into intervals."""
    if not len(mask):
        return []
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
