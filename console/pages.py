"""The console's pages: Calls, Call detail (with its audio and waveform), Agents, Team, Operations.

Every recording playback and every breakdown view writes an audit_log row before anything is returned; when the row cannot be
written, nothing is returned (500), as in the ops API.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Annotated, Any

import psycopg2
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

import schemas
from ccas.ops import audit
from console import agents, calls, operations
from console.app import ConsoleState, render
from console.audio import RangeNotSatisfiable, parse_range
from console.auth import check_csrf, require_role, require_user
from console.users import User
from core.config import secret

router = APIRouter()
log = logging.getLogger(__name__)
SignedIn = Annotated[User, Depends(require_user)]
PERIODS = (7, 30, 90, 365)


def _state(request: Request) -> ConsoleState:
    return request.app.state.console


def _admin(request: Request) -> User:
    return require_role(request, "admin")


def _audit(request: Request, user: User, action: str, object_type: str, object_id: str, detail: dict[str, Any] | None = None,
           outcome: str = "ok") -> None:
    """The audit row of this request, or a 500: what must not happen unaudited does not happen at all."""
    try:
        with _state(request).database.connection() as connection:
            audit.record(connection, f"console:{user.name}", user.role, action, object_type, object_id,
                         request.client.host if request.client else None, outcome, detail)
    except psycopg2.Error as error:
        log.error("console: audit row for %s %s by %s could not be written: %s", action, object_id, user.name,
                  type(error).__name__)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "the audit trail cannot be written") from None


def _call_id(call_id: str) -> str:
    if not schemas.is_valid_call_id(call_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
    return call_id


def _optional(value: str | None, kind: type) -> Any:
    if value is None or value.strip() == "":
        return None
    try:
        return kind.fromisoformat(value) if kind is date else kind(value)
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not a valid {kind.__name__}: {value[:40]!r}") from None


@router.get("/calls", response_class=HTMLResponse)
def calls_page(request: Request, user: SignedIn, date_from: str | None = None, date_to: str | None = None,
               agent: str | None = None, skill: str | None = None, score_min: str | None = None, score_max: str | None = None,
               criterion: str | None = None, status_: Annotated[str | None, Query(alias="status")] = None,
               language: str | None = None, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    state = _state(request)
    where = calls.CallFilter(_optional(date_from, date), _optional(date_to, date), agent or None, skill or None,
                             _optional(score_min, float), _optional(score_max, float), criterion or None,
                             status_ if status_ in calls.STATUSES else None, language or None, page)
    rows, total = calls.list_calls(state.database, where, state.settings.zone)
    pages = max(1, -(-total // calls.PAGE_SIZE))
    return render(request, "calls.html", {"rows": rows, "total": total, "filter": where, "pages": pages,
                                          "choices": calls.filter_choices(state.database)})


@router.get("/calls/{call_id}", response_class=HTMLResponse)
def call_page(request: Request, call_id: str, user: SignedIn) -> HTMLResponse:
    state = _state(request)
    detail = calls.call_detail(state.database, _call_id(call_id))
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such call")
    current = detail["results"][0] if detail["results"] else None
    breakdown = ((current or {}).get("details") or {}).get("breakdown") or []
    versions, side_by_side = calls.versions_side_by_side(detail["results"])
    transcript, transcript_problem = None, None
    if detail["transcript"]:
        try:
            transcript = state.recordings.read_json(detail["transcript"]["s3_key"])
        except Exception as error:  # noqa: BLE001 - the rest of the page is still worth showing
            transcript_problem = type(error).__name__
    _audit(request, user, "view_breakdown", "scoring_result", call_id,
           {"model_versions": versions, "transcript": bool(transcript)})
    return render(request, "call.html", {
        "call": detail, "channel_names": _channel_names(current, detail.get("channels")), "current": current,
        "breakdown": breakdown, "markers": calls.evidence_markers(breakdown),
        "versions": versions, "side_by_side": side_by_side, "transcript": transcript,
        "transcript_problem": transcript_problem})


def _channel_names(result: dict[str, Any] | None, channels: int | None) -> list[str]:
    """Who speaks on each channel, from the layout the scorer used (stereo defaults to the agent on the left)."""
    layout = ((result or {}).get("details") or {}).get("channel_layout") or ("agent_left" if channels == 2 else "mono")
    return {"agent_left": ["agent", "customer"], "agent_right": ["customer", "agent"]}.get(layout, ["line"])


def _ready_recording(state: ConsoleState, call_id: str) -> dict[str, Any]:
    """The S3 key and version of the call's stored recording; 404 when it has none."""
    asset = state.database.row("SELECT s3_key, s3_version_id FROM audio_asset WHERE call_id = %s AND status = 'READY'",
                               (_call_id(call_id),))
    if asset is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no recording for this call")
    return asset


