"""EnrichCall: normalise a call's metadata, upsert `agent` and `call` (PENDING_DOWNLOAD), publish calls.enriched."""

from __future__ import annotations

import re
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES
from pipeline.model import CallEvent, DeadLetter, EnrichedCall, iso, parse_iso, utcnow
from pipeline.options import JobConfig
from pipeline.transforms._bundles import BatchingDoFn, Held
from schemas.contracts import DEAD_LETTER_TAG

ALREADY_SCORED = "already_scored"
METADATA_VERSION = 1

# Avaya's agents field: "1234 (agent1234.247)", "1234", or several "1234 (a), 5678 (b)" after a transfer (the first handled it).
_AGENT = re.compile(r"^\s*([0-9A-Za-z_.-]{1,16})\s*(?:\(([^()]{0,128})\))?")


def split_agent(raw_agent: str | None) -> tuple[str | None, str | None]:
    """'1234 (agent1234.247)' → ('1234', 'agent1234.247'); unparseable or empty → (None, None)."""
    match = _AGENT.match(raw_agent or "")
    if not match:
        return None, None
    name = (match.group(2) or "").strip() or None
    return match.group(1), name


def first_party(other_parties: str | None) -> str | None:
    for part in re.split(r"[,;|]", other_parties or ""):
        if part.strip():
            return part.strip()[:32]
    return None


def _clean(text: str | None, limit: int) -> str | None:
    value = " ".join((text or "").split())
    return value[:limit] or None


def enrich(event: CallEvent) -> EnrichedCall:
    """Normalise one calls.raw value: UTC times, agent id/name, other party, skill, service."""
    value = event.value
    agent_id, agent_name = split_agent(value.get("raw_agent"))
    started = parse_iso(value["started_at"])
    ended = parse_iso(value["ended_at"])
    if ended < started:
        # The schema cannot say it; the database would refuse the row and fail the whole bundle.
        raise ValueError(f"ended_at {value['ended_at']} is before started_at {value['started_at']}")
    return EnrichedCall(
        call_id=event.call_id, started_at=iso(started), ended_at=iso(ended), duration=float(value["duration"]),
        agent_id=agent_id, agent_name=agent_name, other_party=first_party(value.get("other_parties")),
        skill=_clean(value.get("skill"), 64), service=_clean(value.get("service"), 128),
        switch_call_id=_clean(value.get("switch_call_id"), 64), source=event.source, raw=value,
    )


def enriched_event(call: EnrichedCall) -> dict[str, Any]:
    return {
        "call_id": call.call_id, "started_at": call.started_at, "ended_at": call.ended_at, "duration": call.duration,
        "agent_id": call.agent_id, "agent_name": call.agent_name, "other_party": call.other_party, "skill": call.skill,
        "service": call.service, "switch_call_id": call.switch_call_id, "metadata_version": METADATA_VERSION,
    }


class _EnrichFn(BatchingDoFn):
    """CallEvent → EnrichedCall (after the bundle's upsert and calls.enriched publish); a call already SCORED is not redone."""

    owned_clients = ("db", "publisher")

    def __init__(self, config: JobConfig, clients: StageClients) -> None:
        self.config = config
        self.clients = clients
        self.enriched = Metrics.counter(self.__class__, "calls_enriched")
        self.skipped = Metrics.counter(self.__class__, "calls_already_scored")

    def setup(self) -> None:
        super().setup()
        prom.ensure_metrics_server(self.config.metrics_host, self.config.metrics_port)
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-enrich")

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        out: list[tuple[str | None, Any, Held]] = []
        ready: list[tuple[EnrichedCall, Held]] = []
        for item in held:
            event: CallEvent = item.element
            try:
                ready.append((enrich(event), item))
            except (KeyError, ValueError, TypeError) as error:
                letter = DeadLetter.of("enrich", error, retries=0, payload=event.value, call_id=event.call_id,
                                       source=event.source)
                out.append((DEAD_LETTER_TAG, letter, item))
        if not ready:
            return out
        calls = [call for call, _ in ready]
        statuses = self.held(POSTGRES, lambda: self.db.upsert_calls(calls))
        now = utcnow()
        messages = []
        for call, item in ready:
            prom.INGEST_LAG_SECONDS.labels("pipeline").set(max(0.0, (now - parse_iso(call.ended_at)).total_seconds()))
            if statuses.get(call.call_id) == "SCORED":
                self.skipped.inc()
                out.append((ALREADY_SCORED, call.source, item))
                continue
            messages.append(("calls.enriched", call.call_id, enriched_event(call)))
            out.append((None, call, item))
        self.held(KAFKA, lambda: self.publisher.publish_all(messages))
        self.enriched.inc(sum(1 for tag, _, _ in out if tag is None))
        prom.CALLS_PROCESSED.labels("enrich").inc(sum(1 for tag, _, _ in out if tag is None))
        return out


@beam.typehints.with_input_types(CallEvent)
class EnrichCall(beam.PTransform):
    """CallEvent → (EnrichedCall, DeadLetter, SourcePosition of calls already SCORED).

    Args:
        config: the job's resolved configuration (database and Kafka).
        clients: where the stage's database and publisher come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients or StageClients(config)

    def expand(self, events: Any) -> tuple[Any, Any, Any]:
        results = (
            events
            | "Enrich" >> beam.ParDo(_EnrichFn(self.config, self.clients)).with_input_types(CallEvent)
            .with_output_types(EnrichedCall).with_outputs(DEAD_LETTER_TAG, ALREADY_SCORED, main="good")
        )
        return results.good, results[DEAD_LETTER_TAG], results[ALREADY_SCORED]
