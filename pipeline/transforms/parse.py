"""ParseAndValidate: Kafka records of calls.raw → schema-valid CallEvents; anything else → a dead letter with its reason.

The poller's watermark markers (schemas.contracts.WATERMARK_KEY) carry no call: their Kafka CreateTime has already moved the
reader's watermark, so here they only leave their position, to be committed with the finished messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

import schemas
from pipeline.io.records import KafkaRecord
from pipeline.model import CallEvent, DeadLetter, SourcePosition
from schemas.contracts import DEAD_LETTER_TAG, is_watermark_marker

# A calls.raw value is about 1 KB. Anything far larger is refused before it is parsed, and a dead letter keeps at most this
# much of it: the dead letter must itself fit in a Kafka message (1 MB by default) with its stack and metadata.
MAX_VALUE_BYTES = 256 * 1024
MAX_PAYLOAD_CHARS = 64 * 1024


class UndecodableMessage(ValueError):
    """The value is not UTF-8 JSON text holding an object."""


class OversizedMessage(ValueError):
    """The value is far larger than any call's metadata."""


class KeyMismatch(ValueError):
    """The message key is not the call_id of its value (producers key by call_id)."""


def decode_value(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise UndecodableMessage("empty message value (tombstone)")
    if len(value) > MAX_VALUE_BYTES:
        raise OversizedMessage(f"value of {len(value)} bytes exceeds {MAX_VALUE_BYTES} bytes")
    try:
        decoded = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UndecodableMessage(f"value is not UTF-8: {error}") from error
    except json.JSONDecodeError as error:
        raise UndecodableMessage(f"value is not JSON: {error}") from error
    if not isinstance(decoded, dict):
        raise UndecodableMessage(f"value is JSON {type(decoded).__name__}, not an object")
    return decoded


def original_payload(value: bytes | None) -> Any:
    """What a dead letter keeps of the message: the JSON object when there is one, else the text (replacement chars)."""
    try:
        decoded = decode_value(value)
    except (UndecodableMessage, OversizedMessage):
        decoded = None
    if decoded is not None and len(value or b"") <= MAX_PAYLOAD_CHARS:
        return decoded
    return (value or b"")[:MAX_PAYLOAD_CHARS].decode("utf-8", errors="replace")


MARKER_TAG = "watermark_marker"


class _ParseFn(beam.DoFn):
    """KafkaRecord → CallEvent | TaggedOutput(dead_letter, DeadLetter) | TaggedOutput(watermark_marker, SourcePosition)."""

    def __init__(self) -> None:
        self.parsed = Metrics.counter(self.__class__, "calls_parsed")
        self.rejected = Metrics.counter(self.__class__, "calls_rejected")
        self.markers = Metrics.counter(self.__class__, "watermark_markers")

    def process(self, record: KafkaRecord) -> Iterator[Any]:
        source = SourcePosition(record.topic, record.partition, record.offset)
        if is_watermark_marker(record.key):
            self.markers.inc()
            yield pvalue.TaggedOutput(MARKER_TAG, source)
            return
        try:
            value = decode_value(record.value)
            schemas.validate("calls.raw", value)
            key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
            if key is not None and key != value["call_id"]:
                raise KeyMismatch(f"message key {key[:40]!r} is not the call_id {value['call_id']!r}")
        except (UndecodableMessage, OversizedMessage, schemas.SchemaError, KeyMismatch) as error:
            self.rejected.inc()
            payload = original_payload(record.value)
            call_id = payload.get("call_id") if isinstance(payload, dict) and isinstance(payload.get("call_id"), str) else None
            yield pvalue.TaggedOutput(DEAD_LETTER_TAG, DeadLetter.of("parse", error, retries=0, payload=payload,
                                                          call_id=call_id[:256] if call_id else None, source=source))
            return
        self.parsed.inc()
        yield CallEvent(value["call_id"], value, source)


@beam.typehints.with_input_types(KafkaRecord)
class ParseAndValidate(beam.PTransform):
    """calls.raw records → (CallEvent, DeadLetter, SourcePosition of each watermark marker).

    Returns a tuple (good, dead_letters, markers): undecodable, schema-invalid or mis-keyed messages become dead letters for
    calls.raw.dlq; the poller's watermark markers are done once read (their positions are for the offset commit).
    """

    def expand(self, records: Any) -> tuple[Any, Any, Any]:
        results = (
            records
            | "Parse" >> beam.ParDo(_ParseFn()).with_input_types(KafkaRecord).with_output_types(CallEvent)
            .with_outputs(DEAD_LETTER_TAG, MARKER_TAG, main="good")
        )
        return results.good, results[DEAD_LETTER_TAG], results[MARKER_TAG]
