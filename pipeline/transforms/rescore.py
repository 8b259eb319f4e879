"""Re-scoring stored calls: read back from PostgreSQL and S3, paced, then the live job's ScoreCall, WriteResults and
WriteDeadLetters. Nothing is downloaded from the recorder: the audio is the object audio_asset names.

    (call_id, target) ─> LoadStoredAudio ─> PaceCalls ─> ScoreCall ─> WriteResults (scoring_result, call.model_version,
                              │                              │                      scoring.results)
                              └─ no audio ───────────────────┴─ fails ─> WriteDeadLetters (scoring.results.dlq)

Two graphs feed it: the bounded re-score (`build_rescore_pipeline`, `ccas rescore`) from a list of call ids, and the streaming
job's side branch `RescoreOnModelVersion`, which selects the calls itself on each model.version.updated event.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

import schemas
from pipeline.clients import StageClients
from pipeline.io.kafka_python import ReadFromKafkaPython
from pipeline.io.records import KafkaRecord
from pipeline.io.resilience import POSTGRES, SCORING
from pipeline.model import DeadLetter, EnrichedCall, SourcePosition, StoredAudio, iso
from pipeline.options import JobConfig
from pipeline.pacing import process_pace
from pipeline.transforms._bundles import BatchingDoFn, Held
from pipeline.transforms.parse import decode_value
from pipeline.transforms.score import ScoreCall
from pipeline.transforms.write import WriteDeadLetters, WriteResults
from schemas.contracts import DEAD_LETTER_TAG

log = logging.getLogger(__name__)

# Where a re-scored call "comes from": no Kafka message. Its dead letters say source_topic "rescore".
RESCORE_SOURCE = SourcePosition(topic="rescore", partition=0, offset=0)


class AudioMissing(Exception):
    """The call has no READY audio_asset: there is nothing in S3 to score (the re-score never asks the recorder)."""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def _number(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


def dead_letter_payload(row: dict[str, Any], target: str) -> dict[str, Any]:
    """What a re-score dead letter carries: the stored call as PostgreSQL has it (never a customer's number) and the target."""
    return {"call_id": row["call_id"], "started_at": _iso(row["started_at"]), "ended_at": _iso(row["ended_at"]),
            "duration": _number(row["duration_seconds"]), "agent_id": row["agent_id"], "customer_key": row["customer_key"],
            "skill": row["skill"], "service": row["service"], "switch_call_id": row["switch_call_id"],
            "other_parties": None, "model_version": row["model_version"], "rescore_model_version": target}


def stored_audio_of(row: dict[str, Any], target: str) -> StoredAudio | DeadLetter:
    """A row of Database.rescore_audio as the StoredAudio ScoreCall takes, or the dead letter of a call without audio."""
    payload = dead_letter_payload(row, target)
    if not row["s3_key"] or row["audio_status"] != "READY":
        error = AudioMissing(f"call {row['call_id']} has no READY audio_asset (status {row['audio_status'] or 'none'}): "
                             "nothing in S3 to re-score")
        return DeadLetter.of("score", error, retries=0, payload=payload, call_id=row["call_id"], source=RESCORE_SOURCE)
    started = payload["started_at"]
    call = EnrichedCall(
        call_id=row["call_id"], started_at=started, ended_at=payload["ended_at"] or started,
        duration=payload["duration"] or 0.0, agent_id=row["agent_id"], agent_name=None, customer_key=row["customer_key"],
        skill=row["skill"], service=row["service"], switch_call_id=row["switch_call_id"], source=RESCORE_SOURCE,
        raw=payload)
    return StoredAudio(call=call, s3_key=row["s3_key"], s3_version_id=row["s3_version_id"], sha256=row["sha256"],
                       size_bytes=int(row["size_bytes"] or 0), codec=row["codec"], sample_rate=row["sample_rate"],
                       channels=row["channels"], duration_s=_number(row["audio_duration_seconds"]),
                       stored_at=_iso(row["stored_at"]) or started, rescore=True)


class _LoadStoredAudioFn(BatchingDoFn):
    """(call_id, target) → StoredAudio | dead letter, one query per target per bundle. A call no longer to re-score to its
    target (done meanwhile) is dropped."""

    owned_clients = ("db",)

    def __init__(self, clients: StageClients) -> None:
        self.clients = clients
        self.skipped = Metrics.counter(self.__class__, "calls_already_rescored")
        self.missing = Metrics.counter(self.__class__, "audio_missing")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        by_target: dict[str, list[Held]] = defaultdict(list)
        for item in held:
            by_target[item.element[1]].append(item)
        out: list[tuple[str | None, Any, Held]] = []
        for target, items in by_target.items():
            call_ids = [item.element[0] for item in items]
            rows = self.held(POSTGRES, lambda call_ids=call_ids, target=target: self.db.rescore_audio(call_ids, target))
            by_call = {row["call_id"]: row for row in rows}
            for item in items:
                row = by_call.get(item.element[0])
                if row is None:
                    self.skipped.inc()
                    continue
                value = stored_audio_of(row, target)
                if isinstance(value, DeadLetter):
                    self.missing.inc()
                    out.append((DEAD_LETTER_TAG, value, item))
                else:
                    out.append((None, value, item))
        return out


@beam.typehints.with_input_types(tuple[str, str])
class LoadStoredAudio(beam.PTransform):
    """(call_id, target model_version) → (StoredAudio, DeadLetter): the call and its audio_asset from PostgreSQL."""

    def __init__(self, clients: StageClients) -> None:
        super().__init__()
        self.clients = clients

    def expand(self, selected: Any) -> tuple[Any, Any]:
        results = (
            selected
            | "Load" >> beam.ParDo(_LoadStoredAudioFn(self.clients)).with_input_types(tuple[str, str])
            .with_output_types(StoredAudio).with_outputs(DEAD_LETTER_TAG, main="good")
        )
        return results.good, results[DEAD_LETTER_TAG]


class _PaceFn(beam.DoFn):
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.paced = Metrics.counter(self.__class__, "calls_paced")

    def setup(self) -> None:
        self.pace = process_pace("rescore", self.rate)

    def process(self, element: StoredAudio) -> Iterator[StoredAudio]:
        self.pace.wait()
        self.paced.inc()
        yield element


@beam.typehints.with_input_types(StoredAudio)
@beam.typehints.with_output_types(StoredAudio)
class PaceCalls(beam.PTransform):
    """Lets at most `rate` calls a second through to ScoreCall (pipeline/pacing.py), so live calls keep their latency."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def expand(self, stored: Any) -> Any:
        return stored | "Pace" >> beam.ParDo(_PaceFn(self.rate))


def rescore_stored(selected: Any, rate: float, config: JobConfig, clients: StageClients) -> None:
    """(call_id, target) → the call re-scored at most `rate` calls/s (per process), its result or dead letter written."""
    stored, no_audio = selected | "LoadStoredAudio" >> LoadStoredAudio(clients)
    scored, scoring_failures = stored | "PaceCalls" >> PaceCalls(rate) | "ScoreCall" >> ScoreCall(config, clients)
    _ = scored | "WriteResults" >> WriteResults(config, clients)
    _ = (
        (no_audio, scoring_failures)
        | "CollectDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters" >> WriteDeadLetters(config, clients)
    )


def build_rescore_pipeline(p: beam.Pipeline, call_ids: Sequence[str], target: str, rate: float, config: JobConfig,
                           clients: StageClients | None = None) -> None:
    """Re-score `call_ids` (their current result is not `target`) with the scoring service, at most `rate` calls/s."""
    clients = clients or StageClients(config)
    selected = p | "SelectedCalls" >> beam.Create([(call_id, target) for call_id in call_ids])
    rescore_stored(selected, rate, config, clients)


MODEL_VERSION_TOPIC = "model.version.updated"


def rescore_group(consumer_group: str) -> str:
    """The events reader's consumer group: the job's, so it stays under the pipeline principal's ACL prefix."""
    return f"{consumer_group}-rescore"


def announced_version(record: KafkaRecord) -> str:
    """The model_version a model.version.updated message announces; ValueError (UndecodableMessage, SchemaError...)."""
    value = decode_value(record.value)
    schemas.validate(MODEL_VERSION_TOPIC, value)
    return str(value["model_version"])


class _ParseModelVersionEventFn(beam.DoFn):
    """KafkaRecord → the announced model_version; a bad event is logged and counted, never fails the job."""

    def __init__(self) -> None:
        self.parsed = Metrics.counter(self.__class__, "model_version_events")
        self.rejected = Metrics.counter(self.__class__, "model_version_events_rejected")

    def process(self, record: KafkaRecord) -> Iterator[str]:
        try:
            version = announced_version(record)
        except ValueError as error:  # UndecodableMessage, OversizedMessage and SchemaError are ValueErrors
            self.rejected.inc()
            log.warning("%s[%d] offset %d skipped: %s", record.topic, record.partition, record.offset, str(error)[:300])
            return
        self.parsed.inc()
        log.info("%s[%d] offset %d: model_version %s announced", record.topic, record.partition, record.offset, version)
        yield version


class _SelectCallsToRescoreFn(BatchingDoFn):
    """Announced versions → (call_id, target) of each scored call started within the look-back whose model_version is not
    the scoring service's (the target): the bounded re-score's selection, once per bundle of events.

    The target is the service's version, not the announced one: an event only says "look again". So events read in one
    bundle (the retained ones replayed after a restart usually are) cost one selection, and a later one selects only what
    is still not at the target. A selection that fails (the scoring service or PostgreSQL down past the outage budget) is
    logged and counted: the re-score is given up, not the job; a new event, a restart or `ccas rescore` does it.
    """

    owned_clients = ("db", "scoring")

    def __init__(self, clients: StageClients, lookback_s: int) -> None:
        self.clients = clients
        self.lookback_s = lookback_s
        self.selected = Metrics.counter(self.__class__, "calls_selected_for_rescore")
        self.failed = Metrics.counter(self.__class__, "rescore_selections_failed")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()
        self.scoring = self.clients.scoring(pool_size=1)

    def select(self) -> tuple[str, list[str]]:
        target = self.held(SCORING, self.scoring.model_version)
        since = datetime.now(UTC) - timedelta(seconds=self.lookback_s)
        return target, self.held(POSTGRES, lambda: self.db.rescore_candidates(target, since))

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        announced = sorted({item.element for item in held})
        try:
            target, call_ids = self.select()
        except Exception as error:  # noqa: BLE001 - a side branch: its failure must not fail the live job
            self.failed.inc()
            log.error("re-score on %s (%s) given up: %s: %s", MODEL_VERSION_TOPIC, ", ".join(announced),
                      type(error).__name__, str(error)[:300])
            return []
        self.selected.inc(len(call_ids))
        log.info("re-score on %s (%s): the scoring service scores with %s; %d calls started in the last %d s have another "
                 "version", MODEL_VERSION_TOPIC, ", ".join(announced), target, len(call_ids), self.lookback_s)
        origin = held[-1]  # the selection stands for the whole bundle of events: the newest one's time and window
        return [(None, (call_id, target), origin) for call_id in call_ids]


class RescoreOnModelVersion(beam.PTransform):
    """PBegin → the streaming job's re-score on model.version.updated (a side branch of its own: docs/analytics.md).

    The topic is read by ReadFromKafkaPython (no Java; a control topic of a few messages) under the group
    `rescore_group(config.consumer_group)`, whose offsets are never committed: every job start reads the retained events
    again. That is safe and cheap by construction: a replayed event selects only the calls not yet at the service's version
    (one selection per bundle of events), so a re-score cut short by a restart resumes. Reshuffle puts the paced scoring in
    bundles of its own; nothing of this branch reaches CommitOffsets of calls.raw, the scorecards or the analytics export.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None, read_events: Any = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients or StageClients(config)
        # PBegin → KafkaRecords of the topic; a test gives its own records.
        self.read_events = read_events or ReadFromKafkaPython(config.kafka_bootstrap, [MODEL_VERSION_TOPIC],
                                                              rescore_group(config.consumer_group),
                                                              config.kafka_security.python_config())

    def expand(self, pbegin: Any) -> None:
        c = self.config
        selected = (
            pbegin
            | "ReadModelVersionEvents" >> self.read_events
            | "ParseModelVersionEvents" >> beam.ParDo(_ParseModelVersionEventFn()).with_output_types(str)
            | "SelectCallsToRescore" >> beam.ParDo(_SelectCallsToRescoreFn(self.clients, c.rescore_lookback_s))
            .with_output_types(tuple[str, str])
            | "Reshuffle" >> beam.Reshuffle()
        )
        rescore_stored(selected, c.rescore_rate, c, self.clients)
