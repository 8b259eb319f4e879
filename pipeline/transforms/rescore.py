"""The bounded re-score graph: stored calls read back from PostgreSQL and S3, paced, then the live job's ScoreCall,
WriteResults and WriteDeadLetters. Nothing is downloaded from the recorder: the audio is the object audio_asset names.

    call_ids ─> LoadStoredAudio ─> PaceCalls ─> ScoreCall ─> WriteResults (scoring_result, call.model_version, scoring.results)
                     └─ no audio ──────────────────┴─ fails ─> WriteDeadLetters (scoring.results.dlq)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.clients import StageClients
from pipeline.io.resilience import POSTGRES
from pipeline.model import DeadLetter, EnrichedCall, SourcePosition, StoredAudio, iso
from pipeline.options import JobConfig
from pipeline.pacing import process_pace
from pipeline.transforms._bundles import BatchingDoFn, Held
from pipeline.transforms.score import ScoreCall
from pipeline.transforms.write import WriteDeadLetters, WriteResults
from schemas.contracts import DEAD_LETTER_TAG

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
    """call_id → StoredAudio | dead letter, one query per bundle. A call no longer to re-score (done meanwhile) is dropped."""

    owned_clients = ("db",)

    def __init__(self, target: str, clients: StageClients) -> None:
        self.target = target
        self.clients = clients
        self.skipped = Metrics.counter(self.__class__, "calls_already_rescored")
        self.missing = Metrics.counter(self.__class__, "audio_missing")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        rows = self.held(POSTGRES, lambda: self.db.rescore_audio([item.element for item in held], self.target))
        by_call = {row["call_id"]: row for row in rows}
        out: list[tuple[str | None, Any, Held]] = []
        for item in held:
            row = by_call.get(item.element)
            if row is None:
                self.skipped.inc()
                continue
            value = stored_audio_of(row, self.target)
            if isinstance(value, DeadLetter):
                self.missing.inc()
                out.append((DEAD_LETTER_TAG, value, item))
            else:
                out.append((None, value, item))
        return out


@beam.typehints.with_input_types(str)
class LoadStoredAudio(beam.PTransform):
    """call_id → (StoredAudio, DeadLetter): the call and its audio_asset from PostgreSQL, for a re-score to `target`."""

    def __init__(self, target: str, clients: StageClients) -> None:
        super().__init__()
        self.target = target
        self.clients = clients

    def expand(self, call_ids: Any) -> tuple[Any, Any]:
        results = (
            call_ids
            | "Load" >> beam.ParDo(_LoadStoredAudioFn(self.target, self.clients)).with_input_types(str)
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


def build_rescore_pipeline(p: beam.Pipeline, call_ids: Sequence[str], target: str, rate: float, config: JobConfig,
                           clients: StageClients | None = None) -> None:
    """Re-score `call_ids` (their current result is not `target`) with the scoring service, at most `rate` calls/s."""
    clients = clients or StageClients(config)
    stored, no_audio = p | "SelectedCalls" >> beam.Create(list(call_ids)) | "LoadStoredAudio" >> LoadStoredAudio(target, clients)
    scored, scoring_failures = stored | "PaceCalls" >> PaceCalls(rate) | "ScoreCall" >> ScoreCall(config, clients)
    _ = scored | "WriteResults" >> WriteResults(config, clients)
    _ = (
        (no_audio, scoring_failures)
        | "CollectDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters" >> WriteDeadLetters(config, clients)
    )
