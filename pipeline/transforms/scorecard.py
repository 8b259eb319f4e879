"""AgentScorecards: per-agent and per-skill scorecards over hourly and daily event-time windows of the scored stream.

Event time is the call's end. Windows are fixed hours and days of the configured time zone (a day starts at its local
midnight), keyed by ("agent", agent_id) and ("skill", skill). Each window fires early every `early_firing_s` of processing
time while open and calls keep coming (so a day's row exists during the day), on time when the watermark passes its end,
and once more for every late call within the allowed lateness (default 2 days). Panes accumulate: every firing carries the
whole window so far, and the sinks replace the window's row (agent_scorecard, keyed by window; pane_index only grows)
instead of adding one.

The windows are per-key state and timers (`_WindowFn`, one key per window and dimension value), not WindowInto and a
triggered GroupByKey: Prism 2.73 was measured firing no pane at all for calls that reach a GroupByKey after the watermark
passed their window's end (which the watermark markers make the common case: the calls are still being scored when the
marker of their minute arrives), and one late pane only for the next ones. State and timers behave the same on Prism, Flink
and the DirectRunner, and the firing rules above are the whole of the logic.

A call later than the allowed lateness is counted (Prometheus `scorecard_calls_too_late_total{granularity}`) and dropped.
`_TooLateGate` judges that first: it learns the watermark from event-time timers (a timer fires only once the watermark
passed it), so what it calls too late always is. Its view lags by up to one tick (`TICK_S`, doubling while the watermark
runs ahead, at most `TICK_MAX_S`); a window's state outlives its lateness by that much as a marker, so a call that came
through the gate in the lag is recognised and counted there.

Watermark: the readers carry calls.raw's CreateTime (the poller stamps each call's end on its message), and the poller writes
a watermark marker into every partition after each window it polled, so an idle partition does not hold the watermark
(docs/avaya.md).

Scorecards are a view: the offsets of calls.raw are committed after each call's own writes, not after its windows fire. A job
that stops loses its open windows' state on Prism (Flink keeps it in checkpoints); the affected windows' rows are then behind
the calls until they are rebuilt from scoring_result (docs/analytics.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES
from pipeline.model import ScoredCall, iso
from pipeline.options import JobConfig
from pipeline.settings import fixed_utc_offset_s
from pipeline.transforms._bundles import BatchingDoFn, Held, view_write_failed
from pipeline.transforms.analytics import AGENT_SCORECARDS, AGENT_SCORECARDS_SCHEMA, ExportParquet
from pipeline.transforms.scorecard_values import CallFacts, call_facts, window_values

TOPIC = "agent.scorecards"
TICK_S = 60
TICK_MAX_S = 3600


@dataclass(frozen=True)
class Granularity:
    name: str
    size_s: int


GRANULARITIES = (Granularity("hour", 3600), Granularity("day", 86400))


def window_fn(granularity: Granularity, utc_offset_s: int) -> window.FixedWindows:
    # Windows start at offset + k * size (epoch seconds, UTC); a local midnight is where UTC + offset is a whole day.
    return window.FixedWindows(granularity.size_s, offset=(-utc_offset_s) % granularity.size_s)


def _window_end_s(event_time_s: float, granularity: Granularity, utc_offset_s: int) -> int:
    # The window the runner assigns, from the same WindowFn: one definition of where a window ends.
    (assigned,) = window_fn(granularity, utc_offset_s).assign(window.WindowFn.AssignContext(event_time_s))
    return int(assigned.end.micros // 1_000_000)


class _TooLateGate(beam.DoFn):
    """(0, CallFacts) → CallFacts tagged per granularity whose window is still open; the rest counted and dropped."""

    HORIZON = ReadModifyWriteStateSpec("horizon", VarIntCoder())  # µs: the watermark has passed this
    OPEN_UNTIL = ReadModifyWriteStateSpec("open_until", VarIntCoder())  # µs: the last moment a window seen here accepts data
    STEP = ReadModifyWriteStateSpec("step", VarIntCoder())  # s: from the pending tick to the next one
    TICK = TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, utc_offset_s: int, lateness_s: int) -> None:
        self.utc_offset_s = utc_offset_s
        self.lateness_s = lateness_s
        self.too_late = {g.name: Metrics.counter(self.__class__, f"scorecard_calls_too_late_{g.name}") for g in GRANULARITIES}

    def process(self, element: tuple[int, CallFacts], timestamp: Any = beam.DoFn.TimestampParam,
                horizon: Any = beam.DoFn.StateParam(HORIZON), open_until: Any = beam.DoFn.StateParam(OPEN_UNTIL),
                step: Any = beam.DoFn.StateParam(STEP), tick: Any = beam.DoFn.TimerParam(TICK)) -> Iterator[Any]:
        _, facts = element
        known = horizon.read()
        closes = {g.name: (_window_end_s(facts.event_time_s, g, self.utc_offset_s) + self.lateness_s) * 1_000_000
                  for g in GRANULARITIES}
        for name, closes_at in closes.items():
            if known is not None and closes_at <= known:
                self.too_late[name].inc()
                prom.SCORECARD_TOO_LATE.labels(name).inc()
            else:
                yield pvalue.TaggedOutput(name, facts)
        latest = max(closes.values())
        if (open_until.read() or 0) < latest:
            open_until.write(latest)
        if step.read() is None:  # no tick pending: start watching the watermark from this call on
            step.write(TICK_S)
            start = max(timestamp, Timestamp(micros=known)) if known is not None else timestamp
            tick.set(start + Duration(seconds=TICK_S))

    @on_timer(TICK)
    def on_tick(self, fired: Any = beam.DoFn.TimestampParam, horizon: Any = beam.DoFn.StateParam(HORIZON),
                open_until: Any = beam.DoFn.StateParam(OPEN_UNTIL), step: Any = beam.DoFn.StateParam(STEP),
                tick: Any = beam.DoFn.TimerParam(TICK)) -> Iterator[Any]:
        horizon.write(fired.micros)
        if fired.micros >= (open_until.read() or 0):
            step.clear()  # every window this shard saw is closed; the next call starts the ticks again
            return iter(())
        # Doubling while the watermark runs ahead: it catches up in a few ticks instead of one per minute of event time.
        next_step = min(2 * (step.read() or TICK_S), TICK_MAX_S)
        step.write(next_step)
        tick.set(fired + Duration(seconds=next_step))
        return iter(())


_ON_TIME_FIRED, _EXPIRED = 1, 2


class _WindowFn(beam.DoFn):
    """(window key, CallFacts) → agent_scorecard rows of that window, one per firing (early, on time, late).

    The key names one window of one dimension value, so per-key state is the window's calls and per-key timers are its
    firings: an event-time timer at the window's end (on time), a processing-time timer while it is open (early), one pane
    per late call, and a second event-time timer after the allowed lateness that clears the state.
    """

    CALLS = BagStateSpec("calls", PickleCoder())
    PANE = ReadModifyWriteStateSpec("pane", VarIntCoder())  # the next pane's index
    CLOSED = ReadModifyWriteStateSpec("closed", VarIntCoder())  # _ON_TIME_FIRED: a new call is late; _EXPIRED: too late
    CHANGED = ReadModifyWriteStateSpec("changed", VarIntCoder())  # 1 when a call came since the last pane
    EARLY_SET = ReadModifyWriteStateSpec("early_set", VarIntCoder())
    END = TimerSpec("end", TimeDomain.WATERMARK)
    EARLY = TimerSpec("early", TimeDomain.REAL_TIME)
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, granularity: Granularity, time_zone: str, lateness_s: int, early_firing_s: int) -> None:
        self.granularity = granularity
        self.time_zone = time_zone
        self.lateness_s = lateness_s
        self.early_firing_s = early_firing_s
        self.too_late = Metrics.counter(_TooLateGate, f"scorecard_calls_too_late_{granularity.name}")

    def process(self, element: tuple[str, CallFacts], calls: Any = beam.DoFn.StateParam(CALLS),
                pane: Any = beam.DoFn.StateParam(PANE), closed: Any = beam.DoFn.StateParam(CLOSED),
                changed: Any = beam.DoFn.StateParam(CHANGED), early_set: Any = beam.DoFn.StateParam(EARLY_SET),
                end: Any = beam.DoFn.TimerParam(END), early: Any = beam.DoFn.TimerParam(EARLY),
                expire: Any = beam.DoFn.TimerParam(EXPIRE)) -> Iterator[Any]:
        key, facts = element
        if closed.read() == _EXPIRED:  # came through the gate in the lag of its view of the watermark
            self.too_late.inc()
            prom.SCORECARD_TOO_LATE.labels(self.granularity.name).inc()
            return
        start_s = _window_start_s(key)
        first = pane.read() is None
        calls.add(facts)
        if first:
            pane.write(0)
            window_end = Timestamp(seconds=start_s + self.granularity.size_s)
            end.set(window_end - Duration(micros=1))  # the window's last moment: it fires once the watermark passed the end
            expire.set(window_end + Duration(seconds=self.lateness_s))
        if closed.read():  # late: its own pane, now (late calls are few)
            yield self._pane(key, calls, pane, "LATE")
            return
        changed.write(1)
        if self.early_firing_s > 0 and not early_set.read():
            early_set.write(1)
            early.set(Timestamp.now() + Duration(seconds=self.early_firing_s))

    @on_timer(EARLY)
    def on_early(self, key: Any = beam.DoFn.KeyParam, calls: Any = beam.DoFn.StateParam(CALLS),
                 pane: Any = beam.DoFn.StateParam(PANE), closed: Any = beam.DoFn.StateParam(CLOSED),
                 changed: Any = beam.DoFn.StateParam(CHANGED),
                 early_set: Any = beam.DoFn.StateParam(EARLY_SET)) -> Iterator[Any]:
        early_set.clear()  # the next call arms it again: a quiet window is not rewritten
        if changed.read() and not closed.read():
            changed.clear()
            yield self._pane(key, calls, pane, "EARLY")

    @on_timer(END)
    def on_end(self, key: Any = beam.DoFn.KeyParam, calls: Any = beam.DoFn.StateParam(CALLS),
               pane: Any = beam.DoFn.StateParam(PANE), closed: Any = beam.DoFn.StateParam(CLOSED),
               changed: Any = beam.DoFn.StateParam(CHANGED)) -> Iterator[Any]:
        closed.write(_ON_TIME_FIRED)
        changed.clear()
        yield self._pane(key, calls, pane, "ON_TIME")

    @on_timer(EXPIRE)
    def on_expire(self, fired: Any = beam.DoFn.TimestampParam, calls: Any = beam.DoFn.StateParam(CALLS),
                  pane: Any = beam.DoFn.StateParam(PANE), closed: Any = beam.DoFn.StateParam(CLOSED),
                  changed: Any = beam.DoFn.StateParam(CHANGED), early_set: Any = beam.DoFn.StateParam(EARLY_SET),
                  expire: Any = beam.DoFn.TimerParam(EXPIRE)) -> Iterator[Any]:
        if closed.read() == _EXPIRED:  # the gate has caught up since: nothing of this window is left
            closed.clear()
            return iter(())
        for state in (calls, pane, changed, early_set):
            state.clear()
        # A marker outlives the window by the gate's longest lag, so a call the gate let through meanwhile is still
        # recognised as too late instead of opening the window again as a pane 0.
        closed.write(_EXPIRED)
        expire.set(fired + Duration(seconds=TICK_MAX_S + TICK_S))
        return iter(())

    def _pane(self, key: str, calls: Any, pane: Any, timing: str) -> window.TimestampedValue:
        index = pane.read() or 0
        pane.write(index + 1)
        dimension, dimension_key, _, start_s = _split_key(key)
        start = Timestamp(seconds=start_s)
        end = Timestamp(seconds=start_s + self.granularity.size_s)
        row = {
            "dimension": dimension, "dimension_key": dimension_key, "granularity": self.granularity.name,
            "window_start": iso(start.to_utc_datetime(has_tz=True)), "window_end": iso(end.to_utc_datetime(has_tz=True)),
            "time_zone": self.time_zone, "pane_index": index, "pane_timing": timing, **window_values(calls.read()),
        }
        # Stamped at the window's last moment, as a GroupByKey's pane would be: the export files it under its window.
        return window.TimestampedValue(row, end - Duration(micros=1))


_KEY_SEPARATOR = "\x1f"  # unit separator: never in an agent id or a skill name


def _window_key(dimension: str, dimension_key: str, granularity: str, start_s: int) -> str:
    return _KEY_SEPARATOR.join((dimension, dimension_key, granularity, str(start_s)))


def _split_key(key: str) -> tuple[str, str, str, int]:
    dimension, dimension_key, granularity, start_s = key.split(_KEY_SEPARATOR)
    return dimension, dimension_key, granularity, int(start_s)


def _window_start_s(key: str) -> int:
    return _split_key(key)[3]


@dataclass(frozen=True)
class _WindowsOf:
    """CallFacts → (window key, CallFacts) for the call's agent and skill in its window of one granularity."""

    granularity: Granularity
    utc_offset_s: int

    def __call__(self, facts: CallFacts) -> Iterator[tuple[str, CallFacts]]:
        g = self.granularity
        start_s = _window_end_s(facts.event_time_s, g, self.utc_offset_s) - g.size_s
        if facts.agent_id:
            yield _window_key("agent", facts.agent_id, g.name, start_s), facts
        if facts.skill:
            yield _window_key("skill", facts.skill, g.name, start_s), facts


