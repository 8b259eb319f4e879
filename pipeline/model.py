"""The values that flow between stages. Each carries the Kafka position it came from, so the last stage can commit offsets
only once every sink write for that message succeeded."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.contracts import STAGE_DLQ


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, order=True)
class SourcePosition:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class CallEvent:
    """A schema-valid calls.raw value."""

    call_id: str
    value: dict[str, Any] = field(repr=False)  # it holds the customer's number: a repr may end up in a log line
    source: SourcePosition

    @property
    def requeue_count(self) -> int:
        return int(self.value.get("requeue_count") or 0)


@dataclass(frozen=True)
class EnrichedCall:
    """A normalised call. It never holds the customer's number in clear: `customer_key` is its keyed hash (core.pii),
    `customer_number_enc` its Fernet encryption when the job stores one, and `raw` the calls.raw value without it."""

    call_id: str
    started_at: str
    ended_at: str
    duration: float
    agent_id: str | None
    agent_name: str | None
    customer_key: str | None
    skill: str | None
    service: str | None
    switch_call_id: str | None
    source: SourcePosition
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    customer_number_enc: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class StoredAudio:
    call: EnrichedCall
    s3_key: str
    s3_version_id: str | None
    sha256: str
    size_bytes: int
    codec: str | None
    sample_rate: int | None
    channels: int | None
    duration_s: float | None
    stored_at: str
    attempts: int = 1
    rescore: bool = False  # read back from S3 by the re-score job, not just downloaded by the live one

    @property
    def call_id(self) -> str:
        return self.call.call_id

    @property
    def source(self) -> SourcePosition:
        return self.call.source


@dataclass(frozen=True)
class ScoredCall:
    audio: StoredAudio
    score: float | None
    scorable: bool
    reason: str | None
    model_version: str
    latency_ms: int
    breakdown: list[dict[str, Any]]
    response: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    scored_at: str = ""
    transcript: dict[str, Any] | None = None  # s3_key, asr_model, language, word_count, confidence: the words are in S3

    @property
    def call_id(self) -> str:
        return self.audio.call_id

    @property
    def source(self) -> SourcePosition:
        return self.audio.source

    @property
    def end_to_end_ms(self) -> int | None:
        """Call end to scored (ms), clamped at 0: ended_at comes from the recorder's clock, scored_at from the worker's.
        None for a re-score: its delay measures the re-score's schedule, not the pipeline (and may overflow the column)."""
        if self.audio.rescore:
            return None
        return max(0, int((parse_iso(self.scored_at) - parse_iso(self.audio.call.ended_at)).total_seconds() * 1000))


@dataclass(frozen=True)
class DeadLetter:
    """A message a stage gave up on, with why; WriteDeadLetters routes it to the stage's *.dlq topic."""

    stage: str
    error_type: str
    error: str
    stack: str
    retries: int
    payload: Any = field(repr=False)  # a parse dead letter keeps the message as it came, customer's number included
    call_id: str | None
    source: SourcePosition | None
    failed_at: str

    @classmethod
    def of(cls, stage: str, error: BaseException, *, retries: int, payload: Any, call_id: str | None,
           source: SourcePosition | None, error_type: str | None = None) -> DeadLetter:
        if stage not in STAGE_DLQ:  # a stage without a dead-letter topic must fail where it is written, not in the sink
            raise ValueError(f"stage {stage!r} has no dead-letter topic; stages that have one: {', '.join(STAGE_DLQ)}")
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return cls(stage=stage, error_type=error_type or type(error).__name__, error=str(error)[:2000], stack=stack[-8000:],
                   retries=retries, payload=payload, call_id=call_id, source=source, failed_at=iso(utcnow()))

    @property
    def topic(self) -> str:
        return STAGE_DLQ[self.stage]
