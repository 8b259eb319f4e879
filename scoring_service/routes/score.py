"""POST /v1/score (one recording) and POST /v1/score/batch (several short recordings in one request).

The multipart body is parsed by Starlette into spooled temporary files (memory up to 1 MB each, disk beyond), so a streamed
upload of any length costs bounded memory; the size cap is enforced while it streams (limits.py) and the duration cap from the
WAV header before decoding (scorer.py).
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from scoring_service.deps import AUTHENTICATED, ScorerDep
from scoring_service.errors import ApiError, BadRequest, UnsupportedMedia, error_body
from scoring_service.schemas import BatchItem, BatchScoreResponse, ErrorBody, ScoreResponse
from scoring_service.scorer import ScoreFields, parse_fields

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["score"], dependencies=AUTHENTICATED)

_TEXT_FIELDS = ("call_id", "agent_id", "channel_layout", "transcript", "language")


async def _form(request: Request, max_files: int) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UnsupportedMedia("send multipart/form-data with the recording in the `audio` part", "not_multipart")
    # Starlette turns a malformed multipart body (or too many parts) into HTTPException(400), which errors.py types.
    return await request.form(max_files=max_files, max_fields=len(_TEXT_FIELDS) * max_files + 8)


def _fields(form: FormData, index: int | None = None) -> ScoreFields:
    values = {}
    for name in _TEXT_FIELDS:
        items = form.getlist(name)
        if index is None:
            if len(items) > 1:
                raise BadRequest(f"field {name} given {len(items)} times", "bad_field")
            values[name] = items[0] if items else None
        else:
            # Batch: a field given once applies to every file; given per file, it must be given for each file.
            values[name] = items[0] if len(items) == 1 else (items[index] if index < len(items) else None)
    return parse_fields(**values)


@router.post("/score", response_model=ScoreResponse)
async def score(request: Request, scorer: ScorerDep) -> ScoreResponse:
    form = await _form(request, max_files=1)
    try:
        audio = form.getlist("audio")
        if len(audio) != 1 or not isinstance(audio[0], UploadFile):
            raise BadRequest("exactly one file part named `audio` is required", "missing_audio")
        fields = _fields(form)
        async with scorer.slots:
            return await run_in_threadpool(scorer.score_file, audio[0].file, fields)
    finally:
        await form.close()


@router.post("/score/batch", response_model=BatchScoreResponse)
async def score_batch(request: Request, scorer: ScorerDep) -> BatchScoreResponse:
    started = time.perf_counter()
    limit = scorer.settings.batch_max_files
    form = await _form(request, max_files=limit)
    try:
        files = [f for f in form.getlist("audio") if isinstance(f, UploadFile)]
        if not files:
            raise BadRequest("at least one file part named `audio` is required", "missing_audio")
        for name in _TEXT_FIELDS:
            count = len(form.getlist(name))
            if count not in (0, 1, len(files)):
                raise BadRequest(f"field {name} must be given once or once per file ({len(files)}), got {count}", "bad_field")
        items = []
        for index, upload in enumerate(files):
            item = BatchItem(index=index, filename=upload.filename)
            try:
                fields = _fields(form, index)
                async with scorer.slots:
                    item.result = await run_in_threadpool(
                        scorer.score_file, upload.file, fields, scorer.settings.batch_max_duration_s
                    )
            except ApiError as exc:
                # One bad file fails alone: the caller dead-letters that call and keeps the others' scores.
                if exc.status >= 500:
                    raise
                item.error = ErrorBody(**error_body(exc.status, exc.error, exc.detail))  # type: ignore[arg-type]
            items.append(item)
        return BatchScoreResponse(
            model_version=scorer.model_version, results=items, latency_ms=round((time.perf_counter() - started) * 1000, 1)
        )
    finally:
        await form.close()
