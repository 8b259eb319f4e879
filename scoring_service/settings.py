"""The scoring service's one typed settings object: `CCAS_SCORING_*` environment variables, overridden by CLI flags."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ccas.settings import ports
from scoring_service.scorecard import DEFAULT_SCORECARD


class ScoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCAS_SCORING_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default_factory=lambda: ports().scoring_service, ge=1, le=65535)
    scorecard: Path = DEFAULT_SCORECARD
    asr: Literal["none", "pocketsphinx", "faster-whisper"] = "none"
    whisper_model_dir: Path | None = None
    # Caps checked before any sample is decoded: body size while it streams in, duration and decoded size from the WAV header.
    max_upload_mb: float = Field(default=100.0, gt=0)
    max_duration_s: float = Field(default=1800.0, gt=0)
    max_decoded_mb: float = Field(default=256.0, gt=0)
    batch_max_files: int = Field(default=16, ge=1)
    batch_max_duration_s: float = Field(default=120.0, gt=0)
    # Concurrent scorings; more requests wait. Bounds CPU and memory (each holds one decoded call) on a small box.
    workers: int = Field(default=2, ge=1)
    log_level: str = "info"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> ScoringSettings:
    return ScoringSettings()
