"""GET /v1/dlq[?hide_resolved=true], GET /v1/dlq/{call_id}, POST /v1/dlq/requeue."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator, model_validator

import schemas
from ccas.ops import dlq, dlq_state
from ccas.ops.api.deps import Caller, Settings, audit_best_effort, audit_or_fail, authorize
from ccas.ops.masking import mask_record, mask_summary
from ccas.ops.requeue import Requeuer
from core.config import secret
from schemas.contracts import STAGES

router = APIRouter(prefix="/v1/dlq", tags=["dead letters"])

CALL_ID = schemas.CALL_ID_PATTERN.pattern
STATUS_UNKNOWN_HEADER = "X-CCAS-Status-Unknown"
log = logging.getLogger(__name__)


def _topic_ok(topic: str | None) -> str | None:
    if topic is not None and topic not in dlq.DLQ_TOPICS:
        raise ValueError(f"topic must be one of {', '.join(dlq.DLQ_TOPICS)}")
    return topic


def _stage_ok(stage: str | None) -> str | None:
    if stage is not None and stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}")
    return stage


class DeadLetterSummary(BaseModel):
    call_id: str | None
    stage: str
    error_type: str
    retries: int | None
    failed_at: str
    error: str
    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    # From PostgreSQL; every one null when it could not answer (the STATUS_UNKNOWN_HEADER says why).
    requeued: bool | None = Field(description="this dead letter was requeued (a dlq_requeue row)")
    requeue_count: int | None = Field(description="the call's requeue number this requeue carried")
    requeued_at: str | None
    requeue_ingest_uuid: str | None = Field(description="ingest_uuid of the message republished to calls.raw")
    requeued_by: str | None
    call_status: str | None = Field(description="call.status now; null also when the call has no row (resolved false then)")
    has_scoring_result: bool | None
    resolved: bool | None = Field(description="call SCORED with a scoring_result, however it got there")


class RequeueRequest(BaseModel):
    """What to requeue: all=true, or call_ids and/or error_type (both given: records matching both); topic, stage and
    since narrow it further."""

    call_ids: list[Annotated[str, Field(pattern=CALL_ID)]] | None = Field(default=None, min_length=1, max_length=1000)
    error_type: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")
    all: bool = False
    topic: str | None = None
    stage: str | None = None
    since: datetime | None = None
    dry_run: bool = False

    @field_validator("topic")
    @classmethod
    def declared_topic(cls, value: str | None) -> str | None:
        return _topic_ok(value)

    @field_validator("stage")
    @classmethod
    def known_stage(cls, value: str | None) -> str | None:
        return _stage_ok(value)

    @model_validator(mode="after")
    def one_selector(self) -> RequeueRequest:
        selected = self.call_ids is not None or self.error_type is not None
        if selected == self.all:
            raise ValueError("give call_ids and/or error_type, or all=true (not both, not neither)")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since needs a time zone")
        return self


class RequeueOutcome(BaseModel):
    call_id: str | None
    dlq: str
    stage: str
    error_type: str
    action: str
    detail: str = ""
    requeue_count: int | None = None
    ingest_uuid: str | None = None


class RequeueResponse(BaseModel):
    dry_run: bool
    requeued: int
    outcomes: list[RequeueOutcome]


def _filter(**values: Any) -> dlq.Filter:
    try:
        return dlq.Filter(**values)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error


def _filter_text(**values: Any) -> str:
    """A listing's filter as audit_log.object_id: `topic=…&stage=…`, `all` when unfiltered."""
    given = [f"{name}={value.isoformat() if isinstance(value, datetime) else value}" for name, value in values.items()
             if value not in (None, False)]
    return "&".join(given) or "all"


def _selection_text(body: RequeueRequest) -> str:
    """What a requeue asked for, as audit_log.object_id (cut at 256 characters; the call_ids are in the row's detail too)."""
    return _filter_text(all=body.all, call_ids=",".join(body.call_ids) if body.call_ids else None,
                        error_type=body.error_type, topic=body.topic, stage=body.stage, since=body.since)


@router.get("", response_model=list[DeadLetterSummary], summary="list dead letters of the three DLQ topics",
            description="Oldest first, each with whether it was requeued and its call's status now (PostgreSQL). When "
                        f"PostgreSQL cannot answer, those fields are null, the `{STATUS_UNKNOWN_HEADER}` header says why "
                        "and hide_resolved hides nothing. Digit runs of 7+ in the error line are masked. Any role.")
