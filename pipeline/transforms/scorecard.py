"""AgentScorecards: per-agent and per-skill scorecards over hourly and daily event-time windows of the scored stream.

Event time is the call's end. Windows are fixed hours and days of the configured time zone (a day starts at its local
midnight), keyed by ("agent", agent_id) and ("skill", skill). Each window fires early every `early_firing_s` of processing
time while open (so a day's row exists during the day), on time when the watermark passes its end, and once more for every
late call within the allowed lateness (default 2 days). Panes accumulate: every firing carries the whole window so far, and
the sinks replace the window's row (agent_scorecard, keyed by window; pane_index only grows) instead of adding one.

A call later than the allowed lateness would be dropped by the runner without a trace. `_TooLateGate` finds those calls
first, counts them (Prometheus `scorecard_calls_too_late_total{granularity}`) and drops them itself: it learns the watermark
from event-time timers (a timer fires only once the watermark passed it), so what it calls too late always is. Its view of
the watermark lags by up to one tick (`TICK_S`, doubling while the watermark runs ahead, at most `TICK_MAX_S`); a call that
falls in that lag is dropped by the runner uncounted.

Watermark: the readers carry calls.raw's CreateTime (the poller stamps each call's end on its message). A partition with no
new message does not hold it: Beam's Java ReadFromKafka advances an idle partition's watermark to the time of its backlog
check (KafkaIO's create-time policy), and our Python reader to wall time minus 2 s once it is caught up.

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
from apache_beam.coders import VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES
from pipeline.model import ScoredCall, iso
from pipeline.options import JobConfig
from pipeline.settings import fixed_utc_offset_s
from pipeline.transforms._bundles import BatchingDoFn, Held
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


class _ToRow(beam.DoFn):
    """((dimension, key), values) in a window and pane → one agent_scorecard row."""

    def __init__(self, granularity: str, time_zone: str) -> None:
        self.granularity = granularity
        self.time_zone = time_zone

    def process(self, element: tuple[tuple[str, str], dict[str, Any]], win: Any = beam.DoFn.WindowParam,
                pane: Any = beam.DoFn.PaneInfoParam) -> Iterator[dict[str, Any]]:
        (dimension, key), values = element
        timing = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}.get(int(pane.timing), "UNKNOWN")
        yield {
            "dimension": dimension, "dimension_key": key, "granularity": self.granularity,
            "window_start": iso(win.start.to_utc_datetime(has_tz=True)), "window_end": iso(win.end.to_utc_datetime(has_tz=True)),
            "time_zone": self.time_zone, "pane_index": int(pane.index), "pane_timing": timing, **values,
        }


def _dimension_keys(facts: CallFacts) -> Iterator[tuple[tuple[str, str], CallFacts]]:
    if facts.agent_id:
        yield ("agent", facts.agent_id), facts
    if facts.skill:
        yield ("skill", facts.skill), facts


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

    def _trigger(self) -> trigger.AfterWatermark:
        early = trigger.AfterProcessingTime(self.early_firing_s) if self.early_firing_s > 0 else None
        return trigger.AfterWatermark(early=early, late=trigger.AfterCount(1))

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
                | f"ByDimension{g.name.title()}" >> beam.FlatMap(_dimension_keys).with_input_types(CallFacts)
                .with_output_types(tuple[tuple[str, str], CallFacts])
                | f"Window{g.name.title()}" >> beam.WindowInto(
                    window_fn(g, self.utc_offset_s), trigger=self._trigger(),
                    accumulation_mode=trigger.AccumulationMode.ACCUMULATING, allowed_lateness=self.lateness_s)
                # All of the window's calls, not a combine: a call that came through twice must count once, and a window holds at
                # most a day of one agent's calls.
                | f"Group{g.name.title()}" >> beam.GroupByKey()
                | f"Values{g.name.title()}" >> beam.MapTuple(lambda key, calls: (key, window_values(calls)))
                | f"Row{g.name.title()}" >> beam.ParDo(_ToRow(g.name, self.time_zone))
                # Rows of both granularities meet in one sink: a row is a value now, its window is in its fields.
                | f"Unwindow{g.name.title()}" >> beam.WindowInto(window.GlobalWindows())
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
        self.held(KAFKA, lambda: self.publisher.publish_all([(TOPIC, scorecard_key(row), row) for row in rows]))
        self.held(POSTGRES, lambda: self.db.upsert_scorecards(rows))
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