def _one_key(facts: CallFacts) -> tuple[int, CallFacts]:
    # One key: the gate must have seen the watermark to judge a call, and a key that saw no call has not. It costs one state
    # read per call, which one key carries at the rates of a contact centre (hundreds of calls per second).
    return 0, facts


class WindowScorecards(beam.PTransform):
    """ScoredCall → agent_scorecard rows (dicts) of every hour and day window, one per firing.

    Args:
        time_zone: IANA zone whose hours and days the windows follow (one fixed UTC offset).
        lateness_s: how long after a window's end a late call still updates it.
        early_firing_s: processing-time interval of early firings while a window is open (0: none, only on time and late).
    """

    def __init__(self, time_zone: str, lateness_s: int, early_firing_s: int) -> None:
        super().__init__()
        self.time_zone = time_zone
        self.utc_offset_s = fixed_utc_offset_s(time_zone)
        self.lateness_s = lateness_s
        self.early_firing_s = early_firing_s

    def expand(self, scored: Any) -> Any:
        facts = (
            scored
            | "Facts" >> beam.Map(call_facts).with_input_types(ScoredCall).with_output_types(CallFacts)
            | "AtCallEnd" >> beam.Map(lambda f: window.TimestampedValue(f, f.event_time_s)).with_output_types(CallFacts)
        )
        gated = (
            facts
            | "OneKey" >> beam.Map(_one_key).with_output_types(tuple[int, CallFacts])
            | "DropTooLate" >> beam.ParDo(_TooLateGate(self.utc_offset_s, self.lateness_s))
            .with_outputs(*(g.name for g in GRANULARITIES))
        )
        rows = []
        for g in GRANULARITIES:
            rows.append(
                gated[g.name]
                | f"ByWindow{g.name.title()}" >> beam.FlatMap(_WindowsOf(g, self.utc_offset_s))
                .with_input_types(CallFacts).with_output_types(tuple[str, CallFacts])
                | f"Fire{g.name.title()}" >> beam.ParDo(_WindowFn(g, self.time_zone, self.lateness_s, self.early_firing_s))
            )
        return rows | "AllGranularities" >> beam.Flatten()


