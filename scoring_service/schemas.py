"""Request/response schemas of the scoring API (one family per resource)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.contracts import CALL_ID_PATTERN  # noqa: F401 - the one call-id contract, re-exported for the scorer

ChannelLayout = Literal["mono", "agent_left", "agent_right"]


class TranscriptSegment(BaseModel):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str = Field(max_length=10000)
    speaker: Literal["agent", "customer", "unknown"] = "unknown"


class Evidence(BaseModel):
    start_s: float
    end_s: float
    note: str


class CriterionResult(BaseModel):
    criterion: str
    description: str
    weight: float
    points: float
    max_points: float
    applicable: bool
    passed: bool | None
    reason: str | None
    value: float | int | None
    threshold: float | list[float] | None
    rule: str
    critical: bool
    evidence: list[Evidence]


class ScoreResponse(BaseModel):
    call_id: str | None
    score: float | None
    scorable: bool
    reason: str | None
    model_version: str
    duration_s: float
    codec: str
    sample_rate: int
    channels: int
    channel_layout: ChannelLayout
    transcript_source: Literal["none", "request", "pocketsphinx", "faster-whisper"]
    metrics: dict[str, Any]
    breakdown: list[CriterionResult]
    latency_ms: float


class ErrorBody(BaseModel):
    error: str  # stable machine-readable type, e.g. corrupt_wav
    detail: str
    status: int


class BatchItem(BaseModel):
    index: int
    filename: str | None
    result: ScoreResponse | None = None
    error: ErrorBody | None = None


class BatchScoreResponse(BaseModel):
    model_version: str
    results: list[BatchItem]
    latency_ms: float


class ScorecardResponse(BaseModel):
    model_version: str
    scorecard: dict[str, Any]


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_version: str
    asr: str
