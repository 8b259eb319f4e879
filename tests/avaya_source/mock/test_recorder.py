from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from avaya_source.client import AvayaClient, Credentials
from avaya_source.mock.audio import AudioConfig
from avaya_source.mock.recorder import Faults, MockRecorder, SearchParamsError, parse_window
from avaya_source.mock.responses import Rendering
from avaya_source.mock.schedule import ScheduleConfig
from avaya_source.xmlsafe import parse_search

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def recorder(**faults: object) -> MockRecorder:
    schedule = ScheduleConfig(seed=4, start=NOW - timedelta(hours=1), calls_per_minute=10, count=200, multi_inum_ratio=0.3,
                              duration_max_s=300)
    return MockRecorder(schedule, AudioConfig(), Rendering(tz=HCM), Faults(**faults))


def params(lo: datetime, hi: datetime, layout: str = "AvayaSegment") -> dict[str, str]:
    c = AvayaClient("http://unused", Credentials("u", "p"), tz=HCM)
    return c.search_params(lo, hi, layout)


def answer(rec: MockRecorder, lo: datetime, hi: datetime, now: datetime = NOW, layout: str = "AvayaSegment"):  # noqa: ANN201
    body = b"".join(rec.search(params(lo, hi, layout), now).chunks)
    return parse_search(body, HCM)


def test_window_params_are_recorder_local_and_inclusive_to_the_second() -> None:
    lo, hi = parse_window(params(NOW, NOW + timedelta(seconds=59)), HCM)
    assert lo == NOW and hi == NOW + timedelta(seconds=59, microseconds=999999)
    with pytest.raises(SearchParamsError):
        parse_window({"operator_startedat": "9", "param1_startedat": "32/13/26"}, HCM)


def test_only_ended_and_available_recordings_are_listed_unless_in_progress_is_asked_for() -> None:
    rec = recorder()
    middle = NOW - timedelta(minutes=50)  # arrivals run from NOW-60 to about NOW-40 min
    visible = answer(rec, NOW - timedelta(hours=2), NOW, now=middle)
    planned = rec.schedule.started_between(NOW - timedelta(hours=2), middle)
    assert 0 < len(visible.recordings) < len(planned)
    assert all(r.ended for r in visible.recordings)
    rec.configure({"list_in_progress": True})
    listed = answer(rec, NOW - timedelta(hours=2), NOW, now=middle)
    assert len(listed.recordings) == len(planned)
    assert any(not r.ended for r in listed.recordings)


def test_cap_and_duplicates() -> None:
    rec = recorder(max_results=25, duplicate_ratio=0.5)
    page = answer(rec, NOW - timedelta(hours=2), NOW)
    ids = [r.call_id for r in page.recordings]
    assert len(set(ids)) == 25 and len(ids) > 25
    starts = [r.started_at for r in page.recordings]
    assert starts == sorted(starts)  # the cap keeps the earliest, as ACR answers are ordered by start


def test_contacts_layout_and_corrupt_records_are_deterministic() -> None:
    rec = recorder()
    contacts = answer(rec, NOW - timedelta(hours=2), NOW, layout="SearchLayout60").contacts
    assert len(contacts) == 200 and any(len(c.inums) > 1 for c in contacts)
    bad = MockRecorder(rec.schedule.config, AudioConfig(), Rendering(tz=HCM, corrupt_ratio=0.2, corrupt_seed=1), Faults())
    first = answer(bad, NOW - timedelta(hours=2), NOW)
    second = answer(bad, NOW - timedelta(hours=2), NOW)
    assert first.rejected and [r.reason for r in first.rejected] == [r.reason for r in second.rejected]
    assert len(first.recordings) + len(first.rejected) == first.result_count


def test_fault_settings_are_validated() -> None:
    rec = recorder()
    with pytest.raises(ValueError, match="unknown"):
        rec.configure({"no_such_fault": 1})
    with pytest.raises(ValueError, match="hostile"):
        rec.configure({"hostile": "nuke"})
    assert rec.configure({"hostile": "xxe", "hostile_count": 1})["hostile"] == "xxe"
    body = b"".join(rec.search(params(NOW - timedelta(hours=1), NOW), NOW).chunks)
    assert b"<!DOCTYPE" in body
    body = b"".join(rec.search(params(NOW - timedelta(hours=1), NOW), NOW).chunks)
    assert b"<!DOCTYPE" not in body  # hostile_count ran out


def test_planned_replay_faults_fail_exactly_as_configured() -> None:
    from audio.wav import CorruptWav, read_wav_info

    rec = recorder()
    shortest = sorted(rec.calls(NOW), key=lambda call: call["duration"])[:3]
    flaky, dead, corrupt = (call["inum"] for call in shortest)
    rec.configure({"replay_failures": {flaky: 2, dead: -1}, "corrupt_inums": [corrupt], "long_inums": {flaky: 60.0}})
    assert [rec.replay(flaky).status for _ in range(3)] == [500, 500, 200]
    assert {rec.replay(dead).status for _ in range(6)} == {500}
    long_answer = rec.replay(flaky)
    info = read_wav_info(io.BytesIO(b"".join(long_answer.chunks)))
    assert info.duration_s == pytest.approx(60.0, abs=0.01) and long_answer.length == info.data_offset + info.n_frames
    with pytest.raises(CorruptWav, match="block align"):
        read_wav_info(io.BytesIO(b"".join(rec.replay(corrupt).chunks)))
