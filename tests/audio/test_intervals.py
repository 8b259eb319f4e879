"""Interval arithmetic shared by the ground truth and the scorer."""

from __future__ import annotations

import numpy as np
import pytest

from audio.intervals import complement, intersect, longest, mask_runs, merge, total


def test_merge_sorts_and_joins_overlapping_and_touching_intervals() -> None:
    assert merge([(5.0, 6.0), (0.0, 2.0), (1.0, 3.0), (3.0, 4.0)]) == [(0.0, 4.0), (5.0, 6.0)]
    assert merge([(0.0, 10.0), (2.0, 3.0)]) == [(0.0, 10.0)]  # a contained interval does not shorten the union
    assert merge([]) == []


def test_merge_bridges_only_gaps_shorter_than_min_gap() -> None:
    speech = [(0.0, 1.0), (1.1, 2.0), (2.5, 3.0)]
    assert merge(speech, min_gap=0.2) == [(0.0, 2.0), (2.5, 3.0)]
    assert merge(speech, min_gap=0.5) == [(0.0, 2.0), (2.5, 3.0)]  # 0.5 apart is not *less* than 0.5
    assert merge(speech, min_gap=0.6) == [(0.0, 3.0)]


def test_intersect_of_two_sorted_lists() -> None:
    agent = [(0.0, 2.0), (3.0, 6.0), (8.0, 9.0)]
    customer = [(1.5, 3.5), (5.0, 10.0)]
    assert intersect(agent, customer) == [(1.5, 2.0), (3.0, 3.5), (5.0, 6.0), (8.0, 9.0)]
    assert intersect(agent, []) == []
    assert intersect([(0.0, 1.0)], [(1.0, 2.0)]) == []  # touching is not overlapping


def test_complement_within_the_call() -> None:
    assert complement([(1.0, 2.0), (4.0, 5.0)], 6.0) == [(0.0, 1.0), (2.0, 4.0), (5.0, 6.0)]
    assert complement([(0.0, 3.0), (1.0, 2.0), (3.0, 6.0)], 6.0) == []
    assert complement([(4.0, 5.0), (0.5, 4.5)], 5.0) == [(0.0, 0.5)]  # unsorted, overlapping input
    assert complement([], 2.5) == [(0.0, 2.5)]


def test_total_and_longest() -> None:
    ivs = [(0.0, 1.5), (2.0, 2.25), (3.0, 6.0)]
    assert total(ivs) == pytest.approx(4.75)
    assert longest(ivs) == pytest.approx(3.0)
    assert total([]) == 0 and longest([]) == 0.0
    assert total(merge([(0.0, 2.0), (1.0, 3.0)])) == pytest.approx(3.0)


def test_mask_runs_are_half_open_index_ranges() -> None:
    mask = np.array([True, True, False, False, True, False, True, True, True])
    assert mask_runs(mask) == [(0, 2), (4, 5), (6, 9)]
    assert mask_runs(np.zeros(4, dtype=bool)) == []
    assert mask_runs(np.ones(3, dtype=bool)) == [(0, 3)]
    assert mask_runs(np.array([], dtype=bool)) == []
