"""EnrichCall: normalise a call's metadata, upsert `agent` and `call` (PENDING_DOWNLOAD), publish calls.enriched.

The customer's number stops here: enrich replaces it with its keyed hash (core.pii.customer_key), and with its Fernet
encryption too when the job stores one. Nothing this stage emits or writes holds the number in clear; only calls.raw does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from cryptography.fernet import Fernet

from core.pii import KEY_PREFIX, PII_FIELDS, customer_key
from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES
from pipeline.model import CallEvent, DeadLetter, EnrichedCall, iso, parse_iso, utcnow
from pipeline.options import JobConfig
from pipeline.settings import MIN_PII_HMAC_KEY_BYTES
from pipeline.transforms._bundles import BatchingDoFn, Held
from schemas.contracts import DEAD_LETTER_TAG

ALREADY_SCORED = "already_scored"
# 2: calls.enriched carries customer_key (the number's keyed hash) where version 1 carried other_party (the number).
METADATA_VERSION = 2
# A key the pipeline put into a value it carries on (see without_number); a requeued dead letter brings it back.
_CARRIED_KEY = re.compile(rf"^{re.escape(KEY_PREFIX)}[0-9a-f]{{32}}$")

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


@dataclass(frozen=True)
class CustomerNumbers:
    """How enrich protects a customer's number: always hashed under `hmac_key`, also encrypted when there is a `cipher`."""

    hmac_key: bytes
    cipher: Fernet | None = None

    @classmethod
    def of(cls, config: JobConfig) -> CustomerNumbers:
        key = config.pii_hmac_key.encode()
        if len(key) < MIN_PII_HMAC_KEY_BYTES:  # checked here too: a short key must stop the job, not dead-letter each call
            raise ValueError(f"CCAS_PII_HMAC_KEY must be at least {MIN_PII_HMAC_KEY_BYTES} bytes")
        cipher = Fernet(config.pii_encryption_key.encode()) if config.pii_encryption_key else None
        return cls(key, cipher)

    def key_of(self, value: dict[str, Any]) -> str | None:
        """The customer_key of a calls.raw value: its number's, else the one a requeued value carries, else None."""
        return customer_key(first_party(value.get("other_parties")), self.hmac_key) or _carried_key(value)

    def protect(self, value: dict[str, Any]) -> tuple[str | None, bytes | None]:
        """(customer_key, the number encrypted or None) of a calls.raw value."""
        number = first_party(value.get("other_parties"))
        hashed = customer_key(number, self.hmac_key)
        if hashed is None or number is None:
            return _carried_key(value), None
        return hashed, (self.cipher.encrypt(number.encode()) if self.cipher else None)


def _carried_key(value: dict[str, Any]) -> str | None:
    carried = value.get("customer_key")
    return carried if isinstance(carried, str) and _CARRIED_KEY.fullmatch(carried) else None


def without_number(value: dict[str, Any], key: str | None) -> dict[str, Any]:
    """The calls.raw value as it travels past enrich (in download and score dead letters, which a requeue republishes to
    calls.raw): every number field emptied and the customer_key added, so a requeued call keeps its key without the number."""
    kept = {name: (None if name.lower() in PII_FIELDS else item) for name, item in value.items()}
    return {**kept, "customer_key": key}


def enrich(event: CallEvent, numbers: CustomerNumbers) -> EnrichedCall:
    """Normalise one calls.raw value: UTC times, agent id/name, customer key, skill, service."""
    value = event.value
    agent_id, agent_name = split_agent(value.get("raw_agent"))
    started = parse_iso(value["started_at"])
    ended = parse_iso(value["ended_at"])
    if ended < started:
        # The schema cannot say it; the database would refuse the row and fail the whole bundle.
        raise ValueError(f"ended_at {value['ended_at']} is before started_at {value['started_at']}")
    key, encrypted = numbers.protect(value)
    return EnrichedCall(
        call_id=event.call_id, started_at=iso(started), ended_at=iso(ended), duration=float(value["duration"]),
        agent_id=agent_id, agent_name=agent_name, customer_key=key,
        skill=_clean(value.get("skill"), 64), service=_clean(value.get("service"), 128),
        switch_call_id=_clean(value.get("switch_call_id"), 64), source=event.source, raw=without_number(value, key),
        customer_number_enc=encrypted,
    )


def enriched_event(call: EnrichedCall) -> dict[str, Any]:
    return {
        "call_id": call.call_id, "started_at": call.started_at, "ended_at": call.ended_at, "duration": call.duration,
        "agent_id": call.agent_id, "agent_name": call.agent_name, "customer_key": call.customer_key, "skill": call.skill,
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
        self.numbers = CustomerNumbers.of(self.config)
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-enrich")

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        out: list[tuple[str | None, Any, Held]] = []
        ready: list[tuple[EnrichedCall, Held]] = []
        for item in held:
            event: CallEvent = item.element
            try:
                ready.append((enrich(event, self.numbers), item))
            except (KeyError, ValueError, TypeError) as error:
                # The refused value is kept for a requeue, but as it travels past enrich: without the number.
                payload = without_number(event.value, self.numbers.key_of(event.value))
                letter = DeadLetter.of("enrich", error, retries=0, payload=payload, call_id=event.call_id,
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
