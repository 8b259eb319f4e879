"""Every topic's JSON Schema accepts a valid value and names the field of each violation."""

from __future__ import annotations

import copy
import uuid

import pytest

import schemas

NOW = "2026-11-25T10:00:00+00:00"
COMMON = {"event_ts": NOW, "ingest_uuid": str(uuid.uuid4())}

VALID = {
    "calls.raw": {
        "call_id": "100234567890123", "started_at": "2026-11-25T09:58:00Z", "ended_at": "2026-11-25T09:59:46Z",
        "duration": 106.0, "raw_agent": "1234 (agent1234.247)", "other_parties": "0901234567", "skill": "billing",
        "service": "VDN 5001 Billing", "switch_call_id": "00012A3F", "contact_id": "8812", "inums": ["100234567890123"],
    },
    "calls.enriched": {
        "call_id": "100234567890123", "started_at": "2026-11-25T09:58:00+00:00", "ended_at": "2026-11-25T09:59:46+00:00",
        "agent_id": "1234", "agent_name": "agent1234.247", "customer_key": "hk1:0123456789abcdef0123456789abcdef",
        "skill": "billing", "service": "VDN 5001", "metadata_version": 2,
    },
    "audio.ready": {
        "call_id": "100234567890123", "s3_key": "raw/2026/11/25/100234567890123.wav", "sha256": "a" * 64, "duration": 106.0,
        "sample_rate": 8000, "codec": "mulaw", "channels": 1, "ingest_delay_ms": 4100,
    },
    "scoring.results": {
        "call_id": "100234567890123", "score": 87.5, "scorable": True, "model_version": "sc1.0.0+fx1.0.0", "latency_ms": 912,
        "breakdown": [{"criterion": "dead_air", "points": 20, "max_points": 20}],
    },
    "agent.scorecards": {
        "dimension": "agent", "dimension_key": "1234", "granularity": "day", "window_start": "2026-11-24T17:00:00+00:00",
        "window_end": "2026-11-25T17:00:00+00:00", "time_zone": "Asia/Ho_Chi_Minh", "pane_index": 2, "pane_timing": "LATE",
        "calls": 12, "scored_calls": 11, "score_mean": 81.2, "score_min": 55.0, "score_max": 97.5, "score_p50": 82.0,
        "score_p90": 95.0, "criteria": {"greeting": {"passed": 10, "applicable": 11, "pass_rate": 0.9091}},
        "dead_air_total_s": 42.5, "hold_total_s": 120.0, "talk_listen_ratio_mean": 1.1, "customer_sentiment_mean": None,
        "model_versions": ["sc1.0.0+fx1.0.0"],
    },
    "model.version.updated": {"model_version": "sc1.2.0+fx1.1.0", "scoring_url": "https://scoring:8000"},
}
VALID["calls.raw.dlq"] = VALID["audio.ready.dlq"] = VALID["scoring.results.dlq"] = {
    "call_id": "100234567890123", "stage": "download", "error_type": "ReplayUnavailable", "stack": "Traceback ...",
    "retries": 5, "failed_at": NOW, "payload": {"call_id": "100234567890123"}, "source_topic": "calls.raw",
}


def _valid(topic: str) -> dict:
    return {**copy.deepcopy(VALID[topic]), **COMMON}


def test_every_declared_topic_has_an_example() -> None:
    assert set(VALID) == set(schemas.topics())


@pytest.mark.parametrize("topic", sorted(VALID))
def test_valid_example_is_accepted(topic: str) -> None:
    schemas.validate(topic, _valid(topic))


@pytest.mark.parametrize(("topic", "field"), [
    (topic, field) for topic in sorted(VALID) for field in schemas.schema_for(topic)["required"]
])
def test_each_missing_required_field_is_named(topic: str, field: str) -> None:
    payload = _valid(topic)
    del payload[field]
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate(topic, payload)
    assert caught.value.field == field
    assert repr(field) in str(caught.value)


def test_every_value_carries_event_ts_and_ingest_uuid() -> None:
    for topic in schemas.topics():
        assert {"event_ts", "ingest_uuid"} <= set(schemas.schema_for(topic)["required"]), topic


def test_dead_letters_carry_the_failure() -> None:
    required = set(schemas.schema_for("calls.raw.dlq")["required"])
    assert {"error_type", "stack", "retries", "stage", "failed_at", "payload"} <= required


@pytest.mark.parametrize(("field", "value"), [
    ("call_id", "../../etc/passwd"),
    ("call_id", "x" * 33),
    ("started_at", "2026-11-25 09:58:00"),
    ("started_at", "yesterday"),
    ("duration", -1),
    ("ingest_uuid", "not-a-uuid"),
])
def test_bad_values_name_their_field(field: str, value: object) -> None:
    payload = _valid("calls.raw")
    payload[field] = value
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate("calls.raw", payload)
    assert caught.value.field == field


def test_nested_field_path_is_named() -> None:
    payload = _valid("scoring.results")
    payload["breakdown"] = [{"points": 3}]
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate("scoring.results", payload)
    assert caught.value.field == "breakdown/0/criterion"


def test_topic_declarations_match_the_design() -> None:
    declared = {name: (spec.partitions, spec.retention_days) for name, spec in schemas.topics().items()}
    assert declared == {
        "calls.raw": (12, 7), "calls.enriched": (12, 7), "audio.ready": (24, 14), "scoring.results": (24, 30),
        "calls.raw.dlq": (3, 30), "audio.ready.dlq": (3, 30), "scoring.results.dlq": (3, 30), "agent.scorecards": (6, 30),
        "model.version.updated": (1, 30),
    }
    assert all(spec.config["compression.type"] == "lz4" for spec in schemas.topics().values())


def test_unknown_topic_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown topic 'calls.rwa'"):
        schemas.validate("calls.rwa", {})


@pytest.mark.parametrize("value", ["hk1:0123456789abcdef0123456789abcdef", None])
def test_calls_enriched_carries_a_customer_key_or_none(value: str | None) -> None:
    schemas.validate("calls.enriched", {**_valid("calls.enriched"), "customer_key": value})


@pytest.mark.parametrize("value", ["0901234567", "+84 90 123 4567", "hk1:0901234567", "hk1:" + "A" * 32, "hk1:" + "0" * 31,
                                   "hk2:" + "0" * 32, "hk1:" + "0" * 33])
def test_calls_enriched_refuses_anything_but_a_key_without_echoing_it(value: str) -> None:
    payload = {**_valid("calls.enriched"), "customer_key": value}
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate("calls.enriched", payload)
    assert caught.value.field == "customer_key"
    assert "0901234567" not in str(caught.value) and "123 4567" not in str(caught.value), "a clear number is never echoed"


def test_a_bad_customer_number_on_calls_raw_is_named_but_not_echoed() -> None:
    # The poller logs a refused value's SchemaError and the pipeline puts it in a dead letter.
    payload = {**_valid("calls.raw"), "other_parties": "0901234567, " * 60}
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate("calls.raw", payload)
    assert caught.value.field == "other_parties" and "maxLength" in str(caught.value)
    assert "0901234567" not in str(caught.value)