async def list_dead_letters(
    settings: Settings, caller: Caller, response: Response,
    topic: Annotated[str | None, Query(description=f"one of {', '.join(dlq.DLQ_TOPICS)}")] = None,
    stage: Annotated[str | None, Query(pattern=f"^({'|'.join(STAGES)})$")] = None,
    error_type: Annotated[str | None, Query(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")] = None,
    since: datetime | None = None,
    hide_resolved: Annotated[bool, Query(description="leave out dead letters whose call is SCORED with a scoring_result")]
    = False,
) -> list[dict[str, Any]]:
    if topic is not None and topic not in dlq.DLQ_TOPICS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"topic must be one of {', '.join(dlq.DLQ_TOPICS)}")
    where = _filter(topic=topic, stage=stage, error_type=error_type, since=since)
    records = await run_in_threadpool(dlq.list_dead_letters, settings.kafka_bootstrap, where)
    listing = await run_in_threadpool(dlq_state.annotate, records, secret(settings.database_url))
    if hide_resolved:
        listing = listing.without_resolved()
    warning = listing.warning(hide_resolved)
    if warning:
        log.warning("GET /v1/dlq: %s", warning)
        response.headers[STATUS_UNKNOWN_HEADER] = warning.encode("ascii", "replace").decode()  # headers are latin-1
    rows = [mask_summary(row) for row in listing.rows()]
    # Best effort, unlike a payload read: a listing holds no payload (its error line is masked), and it is designed to keep
    # answering while PostgreSQL is down (the status columns then say unknown); a failed row is logged as an error.
    await audit_best_effort(settings, caller, "dlq.list", "dlq",
                            _filter_text(topic=topic, stage=stage, error_type=error_type, since=since,
                                         hide_resolved=hide_resolved), "ok", {"records": len(rows)})
    return rows


@router.get("/{call_id}", summary="every dead letter of one call: the full record with the original payload and stack",
            description="Customer numbers are masked (digit runs of 7+ in text); `full=true` returns them in clear, for the "
                        "admin role only. Every read is audited; when the audit row cannot be written the answer is a 500.")
async def show_dead_letter(
    settings: Settings, caller: Caller, call_id: Annotated[str, Path(pattern=CALL_ID)],
    full: Annotated[bool, Query(description="unmasked payloads (role admin)")] = False,
) -> list[dict[str, Any]]:
    action = "dlq.read_full" if full else "dlq.read"
    if full:
        await authorize(settings, caller, "admin", action, "dead_letter", call_id, "read full dead-letter payloads")
    records = await run_in_threadpool(dlq.show, settings.kafka_bootstrap, call_id)
    # Audited before anything is returned, and a row that cannot be written fails the read: an unaudited read of a
    # customer's number is what the audit trail exists to rule out.
    await audit_or_fail(settings, caller, action, "dead_letter", call_id, "ok" if records else "not_found",
                        {"positions": [record.position for record in records][:50]})
    if not records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter for call {call_id}")
    return [record.full() if full else mask_record(record.full()) for record in records]


@router.post("/requeue", response_model=RequeueResponse, summary="republish dead letters' original payloads to calls.raw",
             description="Role operator or admin; recorded in dlq_requeue under the caller's token name, and audited.")
async def requeue(settings: Settings, caller: Caller, body: RequeueRequest) -> dict[str, Any]:
    selection = _selection_text(body)
    detail: dict[str, Any] = {"dry_run": body.dry_run, "call_ids": body.call_ids}
    await authorize(settings, caller, "operator", "dlq.requeue", "dlq", selection, "requeue dead letters")
    try:
        where = _filter(topic=body.topic, stage=body.stage, error_type=body.error_type, since=body.since,
                        call_ids=frozenset(body.call_ids) if body.call_ids is not None else None)
    except HTTPException as refusal:
        await audit_best_effort(settings, caller, "dlq.requeue", "dlq", selection, "refused",
                                {**detail, "reason": str(refusal.detail)})
        raise
    requeuer = Requeuer(settings.kafka_bootstrap, secret(settings.database_url), requested_by=caller.name)
    try:
        outcomes = await run_in_threadpool(requeuer.requeue, where, body.dry_run)
    except Exception as error:
        await audit_best_effort(settings, caller, "dlq.requeue", "dlq", selection, "error",
                                {**detail, "error_type": type(error).__name__})
        raise
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    # The requeue is done (and recorded row by row in dlq_requeue with requested_by); a missing audit row still turns the
    # answer into a 500 so it is noticed, and asking again is safe: what went is reported already_requeued.
    await audit_or_fail(settings, caller, "dlq.requeue", "dlq", selection, "ok", {**detail, "actions": actions},
                        failure="the requeue ran (see dlq_requeue) but its audit row could not be written")
    return {"dry_run": body.dry_run, "requeued": actions.get("requeued", 0), "outcomes": [o.as_dict() for o in outcomes]}
