"""Recorder versions differ in the letter case and padding of field names and attribute values: the same records come out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from avaya_source.client import AvayaClient, Credentials
from avaya_source.mock.audio import AudioConfig
from avaya_source.mock.recorder import Faults, MockRecorder
from avaya_source.mock.responses import Rendering
from avaya_source.mock.schedule import ScheduleConfig
from avaya_source.records import RecordError, recording_from_fields
from avaya_source.xmlsafe import parse_search

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

PADDED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<results>'
    b'<result INUM="  1000000000000010 "><field name=" StartedAt ">2026-11-25T10:00:00+07:00</field>'
    b'<Field Name="DURATION"> 106\t</Field><field name="Agents&#9;">1234 (agent1234.247)</field>'
    b'<field name="otherParties">0912345678</field><field name="SERVICES ">CSKH_VI</field>'
    b'<field name="Skills">101</field><field name="&#10;SwitchCallId">0012</field></result>'
    b'<result contactId=" 10811843526838 "><field name="InUms"> 1000000000000010 , 1000000000000011</field>'
    b'<field name="SWITCHCALLID">0012</field></result>'
    b"</results>"
)


def test_names_in_any_case_and_padded_names_and_values_give_the_same_record() -> None:
    page = parse_search(PADDED, HCM)
    assert page.rejected == [] and page.result_count == 2
    (recording,) = page.recordings
    assert recording.call_id == "1000000000000010"
    assert recording.started_at == datetime(2026, 11, 25, 3, 0, tzinfo=UTC) and recording.duration == 106.0
    assert (recording.raw_agent, recording.other_parties, recording.service, recording.skill, recording.switch_call_id) == (
        "1234 (agent1234.247)", "0912345678", "CSKH_VI", "101", "0012")
    (contact,) = page.contacts
    assert contact.contact_id == "10811843526838" and contact.inums == ("1000000000000010", "1000000000000011")


def test_a_field_given_twice_in_different_case_is_a_bad_record_not_a_silent_choice() -> None:
    body = (b'<results><result inum="1000000000000010"><field name="startedat">25/11/26 10:00:00</field>'
            b'<field name="Duration">5</field><field name=" duration ">7</field></result></results>')
    page = parse_search(body, HCM)
    assert page.recordings == [] and [r.reason for r in page.rejected] == ["bad_field"]
    with pytest.raises(RecordError, match="repeated"):
        recording_from_fields("1", {"StartedAt": "25/11/26 10:00:00", "startedat ": "25/11/26 10:00:00"}, HCM)
    assert recording_from_fields("1", {" STARTEDAT": "25/11/26 10:00:00", "Duration": " 9 "}, HCM).duration == 9.0


def _answer(rendering: Rendering, layout: str):  # noqa: ANN202
    schedule = ScheduleConfig(seed=8, start=NOW - timedelta(hours=1), calls_per_minute=10, count=120, multi_inum_ratio=0.3,
                              duration_max_s=300)
    recorder = MockRecorder(schedule, AudioConfig(), rendering, Faults(list_in_progress=True))
    params = AvayaClient("http://unused", Credentials("u", "p"), tz=HCM).search_params(NOW - timedelta(hours=2), NOW, layout)
    body = b"".join(recorder.search(params, NOW - timedelta(minutes=52)).chunks)
    return body, parse_search(body, HCM)


@pytest.mark.parametrize("layout", ["AvayaSegment", "SearchLayout60"])
def test_the_mock_serves_mixed_case_padded_fields_that_parse_exactly_like_lower_case(layout: str) -> None:
    lower_body, lower = _answer(Rendering(tz=HCM), layout)
    mixed_body, mixed = _answer(Rendering(tz=HCM, field_case="mixed"), layout)
    assert mixed_body != lower_body
    assert b'name="startedat"' in lower_body and mixed_body.count(b'name="startedat"') < lower.result_count / 2
    assert b'name=" ' in mixed_body and b'="  1' in mixed_body  # padded names and attribute values on the wire
    assert mixed.rejected == [] and mixed.result_count == lower.result_count > 50
    assert mixed.recordings == lower.recordings and mixed.contacts == lower.contacts
    assert layout == "SearchLayout60" or any(not r.ended for r in mixed.recordings)  # in-progress ones too