def scorecard_key(row: dict[str, Any]) -> str:
    return f"{row['dimension']}:{row['dimension_key']}:{row['granularity']}:{row['window_start']}"


class _WriteScorecardsFn(BatchingDoFn):
    """Scorecard rows → agent.scorecards and agent_scorecard, each held through an outage like every other sink."""

    owned_clients = ("db", "publisher")

    def __init__(self, clients: StageClients) -> None:
        self.clients = clients
        self.written = Metrics.counter(self.__class__, "scorecards_written")

    def setup(self) -> None:
        super().setup()
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-scorecards")

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        rows = [item.element for item in held]
        for view, dependency, write in (
                (TOPIC, KAFKA, lambda: self.publisher.publish_all([(TOPIC, scorecard_key(row), row) for row in rows])),
                ("agent_scorecard", POSTGRES, lambda: self.db.upsert_scorecards(rows))):
            try:
                self.held(dependency, write)
            except Exception as error:  # refused for good, or down past the budget: the view is behind, the calls go on
                view_write_failed(view, f"{len(rows)} scorecard rows", error)
        self.written.inc(len(rows))
        return []


class AgentScorecards(beam.PTransform):
    """ScoredCall → (nothing): windowed scorecards written to agent_scorecard and agent.scorecards, and with the analytics export
    on, each pane as a row of the agent_scorecards Parquet files.

    Args:
        config: the windows' time zone, allowed lateness and early firing interval; the sinks' settings.
        clients: where the sink's database and publisher come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients or StageClients(config)

    def expand(self, scored: Any) -> Any:
        c = self.config
        rows = scored | "Window" >> WindowScorecards(c.scorecard_time_zone, c.scorecard_lateness_s, c.scorecard_early_firing_s)
        written = rows | "Write" >> beam.ParDo(_WriteScorecardsFn(self.clients))
        if c.analytics_export:  # every pane as a row of analytics/agent_scorecards/ (docs/analytics.md)
            _ = rows | "Export" >> ExportParquet(c, AGENT_SCORECARDS, AGENT_SCORECARDS_SCHEMA, shard_by="dimension_key",
                                                 clients=self.clients)
        return written
