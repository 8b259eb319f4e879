"""Byte ranges, waveform peaks and evidence markers of the call page."""

from __future__ import annotations

import numpy as np
import pytest

from console.audio import ByteRange, RangeNotSatisfiable, parse_range, peaks
from console.calls import evidence_markers


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-", ByteRange(0, 999)), ("bytes=100-199", ByteRange(100, 199)), ("bytes=-10", ByteRange(990, 999)),
    ("bytes=900-5000", ByteRange(900, 999)), ("bytes=0-1,5-6", None), ("items=0-1", None)])
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 1000) == expected


def test_a_range_past_the_end_is_not_satisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)


def test_peaks_per_channel() -> None:
    samples = np.zeros((8000, 2), dtype=np.int16)
    samples[4000:4100, 1] = 16384
    lanes = peaks(samples, buckets=10)
    assert len(lanes) == 2 and len(lanes[0]) == 10
    assert max(high for _, high in lanes[0]) == 0.0
    assert lanes[1][5] == [0.0, 0.5]


def test_evidence_markers_merge_ranges_two_criteria_share() -> None:
    breakdown = [{"criterion": "dead_air", "passed": True, "evidence": [{"start_s": 40, "end_s": 44, "note": "dead air 4 s"}]},
                 {"criterion": "longest_dead_air", "passed": False,
                  "evidence": [{"start_s": 40, "end_s": 44, "note": "dead air 4 s"}]},
                 {"criterion": "greeting", "passed": True, "evidence": [{"start_s": 0.5, "end_s": 1.5, "note": "hello"}]}]
    markers = evidence_markers(breakdown)
    assert [(m["start_s"], m["criterion"], m["passed"]) for m in markers] == [
        (0.5, "greeting", True), (40.0, "dead_air, longest_dead_air", False)]
