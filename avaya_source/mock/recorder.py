"""The mock recorder's behaviour, independent of HTTP: search, contacts, replay and the fault injection applied to them."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from avaya_source.mock.audio import AudioConfig, AudioStore
from avaya_source.mock.responses import (
    HOSTILE_MODES,
    Rendering,
    contact_xml,
    document,
    hostile,
    is_corrupt,
    segment_xml,
)
from avaya_source.mock.schedule import Schedule, ScheduleConfig, Segment

log = logging.getLogger(__name__)


OUTAGES = ("ok", "503", "timeout")


@dataclass
class Faults:
    """Changeable at run time (POST /_mock/config) so one mock process can go through healthy and broken phases."""

    error_5xx_ratio: float = 0.0
    latency_ms: float = 0.0
    truncate_ratio: float = 0.0  # body cut short of its Content-Length (search and replay)
    malformed_xml_ratio: float = 0.0
    duplicate_ratio: float = 0.0  # a result repeated within the same answer
    hostile: str | None = None  # one of HOSTILE_MODES, served instead of the real answer
    hostile_count: int = -1  # how many search answers get `hostile`; -1 = until changed
    max_results: int = 1000  # the recorder's result cap per search
    list_in_progress: bool = False  # also list started-but-unfinished recordings with an empty duration
    # Per-recording replay faults, for end-to-end tests that need exact outcomes:
    replay_failures: dict[str, int] = field(default_factory=dict)  # inum -> replays answered 500 before success (-1: all)
    corrupt_inums: list[str] = field(default_factory=list)  # replays whose WAV header is corrupt (fmt block align)
    long_inums: dict[str, float] = field(default_factory=dict)  # inum -> seconds the replay is looped to (large files)
    # Whole-API outages for fault suites (POST /_mock/faults): every search or replay answered 503, or held unanswered.
    search_fault: str = "ok"  # one of OUTAGES
    replay_fault: str = "ok"
    hold_s: float = 35.0  # how long "timeout" holds a request before answering (just above the client's 30 s read timeout)

    def update(self, values: dict) -> None:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        if values.get("hostile") not in (None, *HOSTILE_MODES):
            raise ValueError(f"hostile must be one of {HOSTILE_MODES}")
        for key in ("search_fault", "replay_fault"):
            if key in values and values[key] not in OUTAGES:
                raise ValueError(f"{key} must be one of {OUTAGES}")
        hold = values.get("hold_s", self.hold_s)
        if isinstance(hold, bool) or not isinstance(hold, int | float) or not 0 <= hold <= 3600:
            raise ValueError("hold_s must be a number of seconds from 0 to 3600")
        for key, value in values.items():
            setattr(self, key, value)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    length: int
    chunks: Iterator[bytes]
    cut_at: int | None = None  # send only this many bytes, then drop the connection (truncation fault)


class SearchParamsError(ValueError):
    pass


def parse_window(params: dict[str, str], tz: ZoneInfo) -> tuple[datetime, datetime]:
    """ACR between-operator params (recorder-local DD/MM/YY + HH:MM:SS) → inclusive UTC bounds at one-second resolution."""
    if params.get("operator_startedat") != "9":
        raise SearchParamsError("only operator_startedat=9 (between) is supported")
    try:
        lo = datetime.strptime(f"{params['param1_startedat']} {params['param2_startedat']}", "%d/%m/%y %H:%M:%S")
        hi = datetime.strptime(f"{params['param3_startedat']} {params['param4_startedat']}", "%d/%m/%y %H:%M:%S")
    except (KeyError, ValueError) as exc:
        raise SearchParamsError(f"bad startedat parameters: {exc}") from None
    lo_utc = lo.replace(tzinfo=tz).astimezone(UTC)
    hi_utc = hi.replace(tzinfo=tz).astimezone(UTC) + timedelta(seconds=1) - timedelta(microseconds=1)
    return lo_utc, hi_utc


class MockRecorder:
    def __init__(
        self,
        schedule: ScheduleConfig,
        audio: AudioConfig,
        rendering: Rendering,
        faults: Faults,
        fault_seed: int = 0,
    ) -> None:
        self.schedule = Schedule(schedule)
        self.audio = AudioStore(audio)
        self.rendering = rendering
        self.faults = faults
        self._rng = random.Random(fault_seed)
        self._lock = threading.Lock()
        self.stats: Counter[str] = Counter()

    def _roll(self, ratio: float) -> bool:
        if ratio <= 0:
            return False
        with self._lock:
            return self._rng.random() < ratio

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def configure(self, values: dict) -> dict:
        with self._lock:
            self.faults.update(values)
            return asdict(self.faults)

    def outages(self, values: dict) -> dict[str, object]:
        """`POST /_mock/faults`: {"search"|"replay": "ok"|"503"|"timeout", "timeout_s": N}; answers the state now in force."""
        names = {"search": "search_fault", "replay": "replay_fault", "timeout_s": "hold_s"}
        unknown = set(values) - set(names)
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; expected {sorted(names)}")
        state = self.configure({names[key]: value for key, value in values.items()})
        if values:
            self._count("outage_settings")
        return {key: state[name] for key, name in names.items()}

    def outage(self, command: str | None, stop_holding: Callable[[], bool]) -> Answer | None:
        """The outage set for this command: a 503 answer, or None after holding the request (timeout) or at once (ok).

        A held request is answered normally once `hold_s` has passed, or as soon as the outage is lifted (so a fault suite
        need not wait out requests it no longer wants held), or when `stop_holding()` says the server is stopping.
        """
        key = {"search": "search_fault", "replay": "replay_fault"}.get(command or "")
        mode = getattr(self.faults, key) if key else "ok"
        if mode == "503":
            self._count(f"outage_{command}_503")
            body = b"<error>recorder unavailable</error>"
            return Answer(503, "text/xml", len(body), iter([body]))
        if mode == "timeout":
            self._count(f"outage_{command}_timeout")
            deadline = time.monotonic() + self.faults.hold_s
            while time.monotonic() < deadline and getattr(self.faults, key) == "timeout" and not stop_holding():
                time.sleep(0.05)
        return None

    def pre_request(self) -> Answer | None:
        """Latency and 5xx faults, common to every API request; returns an error answer or None."""
        if self._roll(self.faults.error_5xx_ratio):
            self._count("fault_5xx")
            body = b"<error>recorder busy</error>"
            return Answer(503, "text/xml", len(body), iter([body]))
        return None

    # -- search ----------------------------------------------------------------------------------------------------------

    def search(self, params: dict[str, str], now: datetime | None = None) -> Answer:
        now = now or datetime.now(UTC)
        layout = params.get("layout", "AvayaSegment")
        if layout not in ("AvayaSegment", "SearchLayout60"):
            raise SearchParamsError(f"unknown layout {layout!r}")
        lo, hi = parse_window(params, self.rendering.tz)
        self._count(f"search_{layout}")
        segments = self.schedule.started_between(lo, hi)
        results = self._segment_results(segments, now) if layout == "AvayaSegment" else self._contact_results(segments, now)
        results = results[: self.faults.max_results]
        if self.faults.duplicate_ratio > 0:
            doubled: list[str] = []
            for item in results:
                doubled.append(item)
                if self._roll(self.faults.duplicate_ratio):
                    doubled.append(item)
                    self._count("fault_duplicate")
            results = doubled
        body = document(results)
        with self._lock:
            mode = self.faults.hostile if self.faults.hostile_count != 0 else None
            if mode and self.faults.hostile_count > 0:
                self.faults.hostile_count -= 1
        if mode:
            self._count(f"fault_hostile_{mode}")
            body = hostile(mode, body, self._rng)
        elif self._roll(self.faults.malformed_xml_ratio):
            self._count("fault_malformed")
            body = hostile("malformed", body, self._rng)
        cut = None
        if self._roll(self.faults.truncate_ratio):
            self._count("fault_truncate")
            cut = len(body) // 2
        return Answer(200, "text/xml; charset=UTF-8", len(body), iter([body]), cut)

    def _segment_results(self, segments: list[Segment], now: datetime) -> list[str]:
        results = []
        for segment in segments:
            if self.schedule.visible(segment, now):
                results.append(segment_xml(segment, self.rendering))
            elif self.faults.list_in_progress and segment.started_at <= now and self.schedule.in_history(segment):
                results.append(segment_xml(segment, self.rendering, in_progress=True))
        return results

    def _contact_results(self, segments: list[Segment], now: datetime) -> list[str]:
        results = []
        for segment in segments:
            if segment.part != 0 or segment.started_at > now:
                continue
            started = [s for s in self.schedule.contact_segments(segment.contact_id)
                       if s.started_at <= now and self.schedule.in_history(s)]
            if started:
                results.append(contact_xml(started, self.rendering))
        return results

    # -- replay and ground truth -----------------------------------------------------------------------------------------

    def available_segment(self, inum: str, now: datetime | None = None) -> Segment | None:
        segment = self.schedule.segment(inum)
        if segment is None or not self.schedule.visible(segment, now or datetime.now(UTC)):
            return None
        return segment

    def _planned_failure(self, inum: str) -> bool:
        with self._lock:
            remaining = self.faults.replay_failures.get(inum, 0)
            if remaining > 0:
                self.faults.replay_failures[inum] = remaining - 1
            return remaining != 0

    def replay(self, inum: str) -> Answer | None:
        segment = self.available_segment(inum)
        if segment is None:
            return None
        self._count("replay")
        if self._planned_failure(inum):
            self._count("fault_replay_planned")
            # 500, not 503: a planned failure is this recording failing (retried per call, then dead-lettered), while a
            # 503 means the recorder as a whole is unavailable (held by the pipeline; the `faults` endpoint sets that).
            body = b"<error>replay failed</error>"
            return Answer(500, "text/xml", len(body), iter([body]))
        length, chunks = self.audio.wav_size_and_chunks(segment, min_seconds=self.faults.long_inums.get(inum))
        if inum in self.faults.corrupt_inums:
            chunks = _corrupt_header(chunks)
        cut = length // 2 if self._roll(self.faults.truncate_ratio) else None
        return Answer(200, "audio/wav", length, chunks, cut)

    def calls(self, until: datetime) -> list[dict]:
        """Every planned recording that started by `until` and is in the recorder's history, with when it becomes visible
        (for tests and benchmarks)."""
        delay = timedelta(seconds=self.schedule.config.availability_delay_s)
        return [
            {
                "inum": s.inum,
                "contact_id": s.contact_id,
                "switch_call_id": s.switch_call_id,
                "part": s.part,
                "parts": s.parts,
                "started_at": s.started_at.isoformat(),
                "ended_at": s.ended_at.isoformat(),
                "available_at": (s.ended_at + delay).isoformat(),
                "duration": s.duration_s,
                "corrupt": is_corrupt(s.inum, self.rendering),
                "other_party": s.other_party,  # the customer's number: tests check it never reaches a log or a table
            }
            for s in self.schedule.all_until(until)
            if self.schedule.in_history(s)
        ]


def _corrupt_header(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The same bytes with the fmt chunk's block align broken: a RIFF/WAVE file no decoder should accept."""
    header = bytearray(next(chunks))
    header[32:34] = (0x7777).to_bytes(2, "little")
    yield bytes(header)
    yield from chunks
