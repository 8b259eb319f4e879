"""One recording (an inum) as the recorder lists it, and the rules that turn raw search fields into it.

Everything here is pure: the XML layer hands in a dict of field strings, this module answers a `Recording` or a `Rejected`
with the reason, so each rule is unit-tested without HTTP.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.contracts import CALL_ID_PATTERN

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
MAX_DURATION_S = 24 * 3600.0  # a "duration" beyond a day is a corrupt record, not a call

_DDMMYY = re.compile(r"^(\d{2})/(\d{2})/(\d{2,4})[ T](\d{2}):(\d{2}):(\d{2})$")


class RecordError(ValueError):
    """A field that cannot be accepted; the message is the reason reported and counted."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_startedat(text: str, tz: ZoneInfo) -> datetime:
    """ISO 8601 (offset, `Z` or naive) or `DD/MM/YY HH:MM:SS` → aware UTC datetime; naive values are in the recorder's zone."""
    value = (text or "").strip()
    if not value:
        raise RecordError("bad_startedat", "empty")
    match = _DDMMYY.match(value)
    if match:
        day, month, year, hour, minute, second = (int(g) for g in match.groups())
        if year < 100:
            year += 2000
        try:
            parsed = datetime(year, month, day, hour, minute, second)
        except ValueError as exc:
            raise RecordError("bad_startedat", f"{value!r}: {exc}") from None
    else:
        iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            parsed = datetime.fromisoformat(iso)
        except ValueError:
            raise RecordError("bad_startedat", f"{value[:64]!r} is neither ISO 8601 nor DD/MM/YY HH:MM:SS") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


def parse_duration(text: str | None) -> float | None:
    """Seconds as a number; None when absent (the recording is still in progress)."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise RecordError("bad_duration", f"{value[:32]!r} is not a number") from None
    if not (0 <= seconds <= MAX_DURATION_S):  # also rejects nan and inf
        raise RecordError("bad_duration", f"{value[:32]!r} out of range")
    return seconds


def check_call_id(value: str | None) -> str:
    inum = (value or "").strip()
    if not CALL_ID_PATTERN.match(inum):
        raise RecordError("bad_call_id", f"{inum[:40]!r} does not match {CALL_ID_PATTERN.pattern}")
    return inum


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, millisecond precision: the form every topic carries."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Recording:
    """A recorder segment (one inum). `duration` None means still in progress."""

    call_id: str
    started_at: datetime
    duration: float | None
    raw_agent: str = ""
    other_parties: str = ""
    skill: str = ""
    service: str = ""
    switch_call_id: str = ""
    contact_id: str | None = None
    inums: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ended(self) -> bool:
        return self.duration is not None

    @property
    def ended_at(self) -> datetime | None:
        return None if self.duration is None else self.started_at + timedelta(seconds=self.duration)

    def to_event(self, now: datetime | None = None) -> dict:
        """The `calls.raw` value; only for ended recordings."""
        if self.duration is None:
            raise ValueError(f"recording {self.call_id} is still in progress")
        ended_at = self.ended_at
        assert ended_at is not None
        return {
            "call_id": self.call_id,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(ended_at),
            "duration": self.duration,
            "raw_agent": self.raw_agent,
            "other_parties": self.other_parties,
            "skill": self.skill,
            "service": self.service,
            "switch_call_id": self.switch_call_id,
            "contact_id": self.contact_id,
            "inums": list(self.inums or (self.call_id,)),
            "event_ts": iso_utc(now or datetime.now(UTC)),
            "ingest_uuid": str(uuid.uuid4()),
        }


@dataclass(frozen=True)
class Contact:
    """A SearchLayout60 contact: the inums that make up one call (hold, transfer) under one switchcallid."""

    contact_id: str
    switch_call_id: str
    inums: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """A search result that was skipped, with why (reason is a short metric label)."""

    reason: str
    detail: str
    inum: str | None = None


def field_key(name: str) -> str:
    """A field or attribute name as matched: recorder versions differ in letter case and surrounding whitespace."""
    return name.strip().lower()


def normalized(fields: dict[str, str]) -> dict[str, str]:
    """Fields keyed by `field_key`; two names that differ only in case or whitespace are one field given twice."""
    out: dict[str, str] = {}
    for name, value in fields.items():
        key = field_key(name)
        if key in out:
            raise RecordError("bad_field", f"field {key!r} repeated")
        out[key] = value
    return out


def recording_from_fields(inum: str | None, fields: dict[str, str], tz: ZoneInfo) -> Recording:
    """Raw AvayaSegment fields (names in any case, padded or not) → Recording; raises RecordError naming the bad field."""
    call_id = check_call_id(inum)
    fields = normalized(fields)
    if "startedat" not in fields:
        raise RecordError("missing_field", "startedat")
    started_at = parse_startedat(fields["startedat"], tz)
    duration = parse_duration(fields.get("duration"))
    switch_call_id = fields.get("switchcallid", "").strip()
    if len(switch_call_id) > 64:  # the dedup table's column width; a longer value is not a real UCID
        raise RecordError("bad_switchcallid", f"{len(switch_call_id)} characters")
    return Recording(
        call_id=call_id,
        started_at=started_at,
        duration=duration,
        raw_agent=fields.get("agents", "").strip(),
        other_parties=fields.get("otherparties", "").strip(),
        skill=fields.get("skills", "").strip(),
        service=fields.get("services", "").strip(),
        switch_call_id=switch_call_id,
    )


def split_inums(text: str) -> tuple[str, ...]:
    """The `inums` field of a contact: separated by commas, semicolons or spaces."""
    return tuple(part for part in re.split(r"[\s,;]+", text or "") if part)