@router.get("/calls/{call_id}/audio")
def call_audio(request: Request, call_id: str, user: SignedIn) -> Response:
    state = _state(request)
    asset = _ready_recording(state, call_id)
    size = state.recordings.size(asset["s3_key"], asset["s3_version_id"])
    try:
        byte_range = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    _audit(request, user, "play_recording", "audio_asset", call_id,
           {"range": byte_range.header() if byte_range else "all", "size": size})
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, no-store"}
    if byte_range is None:
        headers["Content-Length"] = str(size)
        code = 200
    else:
        headers["Content-Length"] = str(byte_range.length)
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        code = 206
    return StreamingResponse(state.recordings.stream(asset["s3_key"], asset["s3_version_id"], byte_range), status_code=code,
                             media_type="audio/wav", headers=headers)


@router.get("/calls/{call_id}/waveform")
def call_waveform(request: Request, call_id: str, user: SignedIn) -> JSONResponse:
    state = _state(request)
    asset = _ready_recording(state, call_id)
    return JSONResponse(state.recordings.waveform(asset["s3_key"], asset["s3_version_id"]),
                        headers={"Cache-Control": "private, max-age=3600"})


@router.get("/agents", response_class=HTMLResponse)
def team_page(request: Request, user: SignedIn, days: Annotated[int, Query(ge=1, le=365)] = 30) -> HTMLResponse:
    state = _state(request)
    ranked, unranked = agents.team_overview(state.database, days, state.settings.console_min_agent_calls)
    return render(request, "team.html", {"ranked": ranked, "unranked": unranked, "days": days, "periods": PERIODS,
                                         "min_calls": state.settings.console_min_agent_calls})


@router.get("/agents/{agent_id}", response_class=HTMLResponse)
def agent_page(request: Request, agent_id: str, user: SignedIn, days: Annotated[int, Query(ge=1, le=365)] = 30,
               by: str = "day") -> HTMLResponse:
    state = _state(request)
    page = agents.agent_page(state.database, agent_id[:16], state.settings.zone, days, by)
    if page is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such agent")
    return render(request, "agent.html", {**page, "days": days, "periods": PERIODS})


@router.get("/operations", response_class=HTMLResponse)
def operations_page(request: Request, user: Annotated[User, Depends(_admin)], requeued: str | None = None) -> HTMLResponse:
    state = _state(request)
    settings = state.settings
    letters = operations.dead_letters(settings.kafka_bootstrap, secret(settings.database_url), state.dead_letters)
    return render(request, "operations.html", {"letters": letters, "requeued": requeued,
                                               "health": operations.health(settings.prometheus_url, state.database)})


@router.post("/operations/requeue")
def requeue(request: Request, user: Annotated[User, Depends(_admin)], call_id: str = Form(""),
            csrf_token: str = Form("")) -> Response:
    check_csrf(request, csrf_token)
    settings = _state(request).settings
    outcomes = operations.requeue_call(settings.kafka_bootstrap, secret(settings.database_url), _call_id(call_id),
                                       f"console:{user.name}")
    actions = sorted({outcome.action for outcome in outcomes}) or ["nothing_found"]
    _audit(request, user, "requeue", "dead_letter", call_id, {"actions": actions,
                                                              "positions": [outcome.dlq for outcome in outcomes]})
    return RedirectResponse(f"/operations?requeued={call_id}:{','.join(actions)}", status_code=303)
