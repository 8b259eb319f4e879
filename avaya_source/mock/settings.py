"""The mock recorder's settings: every field is a `CCAS_*` variable and a `ccas avaya-mock` flag.

Its own settings are `CCAS_AVAYA_MOCK_*`; the credentials it accepts and its time zone are the recorder's variables
(`CCAS_AVAYA_USER`, `CCAS_AVAYA_PASSWORD`, `CCAS_AVAYA_TZ`), so a poller given the same environment logs in and agrees on times.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from avaya_source.mock.responses import HOSTILE_MODES
from avaya_source.mock.schedule import REAL_MAX_S, REAL_MEDIAN_S, REAL_MIN_S
from avaya_source.records import DEFAULT_TZ
from core.config import CcasSettings, secret
from core.recorder import Credentials


def _flag(name: str) -> dict[str, Any]:
    return {"flag": name}


class AvayaMockSettings(CcasSettings):
    avaya_mock_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--host"), description="address the mock binds")
    avaya_mock_port: int = Field(default=8081, ge=0, le=65535, json_schema_extra=_flag("--port"),
                                 description="port the mock listens on (0: any free port)")
    avaya_mock_seed: int = Field(default=1, json_schema_extra=_flag("--seed"),
                                 description="schedule seed: the same seed and start give the same calls")
    avaya_mock_start: str = Field(default="now", json_schema_extra=_flag("--start"),
                                  description="when the first call starts: ISO time, `now`, or seconds relative to now (-1800)")
    avaya_mock_history_from: str = Field(
        default="", json_schema_extra=_flag("--history-from"),
        description="recordings that ended before this moment (ISO, `now`, or seconds relative to now) are never listed: "
                    "with --start in the past, the calls in progress at that moment are the first ones seen, so a load "
                    "benchmark begins at its steady rate of call ends (empty: all are listed)")
    avaya_mock_calls_per_minute: float = Field(default=6.0, ge=0, json_schema_extra=_flag("--calls-per-minute"),
                                               description="arrival rate of new contacts")
    avaya_mock_count: int | None = Field(default=None, ge=0, json_schema_extra=_flag("--count"),
                                         description="stop after this many contacts (empty: no end)")
    avaya_mock_multi_inum_ratio: float = Field(default=0.15, ge=0, le=1, json_schema_extra=_flag("--multi-inum-ratio"),
                                               description="share of contacts recorded as two or three inums (hold or transfer)")
    avaya_mock_availability_delay: float = Field(default=5.0, ge=0, json_schema_extra=_flag("--availability-delay"),
                                                 description="seconds after a call ends before search lists it")
    avaya_mock_duration_median: float = Field(default=REAL_MEDIAN_S, gt=0, json_schema_extra=_flag("--duration-median"),
                                              description="median call length in seconds")
    avaya_mock_duration_min: float = Field(default=REAL_MIN_S, gt=0, json_schema_extra=_flag("--duration-min"),
                                           description="shortest call in seconds")
    avaya_mock_duration_max: float = Field(default=REAL_MAX_S, gt=0, json_schema_extra=_flag("--duration-max"),
                                           description="longest call in seconds")
    avaya_mock_english_ratio: float = Field(default=0.3, ge=0, le=1, json_schema_extra=_flag("--english-ratio"),
                                            description="share of calls in English (the others Vietnamese)")
    avaya_mock_arrivals: Literal["poisson", "uniform"] = Field(
        default="poisson", json_schema_extra=_flag("--arrivals"),
        description="how contacts arrive: a Poisson process, or uniform (exactly 1/rate apart, for load benchmarks)")
    avaya_mock_startedat_format: Literal["iso", "naive", "utc", "ddmmyy"] = Field(
        default="iso", json_schema_extra=_flag("--startedat-format"), description="how search answers write startedat")
    avaya_mock_field_case: Literal["lower", "mixed"] = Field(
        default="lower", json_schema_extra=_flag("--field-case"),
        description="how search answers write field names: lower, or mixed (varied case; names, attribute values and "
                    "field values padded with whitespace, as some ACR versions do)")
    avaya_mock_max_results: int = Field(default=1000, ge=1, json_schema_extra=_flag("--max-results"),
                                        description="the recorder's result cap per search")
    avaya_mock_stereo: bool = Field(default=False, json_schema_extra=_flag("--stereo"),
                                    description="replay two-channel audio (agent left, customer right)")
    avaya_mock_stereo_ratio: float | None = Field(
        default=None, ge=0, le=1, json_schema_extra=_flag("--stereo-ratio"),
        description="share of recordings replayed in two channels, chosen per inum (empty: --stereo decides for all)")
    avaya_mock_audio_pool: str = Field(
        default="", json_schema_extra=_flag("--audio-pool"),
        description="folder of recordings rendered before the run (render_pool; bench/e2e_load.py makes one): replays loop "
                    "or cut one to the call's length instead of synthesising speech (load benchmarks)")
    avaya_mock_codec: Literal["ulaw", "alaw", "pcm16"] = Field(default="ulaw", json_schema_extra=_flag("--codec"),
                                                              description="replay audio encoding")
    avaya_mock_replay_min_seconds: float = Field(default=0.0, ge=0, json_schema_extra=_flag("--replay-min-seconds"),
                                                 description="loop replay audio up to this many seconds (long-recording tests)")
    avaya_mock_list_in_progress: bool = Field(default=False, json_schema_extra=_flag("--list-in-progress"),
                                              description="also list started, unfinished recordings (empty duration)")
    avaya_mock_error_5xx_ratio: float = Field(default=0.0, ge=0, le=1, json_schema_extra=_flag("--error-5xx-ratio"),
                                              description="fault: share of requests answered 503")
    avaya_mock_latency_ms: float = Field(default=0.0, ge=0, json_schema_extra=_flag("--latency-ms"),
                                         description="fault: delay before every search answer (ms)")
    avaya_mock_truncate_ratio: float = Field(default=0.0, ge=0, le=1, json_schema_extra=_flag("--truncate-ratio"),
                                             description="fault: share of bodies cut short of their Content-Length")
    avaya_mock_malformed_xml_ratio: float = Field(default=0.0, ge=0, le=1, json_schema_extra=_flag("--malformed-xml-ratio"),
                                                  description="fault: share of search answers that are not well-formed XML")
    avaya_mock_duplicate_ratio: float = Field(default=0.0, ge=0, le=1, json_schema_extra=_flag("--duplicate-ratio"),
                                              description="fault: share of results repeated within the same answer")
    avaya_mock_corrupt_ratio: float = Field(default=0.0, ge=0, le=1, json_schema_extra=_flag("--corrupt-ratio"),
                                            description="fault: share of inums always served with a broken record")
    avaya_mock_hostile: str | None = Field(default=None, json_schema_extra=_flag("--hostile"),
                                           description=f"fault: answer searches with this attack ({', '.join(HOSTILE_MODES)})")
    avaya_mock_hostile_count: int = Field(default=-1, ge=-1, json_schema_extra=_flag("--hostile-count"),
                                          description="how many search answers are hostile (-1: until changed)")
    avaya_mock_fault_seed: int = Field(default=0, json_schema_extra=_flag("--fault-seed"),
                                       description="seed of the random fault draws")
    avaya_user: str = Field(description="recorder API user (the one user the mock accepts)")
    avaya_password: SecretStr | None = Field(default=None, description="recorder API password (or CCAS_AVAYA_PASSWORD_FILE)")
    avaya_password_file: str = Field(default="", description="file holding the recorder password (a mounted secret)")
    avaya_tz: str = Field(default=DEFAULT_TZ, json_schema_extra=_flag("--tz"),
                          description="time zone the recorder's Search API speaks")
    log_level: str = Field(default="INFO", json_schema_extra=_flag("--log-level"),
                           description="log level (DEBUG, INFO, WARNING, ERROR)")

    def credentials(self) -> Credentials:
        """The one user and password the mock accepts (the password, else the password file's content)."""
        return Credentials.of(self.avaya_user, secret(self.avaya_password), self.avaya_password_file)

    @field_validator("avaya_mock_hostile")
    @classmethod
    def _known_hostile_mode(cls, value: str | None) -> str | None:
        if value is not None and value not in HOSTILE_MODES:
            raise ValueError(f"must be one of {', '.join(HOSTILE_MODES)}")
        return value
