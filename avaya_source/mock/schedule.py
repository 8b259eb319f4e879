"""The mock recorder's calls: planned ahead, deterministically, from a seed, on the real UTC clock.

Contacts arrive from `start` at `calls_per_minute`, as a Poisson process or (`arrivals="uniform"`, load benchmarks) exactly
1/rate apart; each contact is one recording or, with probability
`multi_inum_ratio`, two or three (hold or transfer) that share a switchcallid and a contactid. A recording is visible to search
only once `now >= ended_at + availability_delay_s`. Tests pick `start` in the past so hours of calls exist without waiting;
only metadata is planned here — audio is rendered on replay (audio.py).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

REAL_MEDIAN_S, REAL_MIN_S, REAL_MAX_S = 106.0, 0.7, 520.0
SERVICES = {"vi": ("CSKH_VI", "BANHANG_VI", "KYTHUAT_VI"), "en": ("SUPPORT_EN", "SALES_EN")}
SKILLS = {"vi": ("101", "102", "103"), "en": ("201", "202")}


def skill_languages() -> str:
    """The pipeline's --skill_languages for these skills: each one with the language its calls are spoken in."""
    return ",".join(f"{skill}={language}" for language, skills in SKILLS.items() for skill in skills)


@dataclass(frozen=True)
class ScheduleConfig:
    seed: int = 1
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    calls_per_minute: float = 6.0
    count: int | None = None  # number of contacts; None = unbounded
    multi_inum_ratio: float = 0.15
    availability_delay_s: float = 5.0
    duration_median_s: float = REAL_MEDIAN_S
    duration_min_s: float = REAL_MIN_S
    duration_max_s: float = REAL_MAX_S
    english_ratio: float = 0.3
    arrivals: str = "poisson"  # poisson | uniform
    history_from: datetime | None = None  # recordings that ended before it are never listed


@dataclass(frozen=True)
class Segment:
    """One recording (inum) of a contact."""

    inum: str
    contact_id: str
    switch_call_id: str
    part: int  # 0-based position in the contact
    parts: int
    kind: str  # single | hold | transfer
    started_at: datetime
    duration_s: float
    plan_seed: int  # callgen seed of this recording's audio
    language: str
    agent_id: str
    agent_name: str
    other_party: str
    skill: str
    service: str

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration_s)

    @property
    def agents_field(self) -> str:
        return f"{self.agent_id} ({self.agent_name})"

    @property
    def duration_field(self) -> str:
        """Whole seconds, as ACR reports them (a sub-second call still shows 1)."""
        return str(max(1, math.ceil(self.duration_s - 1e-9)))


def sample_duration(seed: int, index: int, config: ScheduleConfig) -> float:
    """Call length from callgen's distribution (log-normal, real median 106 s, 0.7–520 s), with the configured bounds.

    A non-default median is passed as the log-normal's scale (callgen's second parameter), which is its median before the
    bounds cut it.
    """
    import callgen

    rng = np.random.default_rng([seed, index])
    bounds = {"min_s": config.duration_min_s, "max_s": config.duration_max_s}
    if config.duration_median_s == REAL_MEDIAN_S:
        return float(callgen.sample_duration(rng, **bounds))
    return float(callgen.sample_duration(rng, config.duration_median_s, **bounds))


def _digits(*parts: object, width: int) -> str:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()
    return str(int(digest, 16))[-width:].rjust(width, "0")


