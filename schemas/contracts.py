"""Contracts every component shares, defined once: what a call id looks like, the pipeline's stages and where each one's dead
letters go, and the tag a stage's dead-letter output carries."""

from __future__ import annotations

import re

# Before an inum is used in a Kafka key, an S3 key, a file path or a query it must match this.
CALL_ID_PATTERN = re.compile(r"^[0-9A-Za-z_-]{1,32}$")

# The output tag of every pipeline stage's dead-letter branch.
DEAD_LETTER_TAG = "dead_letter"

# Stage -> the dead-letter topic of the topic that stage consumes. Only stages that can give up on a message are listed.
STAGE_DLQ: dict[str, str] = {
    "parse": "calls.raw.dlq",
    "enrich": "calls.raw.dlq",
    "download": "audio.ready.dlq",
    "score": "scoring.results.dlq",
}
STAGES: tuple[str, ...] = tuple(STAGE_DLQ)
DLQ_TOPICS: tuple[str, ...] = tuple(dict.fromkeys(STAGE_DLQ.values()))
# Stages after which the call has a row in PostgreSQL that a dead letter marks ERROR.
STAGES_WITH_CALL_ROW: tuple[str, ...] = ("download", "score")
# The key of the poller's watermark markers on calls.raw: after each window it writes one into every partition, stamped (Kafka
# CreateTime) with the window's end, before which every ended call has been published. The readers' create-time watermark then
# advances on partitions that had no call; the pipeline commits past a marker and goes on (no call, no dead letter). `~` is not
# a call-id character, so a marker can never be taken for a call.
WATERMARK_KEY = "~watermark"
# The topic a requeued dead letter goes back to: the pipeline's input, which re-runs every stage idempotently.
REQUEUE_TOPIC = "calls.raw"


def is_valid_call_id(value: object) -> bool:
    return isinstance(value, str) and CALL_ID_PATTERN.fullmatch(value) is not None


def dlq_stage(topic: str) -> str:
    """The first stage whose dead letters land on `topic` (a label for metrics)."""
    for stage, dlq in STAGE_DLQ.items():
        if dlq == topic:
            return stage
    raise KeyError(f"{topic!r} is not a dead-letter topic; declared: {', '.join(DLQ_TOPICS)}")


def is_watermark_marker(key: bytes | str | None) -> bool:
    """True for the key of a poller's watermark marker on calls.raw."""
    if isinstance(key, bytes):
        key = key.decode("utf-8", errors="replace")
    return key == WATERMARK_KEY
