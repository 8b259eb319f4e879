"""The scoring service's settings: `CCAS_SCORING_*` variables, each also a `ccas scoring-service` flag that overrides it
(except the bearer token: environment only, `ENVIRONMENT_ONLY`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from core.config import CcasSettings, secret, server_tls
from scoring_service.scorecard import DEFAULT_SCORECARD

MIN_TOKEN_LENGTH = 16
# A secret on a command line shows in `ps` to every user of the machine: the token is read from the environment only.
ENVIRONMENT_ONLY = ("token",)


class ScoringSettings(CcasSettings):
    model_config = SettingsConfigDict(env_prefix="CCAS_SCORING_")

    host: str = Field(default="127.0.0.1", description="address the service binds (0.0.0.0 in a container)")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port")
    # The field is `token` so that the prefix makes it CCAS_SCORING_TOKEN, the variable the pipeline reads too.
    token: SecretStr = Field(description=f"bearer token every /v1 request must carry (at least {MIN_TOKEN_LENGTH} "
                                         "characters; the pipeline sends the same variable)")
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain) to serve HTTPS with, set together with CCAS_SCORING_TLS_KEY_FILE "
                                  "(neither: plain HTTP)")
    tls_key_file: Path | None = Field(default=None, description="PEM private key of CCAS_SCORING_TLS_CERT_FILE")
    scorecard: Path = Field(default=DEFAULT_SCORECARD, description="scorecard YAML (criteria, weights, model version)")
    asr_engine: Literal["none", "faster-whisper", "viet-asr", "pocketsphinx"] = Field(
        default="none", description="ASR engine for the transcript criteria (none: only a transcript sent with the request)")
    asr_model_dir: Path | None = Field(
        default=None, description="CTranslate2 Whisper model directory for asr-engine=faster-whisper (never downloaded)")
    asr_language_engines: str = Field(
        default="vi=viet-asr", description="engine per language overriding asr-engine (none: no override): viet-asr hears "
                                           "Vietnamese better than Whisper base, as measured in docs/scoring.md")
    asr_beam_size: int = Field(default=1, ge=1, le=10, description="ASR beam width (1 = greedy: fastest, see docs/scoring.md)")
    asr_threads: int = Field(default=2, ge=1, description="CPU threads of the ASR engine (one call is decoded at a time)")
    speaker_model: Path | None = Field(
        default=None, description="Resemblyzer voice-encoder weights (pretrained.pt): speaker roles on mono recordings")
    # Caps checked before any sample is decoded: body size while it streams in, duration and decoded size from the WAV header.
    max_upload_mb: float = Field(default=100.0, gt=0, description="largest request body (MB), refused while it streams in")
    max_duration_s: float = Field(default=1800.0, gt=0, description="longest call accepted (seconds, from the WAV header)")
    max_decoded_mb: float = Field(default=256.0, gt=0, description="largest decoded audio accepted (MB, from the WAV header)")
    batch_max_files: int = Field(default=16, ge=1, description="most files in one batch request")
    batch_max_duration_s: float = Field(default=120.0, gt=0, description="longest call in a batch request (seconds)")
    # Bounds CPU and memory (each scoring holds one decoded call) on a small box; more requests wait.
    workers: int = Field(default=2, ge=1, description="concurrent scorings; further requests wait")
    log_level: str = Field(default="info", description="log level (debug, info, warning, error)")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(secret(value).strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ScoringSettings:
        server_tls(self.tls_cert_file, self.tls_key_file, "CCAS_SCORING_TLS_CERT_FILE", "CCAS_SCORING_TLS_KEY_FILE")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


@lru_cache(maxsize=1)
def get_settings() -> ScoringSettings:
    return ScoringSettings()