class Schedule:
    """Lazily extended, thread-safe list of segments ordered by start time."""

    def __init__(self, config: ScheduleConfig) -> None:
        self.config = config
        self._arrivals = random.Random(config.seed)
        self._next_arrival = config.start
        self._contacts = 0
        self._segments: list[Segment] = []
        self._starts: list[datetime] = []
        self._by_inum: dict[str, Segment] = {}
        self._by_contact: dict[str, list[Segment]] = {}
        self._lock = threading.Lock()

    # -- planning --------------------------------------------------------------------------------------------------------

    def _plan_contact(self, index: int, start: datetime) -> list[Segment]:
        cfg = self.config
        rng = random.Random(f"{cfg.seed}:{index}")  # per contact, so extending the plan never changes earlier calls
        total = sample_duration(cfg.seed, index, cfg)
        parts = 1
        if rng.random() < cfg.multi_inum_ratio and total >= 3 * cfg.duration_min_s:
            parts = rng.choice((2, 2, 3))
        kind = "single" if parts == 1 else rng.choice(("hold", "transfer"))
        language = "en" if rng.random() < cfg.english_ratio else "vi"
        contact_id = "10" + _digits(cfg.seed, index, "contact", width=12)
        switch_call_id = "00" + _digits(cfg.seed, index, "ucid", width=18)
        other_party = "09" + _digits(cfg.seed, index, "ani", width=8)
        skill, service = rng.choice(SKILLS[language]), rng.choice(SERVICES[language])
        cuts = sorted(rng.uniform(0.2, 0.8) for _ in range(parts - 1))
        bounds = [0.0, *cuts, 1.0]
        segments: list[Segment] = []
        at = start
        agent = _agent(rng)
        for part in range(parts):
            length = max(cfg.duration_min_s, total * (bounds[part + 1] - bounds[part]))
            if kind == "transfer" and part:
                agent = _agent(rng)
            segments.append(
                Segment(
                    inum="1" + _digits(cfg.seed, index, width=9) + f"{index % 100000:05d}{part}",
                    contact_id=contact_id,
                    switch_call_id=switch_call_id,
                    part=part,
                    parts=parts,
                    kind=kind,
                    started_at=at,
                    duration_s=round(length, 3),
                    plan_seed=int(_digits(cfg.seed, index, part, "plan", width=9)),
                    language=language,
                    agent_id=agent[0],
                    agent_name=agent[1],
                    other_party=other_party,
                    skill=skill,
                    service=service,
                )
            )
            # Hold music / transfer ringing between the inums is not recorded: the next inum starts after a gap.
            at = at + timedelta(seconds=round(length, 3) + rng.uniform(1.0, min(20.0, 1.0 + total / 10)))
        return segments

    def _extend_until(self, moment: datetime) -> None:
        cfg = self.config
        rate_per_s = cfg.calls_per_minute / 60.0
        while self._next_arrival <= moment and (cfg.count is None or self._contacts < cfg.count) and rate_per_s > 0:
            for segment in self._plan_contact(self._contacts, self._next_arrival):
                index = bisect.bisect_right(self._starts, segment.started_at)
                self._starts.insert(index, segment.started_at)
                self._segments.insert(index, segment)
                self._by_inum[segment.inum] = segment
                self._by_contact.setdefault(segment.contact_id, []).append(segment)
            self._contacts += 1
            gap = 1.0 / rate_per_s if cfg.arrivals == "uniform" else self._arrivals.expovariate(rate_per_s)
            self._next_arrival += timedelta(seconds=gap)

    # -- queries ---------------------------------------------------------------------------------------------------------

    def started_between(self, lo: datetime, hi: datetime) -> list[Segment]:
        """Segments with lo <= started_at <= hi, ordered by start (visibility is the caller's filter)."""
        with self._lock:
            self._extend_until(hi)
            left = bisect.bisect_left(self._starts, lo)
            right = bisect.bisect_right(self._starts, hi)
            return self._segments[left:right]

    def segment(self, inum: str) -> Segment | None:
        with self._lock:
            return self._by_inum.get(inum)

    def contact_segments(self, contact_id: str) -> list[Segment]:
        with self._lock:
            return list(self._by_contact.get(contact_id, ()))

    def in_history(self, segment: Segment) -> bool:
        """False for a recording that ended before the recorder's history begins (`history_from`): never listed."""
        return self.config.history_from is None or segment.ended_at >= self.config.history_from

    def visible(self, segment: Segment, now: datetime) -> bool:
        return self.in_history(segment) and now >= segment.ended_at + timedelta(seconds=self.config.availability_delay_s)

    def all_until(self, moment: datetime) -> list[Segment]:
        """Every segment planned to start up to `moment` (tests and benchmarks compute the expected set with this)."""
        return self.started_between(self.config.start - timedelta(days=1), moment)


def _agent(rng: random.Random) -> tuple[str, str]:
    number = rng.randint(1000, 1999)
    return str(number), f"agent{number}.{rng.randint(100, 399)}"
