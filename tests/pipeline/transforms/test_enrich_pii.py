"""The customer's number stops at EnrichCall: what enrich emits, publishes, dead-letters and logs carries its keyed hash
(core.pii.customer_key), the Fernet-encrypted number when the job stores one, and never the number in clear."""

from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from collections.abc import Iterator

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from cryptography.fernet import Fernet

import schemas
from core.pii import customer_key
from core.recorder import AvayaRejected
from pipeline.io import resilience
from pipeline.model import CallEvent, DeadLetter, SourcePosition
from pipeline.transforms.download import DownloadToS3
from pipeline.transforms.enrich import CustomerNumbers, EnrichCall, enrich, enriched_event, without_number
from tests.pipeline.transforms.fakes import FOREVER
from tests.pipeline.transforms.test_stages_unit import ENDED_AT, PII_HMAC_KEY, RUNNER, STARTED_AT, Fakes, job_config, wav
from tests.pipeline.transforms.test_stages_unit import fakes as fakes  # noqa: F401 - the fixture

KEY = PII_HMAC_KEY.encode()
NUMBERS = CustomerNumbers(KEY)
NUMBER = "+84 90 555 0142"
# Every way the number could show up in text: as given, as digits, and as the digit run a log line would most likely keep.
NUMBER_FORMS = (NUMBER, "+84905550142", "84905550142", "905550142", "5550142")


def raw_value(call_id: str, other_parties: str | None = NUMBER, **overrides: object) -> dict:
    return {"call_id": call_id, "started_at": STARTED_AT, "ended_at": ENDED_AT, "duration": 106.0,
            "raw_agent": "1234 (agent1234.247)", "other_parties": other_parties, "skill": "billing", "service": "VDN 5001",
            "switch_call_id": "00012A3F", "event_ts": STARTED_AT, "ingest_uuid": str(uuid.uuid4()), **overrides}


def event_of(call_id: str, offset: int = 0, **overrides: object) -> CallEvent:
    return CallEvent(call_id, raw_value(call_id, **overrides), SourcePosition("calls.raw", 0, offset))


def assert_no_number(text: str) -> None:
    for form in NUMBER_FORMS:
        assert form not in text, f"the customer's number ({form!r}) leaked into: {text[:500]}"


@pytest.fixture(autouse=True)
def fresh_breakers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(resilience, "_BREAKERS", {})  # per process: each test starts with every dependency up
    yield


def test_enrich_replaces_the_number_with_its_key_everywhere() -> None:
    call = enrich(event_of("3001", other_parties=f"{NUMBER}, 0287654321"), NUMBERS)
    assert call.customer_key == customer_key(NUMBER, KEY)
    assert call.customer_key.startswith("hk1:") and len(call.customer_key) == 36
    assert call.customer_number_enc is None, "no encrypted copy unless the job stores one"
    # The published value, the value carried on to download and score (and their dead letters), and the call's repr.
    published = enriched_event(call)
    assert "other_party" not in published and published["customer_key"] == call.customer_key
    assert call.raw["other_parties"] is None and call.raw["customer_key"] == call.customer_key
    for text in (json.dumps(published), json.dumps(call.raw), repr(call), repr(dataclasses.asdict(call))):
        assert_no_number(text)
    schemas.validate("calls.enriched", {**published, "event_ts": STARTED_AT, "ingest_uuid": str(uuid.uuid4())})


def test_the_same_number_written_two_ways_is_one_customer() -> None:
    first = enrich(event_of("3002", other_parties="+84 90 555 0142"), NUMBERS)
    second = enrich(event_of("3003", other_parties="+84-90-555-0142; 0287654321"), NUMBERS)
    other = enrich(event_of("3004", other_parties="+84 90 555 0143"), NUMBERS)
    assert first.customer_key == second.customer_key != other.customer_key
    rekeyed = enrich(event_of("3002"), CustomerNumbers(b"another-key-of-the-same-length!"))
    assert rekeyed.customer_key != first.customer_key, "the key depends on CCAS_PII_HMAC_KEY"


@pytest.mark.parametrize("other_parties", [None, "", " , ", "anonymous"])
def test_no_number_means_no_key(other_parties: str | None) -> None:
    call = enrich(event_of("3005", other_parties=other_parties), CustomerNumbers(KEY, Fernet(Fernet.generate_key())))
    assert (call.customer_key, call.customer_number_enc) == (None, None)


