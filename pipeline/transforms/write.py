"""WriteResults and WriteDeadLetters: the pipeline's final sinks. Each emits the Kafka position of every message it finished,
so CommitOffsets can advance the consumer group only past messages whose every write succeeded."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES
from pipeline.model import DeadLetter, ScoredCall, SourcePosition
from pipeline.options import JobConfig
from pipeline.transforms._bundles import BatchingDoFn, Held
from schemas.contracts import STAGES_WITH_CALL_ROW


class _WriteResultsFn(BatchingDoFn):
    """ScoredCall → SourcePosition, after the bundle's scoring.results publish, then scoring_result upsert and call SCORED."""

    owned_clients = ("db", "publisher")

    def __init__(self, clients: StageClients) -> None:
        self.clients = clients
        self.written = Metrics.counter(self.__class__, "results_written")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-results")

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        scored: list[ScoredCall] = [item.element for item in held]
        end_to_end = {s.call_id: s.end_to_end_ms for s in scored}
        messages = [("scoring.results", result.call_id, {
            "call_id": result.call_id, "score": result.score, "scorable": result.scorable, "reason": result.reason,
            "model_version": result.model_version, "latency_ms": result.latency_ms,
            "end_to_end_ms": end_to_end[result.call_id], "breakdown": result.breakdown,
            "transcript_s3_key": result.transcript["s3_key"] if result.transcript else None,
        }) for result in scored]
        # Kafka first, then the database: once a call is SCORED its result message is acknowledged. The other order
        # loses the message when the worker dies between the two, since a replayed call found SCORED is not redone.
        self.held(KAFKA, lambda: self.publisher.publish_all(messages))
        self.held(POSTGRES, lambda: self.db.record_scores(scored, end_to_end))
        for latency_ms in end_to_end.values():
            if latency_ms is not None:
                prom.END_TO_END_SECONDS.observe(latency_ms / 1000)
        self.written.inc(len(scored))
        prom.CALLS_PROCESSED.labels("score").inc(len(scored))
        return [(None, item.element.source, item) for item in held]


@beam.typehints.with_input_types(ScoredCall)
@beam.typehints.with_output_types(SourcePosition)
class WriteResults(beam.PTransform):
    """ScoredCall → SourcePosition of each message fully written (PostgreSQL + scoring.results).

    Args:
        config: the database and Kafka settings of the real clients (unused when `clients` is given).
        clients: where the stage's database and publisher come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.clients = clients or StageClients(config)

    def expand(self, scored: Any) -> Any:
        write = beam.ParDo(_WriteResultsFn(self.clients)).with_input_types(ScoredCall).with_output_types(SourcePosition)
        return scored | "Write" >> write


def dead_letter_value(letter: DeadLetter) -> dict[str, Any]:
    return {
        "call_id": letter.call_id, "stage": letter.stage, "source_topic": letter.source.topic if letter.source else "calls.raw",
        "source_partition": letter.source.partition if letter.source else None,
        "source_offset": letter.source.offset if letter.source else None,
        "error_type": letter.error_type, "error": letter.error, "stack": letter.stack, "retries": letter.retries,
        "failed_at": letter.failed_at, "payload": letter.payload,
    }


class _WriteDeadLettersFn(BatchingDoFn):
    """DeadLetter → SourcePosition, after it is on its *.dlq topic and the call (if stored) is marked ERROR."""

    owned_clients = ("db", "publisher")

    def __init__(self, clients: StageClients) -> None:
        self.clients = clients
        self.written = Metrics.counter(self.__class__, "dead_letters")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-dlq")

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        letters: list[DeadLetter] = [item.element for item in held]
        messages = [(letter.topic, letter.call_id or "unknown", dead_letter_value(letter)) for letter in letters]
        self.held(KAFKA, lambda: self.publisher.publish_all(messages))
        for letter in letters:
            prom.DEAD_LETTERS.labels(letter.stage, letter.error_type).inc()
        # Calls that reached the database (download/score failures) show ERROR until a requeue moves them on.
        reasons = {letter.call_id: f"{letter.stage}: {letter.error_type}: {letter.error}"[:1000] for letter in letters
                   if letter.call_id and letter.stage in STAGES_WITH_CALL_ROW}
        self.held(POSTGRES, lambda: self.db.mark_errors(reasons))
        self.written.inc(len(letters))
        return [(None, item.element.source, item) for item in held if item.element.source is not None]


@beam.typehints.with_input_types(DeadLetter)
@beam.typehints.with_output_types(SourcePosition)
class WriteDeadLetters(beam.PTransform):
    """DeadLetter → SourcePosition: routes each to its stage's *.dlq topic with error_type, stack, retries and the payload.

    Args:
        config: the database and Kafka settings of the real clients (unused when `clients` is given).
        clients: where the stage's database and publisher come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.clients = clients or StageClients(config)

    def expand(self, letters: Any) -> Any:
        publish = beam.ParDo(_WriteDeadLettersFn(self.clients)).with_input_types(DeadLetter).with_output_types(SourcePosition)
        return letters | "Publish" >> publish
