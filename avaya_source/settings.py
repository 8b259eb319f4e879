"""The poller's settings: one pydantic-settings model; every field is a `CCAS_*` variable and a `ccas poller` flag.

The flag names predate the model (`--interval`, `--search-cap`, …), so most fields name their flag explicitly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from core.config import secret
from core.recorder import Credentials
from core.settings import DatabaseSettings, KafkaSettings, RecorderSettings


def _flag(name: str) -> dict[str, Any]:
    return {"flag": name}


def parse_moment(text: str) -> datetime:
    """ISO 8601 (naive = UTC here: operators type UTC), or seconds relative to now (`-3600`)."""
    try:
        return datetime.now(UTC) + timedelta(seconds=float(text))
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class PollerSettings(KafkaSettings, DatabaseSettings, RecorderSettings):
    # Declared before poller_to: its validator reads them (pydantic validates fields in declaration order).
    poller_once: bool = Field(default=False, json_schema_extra=_flag("--once"),
                              description="poll one window and exit (the next due one, or --from/--to)")
    poller_from: datetime | None = Field(default=None, json_schema_extra=_flag("--from"),
                                         description="backfill window start with --once: ISO time (naive = UTC) or seconds "
                                                     "relative to now")
    poller_to: datetime | None = Field(default=None, json_schema_extra=_flag("--to"),
                                       description="backfill window end with --once (goes with --from)")
    poller_start: datetime = Field(default="-3600", json_schema_extra=_flag("--start"),  # type: ignore[assignment]
                                   description="where to begin while the checkpoint table is empty: ISO time or seconds "
                                               "relative to now")
    poller_interval: float = Field(default=30.0, gt=0, json_schema_extra=_flag("--interval"),
                                   description="seconds between polls once caught up")
    poller_lookback: float = Field(default=900.0, ge=0, json_schema_extra=_flag("--lookback"),
                                   description="seconds each window reaches back before the checkpoint (calls are found by "
                                               "start time; keep it above the longest call)")
    poller_settle: float = Field(default=30.0, ge=0, json_schema_extra=_flag("--settle"),
                                 description="seconds a window's end stays behind now, so the recorder has listed its calls")
    poller_max_call_age: float = Field(default=14400.0, gt=0, json_schema_extra=_flag("--max-call-age"),
                                       description="how long after its start (s) a recording still in progress keeps being "
                                                   "searched again; past it, it is dropped (never published), counted and "
                                                   "logged. Must exceed --lookback + --settle")
    poller_watermark_interval: float = Field(
        default=60.0, ge=0, json_schema_extra=_flag("--watermark-interval"),
        description="least event time (s) between two rounds of watermark markers on calls.raw (one message per partition, "
                    "stamped with the window's end: the pipeline's event-time windows close with them)")
    poller_max_window: float = Field(default=600.0, gt=0, json_schema_extra=_flag("--max-window"),
                                     description="longest window in seconds (catching up goes in chunks of this size)")
    avaya_search_cap: int = Field(default=1000, ge=1, json_schema_extra=_flag("--search-cap"),
                                  description="the recorder's maximum results per search: an answer this long is split and "
                                              "searched again")
    poller_contacts: bool = Field(default=True, json_schema_extra=_flag("--contacts"),
                                  description="also search SearchLayout60 for the contact id and inums of multi-inum calls")
    poller_topic: str = Field(default="calls.raw", json_schema_extra=_flag("--topic"), description="topic the calls go to")
    poller_transactional_id: str = Field(default="", json_schema_extra=_flag("--transactional-id"),
                                         description="Kafka transactional id; empty: ccas-poller.<topic>. One poller per id "
                                                     "(a second one fences the first)")
    poller_metrics_port: int = Field(default=9101, ge=0, le=65535, json_schema_extra=_flag("--metrics-port"),
                                     description="Prometheus port (0: off; not served with --once)")
    poller_metrics_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--metrics-host"),
                                     description="address the Prometheus endpoint binds (0.0.0.0 in a container)")
    avaya_connect_timeout: float = Field(default=3.05, gt=0, json_schema_extra=_flag("--connect-timeout"),
                                         description="seconds to connect to the recorder")
    avaya_read_timeout: float = Field(default=30.0, gt=0, json_schema_extra=_flag("--read-timeout"),
                                      description="seconds to wait for the recorder's answer")
    avaya_retries: int = Field(default=3, ge=0, json_schema_extra=_flag("--retries"),
                               description="retries of a recorder request on connection errors, timeouts and 5xx")
    avaya_max_response_bytes: int = Field(default=8 * 1024 * 1024, ge=1, json_schema_extra=_flag("--max-response-bytes"),
                                          description="largest search answer accepted from the recorder (bytes)")
    log_level: str = Field(default="INFO", json_schema_extra=_flag("--log-level"),
                           description="log level (DEBUG, INFO, WARNING, ERROR)")

    @field_validator("poller_from", "poller_to", "poller_start", mode="before")
    @classmethod
    def _moment(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_moment(value) if value.strip() else None
        return value

    @field_validator("poller_max_call_age")
    @classmethod
    def _max_age_beyond_the_windows(cls, value: float, info: ValidationInfo) -> float:
        # Windows list a call in progress up to lookback + settle after its start; a shorter maximum age would drop it there.
        if "poller_lookback" in info.data and "poller_settle" in info.data:
            reach = info.data["poller_lookback"] + info.data["poller_settle"]
            if value <= reach:
                raise ValueError(f"must exceed --lookback + --settle ({reach:g} s)")
        return value

    @field_validator("poller_to")
    @classmethod
    def _backfill_needs_both_bounds_and_once(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if "poller_from" not in info.data:  # --from itself is invalid and reported on its own
            return value
        start = info.data["poller_from"]
        if (start is None) != (value is None) or (start is not None and not info.data.get("poller_once")):
            raise ValueError("--from and --to go together, with --once")
        return value

    def transactional_id(self) -> str:
        return self.poller_transactional_id or f"ccas-poller.{self.poller_topic}"

    def credentials(self) -> Credentials:
        """The password, else the content of the password file; ValueError when neither is set, OSError if the file fails."""
        return Credentials.of(self.avaya_user, secret(self.avaya_password), self.avaya_password_file)
