"""ParseAndValidate: valid calls.raw records pass; undecodable, invalid and mis-keyed ones become dead letters with reasons."""

from __future__ import annotations

import json
import uuid

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.io.records import KafkaRecord
from pipeline.transforms.parse import ParseAndValidate

RUNNER = "BundleBasedDirectRunner"


def raw_value(call_id: str, **overrides: object) -> dict:
    value = {
        "call_id": call_id, "started_at": "2026-11-25T09:58:00+00:00", "ended_at": "2026-11-25T09:59:46+00:00",
        "duration": 106.0, "raw_agent": "1234 (agent1234.247)", "other_parties": "0901234567", "skill": "billing",
        "service": "VDN 5001", "switch_call_id": "00012A3F", "event_ts": "2026-11-25T10:00:00+00:00",
        "ingest_uuid": str(uuid.UUID(int=7)),
    }
    value.update(overrides)
    return value


def record(offset: int, key: bytes | None, value: bytes | None) -> KafkaRecord:
    return KafkaRecord("calls.raw", 3, offset, key, value, 1_764_064_786_000)


def test_good_and_bad_records_are_split() -> None:
    good = record(1, b"1001", json.dumps(raw_value("1001")).encode())
    inputs = [
        good,
        record(2, b"x", b"\xff\xfe not utf-8"),
        record(3, b"x", b"{not json"),
        record(4, b"x", b"[1, 2]"),
        record(5, b"1005", json.dumps(raw_value("1005", duration=-3)).encode()),
        record(6, b"1006", json.dumps({k: v for k, v in raw_value("1006").items() if k != "started_at"}).encode()),
        record(7, b"other", json.dumps(raw_value("1007")).encode()),
        record(8, None, None),
    ]
    with TestPipeline(runner=RUNNER) as p:
        events, dead, _ = p | beam.Create(inputs) | ParseAndValidate()
        assert_that(events | "Ids" >> beam.Map(lambda e: (e.call_id, e.source.offset, e.value["skill"])),
                    equal_to([("1001", 1, "billing")]), label="good")
        assert_that(dead | "Why" >> beam.Map(lambda d: (d.source.offset, d.stage, d.error_type, d.call_id, d.retries)),
                    equal_to([
                        (2, "parse", "UndecodableMessage", None, 0),
                        (3, "parse", "UndecodableMessage", None, 0),
                        (4, "parse", "UndecodableMessage", None, 0),
                        (5, "parse", "SchemaError", "1005", 0),
                        (6, "parse", "SchemaError", "1006", 0),
                        (7, "parse", "KeyMismatch", "1007", 0),
                        (8, "parse", "UndecodableMessage", None, 0),
                    ]), label="dead")
        assert_that(dead | "Fields" >> beam.Filter(lambda d: d.error_type == "SchemaError")
                    | beam.Map(lambda d: ("'duration'" in d.error) or ("'started_at'" in d.error)),
                    equal_to([True, True]), label="named fields")
        kept = dead | "Payload" >> beam.Filter(lambda d: d.source.offset == 2) | beam.Map(lambda d: isinstance(d.payload, str))
        assert_that(kept, equal_to([True]), label="raw payload kept")


def test_an_oversized_value_is_dead_with_a_bounded_payload() -> None:
    from pipeline.transforms.parse import MAX_PAYLOAD_CHARS, MAX_VALUE_BYTES
    from pipeline.transforms.write import dead_letter_value

    huge = json.dumps(raw_value("1101", skill="x" * (MAX_VALUE_BYTES + 10))).encode()
    just_big = json.dumps(raw_value("1102", duration=-3, note="y" * (MAX_PAYLOAD_CHARS + 10))).encode()
    with TestPipeline(runner=RUNNER) as p:
        _, dead, _ = p | beam.Create([record(1, b"1101", huge), record(2, b"1102", just_big)]) | ParseAndValidate()
        assert_that(dead | beam.Map(lambda d: (d.source.offset, d.error_type, isinstance(d.payload, str),
                                               len(json.dumps(dead_letter_value(d))) < 200_000)),
                    equal_to([(1, "OversizedMessage", True, True), (2, "SchemaError", True, True)]))


def test_a_watermark_marker_is_neither_a_call_nor_a_dead_letter_but_its_position_is_finished() -> None:
    marker = record(9, b"~watermark", json.dumps({"watermark": "2026-11-25T10:00:00+00:00", "producer": "p"}).encode())
    call = record(10, b"1010", json.dumps(raw_value("1010")).encode())
    with TestPipeline(runner=RUNNER) as p:
        events, dead, markers = p | beam.Create([marker, call]) | ParseAndValidate()
        assert_that(events | "Ids" >> beam.Map(lambda e: e.call_id), equal_to(["1010"]), label="events")
        assert_that(dead, equal_to([]), label="dead")
        assert_that(markers | "Offsets" >> beam.Map(lambda s: (s.partition, s.offset)), equal_to([(3, 9)]), label="markers")
