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
from ccas.ops.api.deps import Caller, Settings
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


@router.get("", response_model=list[DeadLetterSummary], summary="list dead letters of the three DLQ topics",
            description="Oldest first, each with whether it was requeued and its call's status now (PostgreSQL). When "
                        f"PostgreSQL cannot answer, those fields are null, the `{STATUS_UNKNOWN_HEADER}` header says why "
                        "and hide_resolved hides nothing.")
async def list_dead_letters(
    settings: Settings, _: Caller, response: Response,
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
    return listing.rows()


@router.get("/{call_id}", summary="every dead letter of one call: the full record with the original payload and stack")
async def show_dead_letter(settings: Settings, _: Caller,
                           call_id: Annotated[str, Path(pattern=CALL_ID)]) -> list[dict[str, Any]]:
    records = await run_in_threadpool(dlq.show, settings.kafka_bootstrap, call_id)
    if not records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dead letter for call {call_id}")
    return [record.full() for record in records]


@router.post("/requeue", response_model=RequeueResponse, summary="republish dead letters' original payloads to calls.raw")
async def requeue(settings: Settings, caller: Caller, body: RequeueRequest) -> dict[str, Any]:
    where = _filter(topic=body.topic, stage=body.stage, error_type=body.error_type, since=body.since,
                    call_ids=frozenset(body.call_ids) if body.call_ids is not None else None)
    requeuer = Requeuer(settings.kafka_bootstrap, secret(settings.database_url), requested_by=caller)
    outcomes = await run_in_threadpool(requeuer.requeue, where, body.dry_run)
    return {"dry_run": body.dry_run, "requeued": sum(o.action == "requeued" for o in outcomes),
            "outcomes": [o.as_dict() for o in outcomes]}
