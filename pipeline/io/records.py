"""The one element type both Kafka readers yield, and the conversion from the Java reader's metadata rows."""

import logging
from typing import Any, NamedTuple

log = logging.getLogger(__name__)


# No `from __future__ import annotations` here: the field annotations stay real types, so Beam's type inference and a later
# switch to a schema'd RowCoder see `int`/`str` rather than strings.
class KafkaRecord(NamedTuple):
    """One Kafka message with the metadata the pipeline needs to commit offsets and to stamp event time."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int  # the producer's CreateTime; the element's Beam timestamp = this (event time = call end)


def _as_bytes(value: Any) -> bytes | None:
    # Java byte[] arrives as bytes; accept other buffer types so a coder change upstream cannot leak them downstream.
    if value is None:
        return None
    return bytes(value)


def from_beam_row(row: Any) -> KafkaRecord:
    """`ReadFromKafka(with_metadata=True)` Row → KafkaRecord.

    The Row follows Java KafkaIO's `ByteArrayKafkaRecord` schema: topic (string), partition (int32), offset (int64),
    timestamp (int64, epoch ms; CreateTime under `create_time_policy`), key and value (nullable bytes), headers,
    timestampTypeId and timestampTypeName. Headers and the timestamp type are not carried: nothing downstream uses them.
    """
    return KafkaRecord(
        topic=str(row.topic),
        partition=int(row.partition),
        offset=int(row.offset),
        key=_as_bytes(row.key),
        value=_as_bytes(row.value),
        timestamp_ms=int(row.timestamp),
    )
