from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import schemas
from avaya_source.records import RecordError, iso_utc, parse_duration, parse_startedat, recording_from_fields

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:00+07:00", datetime(2026, 11, 25, 3, 0, tzinfo=UTC)),
        ("2026-11-25T03:00:00Z", datetime(2026, 11, 25, 3, 0, tzinfo=UTC)),
        ("2026-11-25T10:00:00.250", datetime(2026, 11, 25, 3, 0, 0, 250000, tzinfo=UTC)),  # naive = recorder zone (UTC+7)
        ("2026-11-25 10:00:00", datetime(2026, 11, 25, 3, 0, tzinfo=UTC)),
        ("25/11/26 10:00:00", datetime(2026, 11, 25, 3, 0, tzinfo=UTC)),
        ("01/01/26 05:30:00", datetime(2025, 12, 31, 22, 30, tzinfo=UTC)),  # crosses the UTC date line
    ],
)
def test_startedat_formats_become_utc(text: str, expected: datetime) -> None:
    assert parse_startedat(text, HCM) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "31/02/26 10:00:00", "25/11/26 25:61:00", "2026-13-01T00:00:00"])
def test_bad_startedat_is_rejected_with_reason(text: str) -> None:
    with pytest.raises(RecordError) as info:
        parse_startedat(text, HCM)
    assert info.value.reason == "bad_startedat"


def test_duration_absent_means_in_progress_and_bad_values_are_rejected() -> None:
    assert parse_duration("") is None
    assert parse_duration(None) is None
    assert parse_duration("106") == 106.0
    assert parse_duration("0.7") == 0.7
    for bad in ("abc", "-3", "nan", "inf", "999999999"):
        with pytest.raises(RecordError) as info:
            parse_duration(bad)
        assert info.value.reason == "bad_duration"


@pytest.mark.parametrize("inum", ["", "12 34", "1234/../../etc", "x" * 33, "inum;DROP", None])
def test_call_id_must_match_the_design_pattern(inum: str | None) -> None:
    with pytest.raises(RecordError) as info:
        recording_from_fields(inum, {"startedat": "2026-11-25T10:00:00Z", "duration": "5"}, HCM)
    assert info.value.reason == "bad_call_id"


def test_missing_startedat_is_named() -> None:
    with pytest.raises(RecordError, match="startedat"):
        recording_from_fields("123", {"duration": "5"}, HCM)


def test_event_value_is_utc_schema_valid_and_carries_end_time() -> None:
    fields = {
        "startedat": "25/11/26 10:00:00",
        "duration": "106",
        "agents": "1234 (agent1234.247)",
        "otherparties": "0912345678",
        "services": "CSKH_VI",
        "skills": "101",
        "switchcallid": "00123456789012345678",
    }
    recording = recording_from_fields("1000000000000010", fields, HCM)
    value = recording.to_event(datetime(2026, 11, 25, 3, 5, tzinfo=UTC))
    schemas.validate("calls.raw", value)
    assert value["started_at"] == "2026-11-25T03:00:00.000Z"
    assert value["ended_at"] == "2026-11-25T03:01:46.000Z"
    assert value["raw_agent"] == "1234 (agent1234.247)"
    assert value["inums"] == ["1000000000000010"]
    assert value["event_ts"] == iso_utc(datetime(2026, 11, 25, 3, 5, tzinfo=UTC))
    assert len(value["ingest_uuid"]) == 36
    in_progress = recording_from_fields("1000000000000011", {**fields, "duration": ""}, HCM)
    assert not in_progress.ended
    with pytest.raises(ValueError, match="in progress"):
        in_progress.to_event()
