"""Request/response schemas of the scoring API (one family per resource)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from schemas.contracts import CALL_ID_PATTERN  # noqa: F401 - the one call-id contract, re-exported for the scorer

ChannelLayout = Literal["mono", "agent_left", "agent_right"]


class Word(BaseModel):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str = Field(max_length=200)
    confidence: float | None = Field(default=None, ge=0, le=1)


class TranscriptSegment(BaseModel):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str = Field(max_length=10000)
    speaker: Literal["agent", "customer", "unknown"] = "unknown"
    words: list[Word] = Field(default_factory=list, max_length=2000)  # empty when the source gave only text
    sentiment: float | None = Field(default=None, ge=-1, le=1)  # of this turn, filled in by the scorer


class TranscriptOut(BaseModel):
    """What the ASR heard, as the pipeline stores it (transcripts/…/{call_id}_{asr_model}.json)."""

    engine: str
    asr_model: str
    language: str | None
    language_source: str  # metadata | detected | engine | request
    language_probability: float | None = None
    word_count: int
    confidence: float | None  # mean word confidence, None when the engine gives none
    text: str
    segments: list[TranscriptSegment]


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
    transcript_source: Literal["none", "request", "faster-whisper", "viet-asr", "pocketsphinx"]
    language: str | None = None
    transcript: TranscriptOut | None = None
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
    asr: dict[str, Any] = Field(default_factory=dict)


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_version: str
    asr: str