def test_the_encrypted_copy_decrypts_to_the_number_with_the_key() -> None:
    secret = Fernet.generate_key()
    call = enrich(event_of("3006"), CustomerNumbers(KEY, Fernet(secret)))
    assert call.customer_key == customer_key(NUMBER, KEY)
    assert Fernet(secret).decrypt(call.customer_number_enc).decode() == NUMBER
    assert_no_number(repr(call))
    config = dataclasses.replace(job_config(), pii_encryption_key=secret.decode())
    assert CustomerNumbers.of(config).cipher is not None
    assert CustomerNumbers.of(job_config()).cipher is None


def test_a_short_key_stops_the_stage_instead_of_refusing_each_call() -> None:
    with pytest.raises(ValueError, match="CCAS_PII_HMAC_KEY must be at least 16 bytes"):
        CustomerNumbers.of(dataclasses.replace(job_config(), pii_hmac_key="short"))


def test_a_requeued_value_keeps_its_key_without_the_number() -> None:
    # A download or score dead letter carries call.raw; `ccas dlq requeue` republishes it to calls.raw, re-stamped.
    first = enrich(event_of("3007"), NUMBERS)
    requeued = {**first.raw, "event_ts": STARTED_AT, "ingest_uuid": str(uuid.uuid4()), "requeue_count": 1}
    schemas.validate("calls.raw", requeued)
    again = enrich(CallEvent("3007", requeued, SourcePosition("calls.raw", 0, 9)), NUMBERS)
    assert again.customer_key == first.customer_key and again.customer_number_enc is None
    # Only a well-formed key is taken over: a clear number where the key belongs is neither trusted nor kept.
    forged = {**requeued, "customer_key": NUMBER}
    with pytest.raises(schemas.SchemaError) as caught:
        schemas.validate("calls.raw", forged)
    assert_no_number(str(caught.value))
    assert enrich(CallEvent("3007", forged, SourcePosition("calls.raw", 0, 10)), NUMBERS).customer_key is None
    assert without_number(forged, None)["customer_key"] is None


def test_no_log_line_of_the_enrich_stage_holds_the_number(fakes: Fakes, caplog: pytest.LogCaptureFixture) -> None:
    """A good call, a refused one (ends before it starts) and one whose number is too long to be one, through a database
    and Kafka outage (logged by the resilience layer) and a failing download: every log line, at every level, is checked."""
    world = fakes.world
    world.outages.update({"database": 2, "publisher": 2})
    world.fail_replay("3101", FOREVER, lambda: AvayaRejected("HTTP 404 for command=replay", 404))
    world.recordings["3103"] = wav(1.0)
    inputs = [event_of("3101", 1), event_of("3102", 2, ended_at="2000-01-01T00:00:00+00:00"),
              event_of("3103", 3, other_parties=f"{NUMBER} ext {NUMBER}")]
    caplog.set_level(logging.DEBUG)
    with TestPipeline(runner=RUNNER) as p:
        calls, dead, _ = p | beam.Create(inputs) | EnrichCall(fakes.config, fakes.clients)
        _, download_dead = calls | DownloadToS3(fakes.config, fakes.clients)
        assert_that(calls | beam.Map(lambda c: c.call_id), equal_to(["3101", "3103"]), label="enriched")
        assert_that(dead | beam.Map(lambda d: (d.call_id, d.error_type, json.dumps(d.payload))),
                    equal_to([("3102", "ValueError", json.dumps(without_number(inputs[1].value,
                                                                               customer_key(NUMBER, KEY))))]),
                    label="refused without the number")
        assert_that(download_dead | beam.Map(lambda d: (d.call_id, d.payload["other_parties"], d.payload["customer_key"])),
                    equal_to([("3101", None, customer_key(NUMBER, KEY))]), label="download dead letter")
    assert world.outage_hits["database"] == 2, "the outage was met, so the resilience layer logged it"
    assert caplog.records, "the stage logged something to check"
    for record in caplog.records:
        assert_no_number(record.getMessage())
    assert_no_number(caplog.text)  # formatted, with any traceback
    for _, _, value in world.published:
        assert_no_number(json.dumps(value))


def test_the_values_that_hold_the_number_keep_it_out_of_their_repr() -> None:
    # A repr is what ends up in a log line or an error message about an element.
    event = event_of("3201")
    letter = DeadLetter.of("parse", ValueError("refused"), retries=0, payload=event.value, call_id="3201", source=event.source)
    assert_no_number(repr(event))
    assert_no_number(repr(letter))
    assert letter.payload["other_parties"] == NUMBER, "the dead letter itself keeps the message as it came"
