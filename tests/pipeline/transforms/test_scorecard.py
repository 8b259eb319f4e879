"""AgentScorecards under TestStream: on-time, early, late-within-lateness (the row is replaced, its pane index grows), too late
(dropped and counted), a key that goes quiet, and the values against an independent recomputation."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.periodicsequence import PeriodicImpulse
from apache_beam.transforms.window import TimestampedValue, WindowFn

import schemas
from ccas.stack import tools
from pipeline import metrics as prom
from pipeline.model import EnrichedCall, ScoredCall, SourcePosition, StoredAudio, iso
from pipeline.options import JobConfig
from pipeline.settings import fixed_utc_offset_s
from pipeline.transforms.scorecard import GRANULARITIES, AgentScorecards, window_fn
from tests.pipeline.transforms.fakes import FakeClients, World, drop_world, new_world
from tests.pipeline.transforms.test_stages_unit import job_config

RUNNER = "PrismRunner"  # the runner the job runs on (DirectRunner means Prism); its processing time follows the TestStream
ZONE = "Asia/Ho_Chi_Minh"
LOCAL = ZoneInfo(ZONE)
LATENESS_S = 3600


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of December 2026 in the windows' zone."""
    return datetime(2026, 12, day, hour, minute, tzinfo=LOCAL)


def scored_call(call_id: str, agent: str, ended: datetime, score: float | None, *, passed: dict[str, bool] | None = None,
                dead_air_s: float = 1.5, hold_s: float = 0.0, talk: float | None = 1.2, sentiment: float | None = None,
                skill: str = "billing") -> ScoredCall:
    call = EnrichedCall(call_id=call_id, started_at=iso(ended - timedelta(minutes=3)), ended_at=iso(ended), duration=180.0,
                        agent_id=agent, agent_name=None, customer_key=None, skill=skill, service=None, switch_call_id=None,
                        source=SourcePosition("calls.raw", 0, 0))
    audio = StoredAudio(call=call, s3_key=f"raw/{call_id}.wav", s3_version_id=None, sha256="0" * 64, size_bytes=1, codec="ulaw",
                        sample_rate=8000, channels=1, duration_s=180.0, stored_at=iso(ended))
    passed = {"greeting": True, "closing": score is not None and score >= 80} if passed is None else passed
    breakdown = [{"criterion": name, "applicable": True, "passed": ok} for name, ok in passed.items()]
    breakdown.append({"criterion": "empathy", "applicable": False, "passed": None})
    metrics: dict[str, Any] = {"dead_air_total_s": dead_air_s, "hold_total_s": hold_s, "talk_listen_ratio": talk}
    if sentiment is not None:
        metrics["customer_sentiment_mean"] = sentiment
    return ScoredCall(audio=audio, score=score, scorable=score is not None, reason=None if score is not None else "silent",
                      model_version="sc-test", latency_ms=10, breakdown=breakdown, response={"metrics": metrics},
                      scored_at=iso(ended))


def arriving(call: ScoredCall) -> TimestampedValue:
    # Elements carry the call's end as their timestamp, as the readers' create-time policy gives them.
    return TimestampedValue(call, datetime.fromisoformat(call.audio.call.ended_at).timestamp())


def config(early_firing_s: int = 0) -> JobConfig:
    base = job_config()
    return JobConfig(**{**base.__dict__, "scorecard_time_zone": ZONE, "scorecard_lateness_s": LATENESS_S,
                        "scorecard_early_firing_s": early_firing_s})


@pytest.fixture
def world() -> Iterator[tuple[str, World]]:
    token, world = new_world()
    try:
        yield token, world
    finally:
        drop_world(token)


def run(stream: TestStream, world: tuple[str, World], early_firing_s: int = 0) -> Any:
    token, _ = world
    c = config(early_firing_s)
    p = TestPipeline(runner=RUNNER, options=PipelineOptions(streaming=True, prism_location=str(tools.go_binary("prism"))))
    _ = p | stream | AgentScorecards(c, FakeClients(c, token))
    result = p.run()
    result.wait_until_finish()
    return result


def too_late(granularity: str) -> float:
    return prom.SCORECARD_TOO_LATE.labels(granularity)._value.get()


def published(world: World) -> list[dict[str, Any]]:
    return [value for topic, _, value in world.published if topic == "agent.scorecards"]


def row(world: World, dimension: str, key: str, granularity: str, start: datetime) -> dict[str, Any]:
    return world.scorecards[(dimension, key, granularity, iso(start))]


def test_windows_follow_local_hours_and_midnights() -> None:
    offset = fixed_utc_offset_s(ZONE)
    assert offset == 7 * 3600
    hour, day = (window_fn(g, offset) for g in GRANULARITIES)
    (window,) = day.assign(WindowFn.AssignContext(at(1, 0, 30).timestamp()))
    assert window.start.to_utc_datetime(has_tz=True) == at(1, 0)
    assert window.end.to_utc_datetime(has_tz=True) == at(2, 0)
    (window,) = day.assign(WindowFn.AssignContext(at(1, 23, 59).timestamp()))
    assert window.start.to_utc_datetime(has_tz=True) == at(1, 0)
    (window,) = hour.assign(WindowFn.AssignContext(at(1, 9, 59).timestamp()))
    assert (window.start.to_utc_datetime(has_tz=True), window.end.to_utc_datetime(has_tz=True)) == (at(1, 9), at(1, 10))


def test_a_zone_with_daylight_saving_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="Europe/Berlin.*daylight saving"):
        fixed_utc_offset_s("Europe/Berlin")
    with pytest.raises(ValueError, match="unknown time zone"):
        fixed_utc_offset_s("Mars/Olympus")


def test_on_time_late_and_too_late_calls(world: tuple[str, World]) -> None:
    a = [scored_call("a1", "A", at(1, 9, 10), 70.0, sentiment=0.2), scored_call("a2", "A", at(1, 9, 20), 80.0, talk=None),
         scored_call("a3", "A", at(1, 9, 40), 95.0, hold_s=12.0, sentiment=-0.4)]
    b = [scored_call("b1", "B", at(1, 9, 15), 60.0, skill="sales")]
    late = scored_call("a4", "A", at(1, 9, 50), None)  # not scorable: counted as a call, not as a score
    beyond = scored_call("a5", "A", at(1, 9, 30), 10.0)
    stream = (TestStream()
              .add_elements([arriving(c) for c in (*a, *b)])
              .advance_watermark_to(at(1, 10, 0).timestamp() + 1)           # 09:00-10:00 closes on time
              .add_elements([arriving(late)])                                # late, within the hour of lateness
              .advance_watermark_to(at(2, 3, 0).timestamp())                 # the day and its lateness are over
              .add_elements([arriving(beyond)])
              .advance_watermark_to_infinity())
    before = {g: too_late(g) for g in ("hour", "day")}
    run(stream, world)
    _, w = world

    hour_a = row(w, "agent", "A", "hour", at(1, 9))
    assert hour_a["pane_timing"] == "LATE" and hour_a["pane_index"] >= 1
    assert hour_a["calls"] == 4 and hour_a["scored_calls"] == 3
    assert hour_a["window_end"] == iso(at(1, 10)) and hour_a["time_zone"] == ZONE
    # Every pane of the window replaced the same row: no row per pane, and the published panes only grew.
    panes = [v for v in published(w) if v["dimension_key"] == "A" and v["granularity"] == "hour"]
    assert [v["pane_index"] for v in panes] == sorted({v["pane_index"] for v in panes})
    assert [v["pane_timing"] for v in panes][0] == "ON_TIME" and panes[0]["calls"] == 3
    assert sum(1 for key in w.scorecards if key[:3] == ("agent", "A", "hour")) == 1

    day_a = row(w, "agent", "A", "day", at(1, 0))
    assert day_a["calls"] == 4 and day_a["pane_timing"] == "ON_TIME"  # the late call came before the day closed
    assert day_a["window_start"] == iso(at(1, 0)) and day_a["window_end"] == iso(at(2, 0))
    # The too-late call is in no row, and counted once per granularity it missed.
    assert all(v["score_min"] != 10.0 for v in published(w) if v["dimension_key"] in ("A", "billing"))
    assert {g: too_late(g) - before[g] for g in before} == {"hour": 1, "day": 1}

    # B went quiet after one call: its windows still close with the watermark.
    assert row(w, "agent", "B", "hour", at(1, 9))["pane_timing"] == "ON_TIME"
    assert row(w, "skill", "sales", "day", at(1, 0))["calls"] == 1
    assert row(w, "skill", "billing", "day", at(1, 0))["calls"] == 4
    for value in published(w):
        schemas.validate("agent.scorecards", value)


def test_values_equal_an_independent_recomputation(world: tuple[str, World]) -> None:
    scores = [55.0, 61.5, 70.0, 88.0, 90.0, 99.5, 42.0]
    calls = [scored_call(f"c{i}", "A", at(3, 14, 5 * i), s, passed={"greeting": i % 2 == 0, "closing": i % 3 == 0},
                         dead_air_s=i * 0.5, hold_s=i * 2.0, talk=None if i == 2 else 1 + i / 10,
                         sentiment=None if i % 2 else i / 10 - 0.3)
             for i, s in enumerate(scores)]
    calls.append(calls[3])  # a replay of the same call counts once
    stream = TestStream().add_elements([arriving(c) for c in calls]).advance_watermark_to_infinity()
    run(stream, world)
    _, w = world
    got = row(w, "agent", "A", "hour", at(3, 14))
    assert got["calls"] == len(scores) and got["scored_calls"] == len(scores)
    assert got["score_mean"] == pytest.approx(statistics.mean(scores))
    assert (got["score_min"], got["score_max"]) == (min(scores), max(scores))
    assert got["score_p50"] == pytest.approx(float(np.percentile(scores, 50)))
    assert got["score_p90"] == pytest.approx(float(np.percentile(scores, 90)))
    assert got["criteria"]["greeting"] == {"passed": 4, "applicable": 7, "pass_rate": round(4 / 7, 4)}
    assert got["criteria"]["closing"] == {"passed": 3, "applicable": 7, "pass_rate": round(3 / 7, 4)}
    assert "empathy" not in got["criteria"]  # never applicable: no pass rate to speak of
    assert got["dead_air_total_s"] == pytest.approx(sum(i * 0.5 for i in range(7)))
    assert got["hold_total_s"] == pytest.approx(sum(i * 2.0 for i in range(7)))
    assert got["talk_listen_ratio_mean"] == pytest.approx(statistics.mean(1 + i / 10 for i in range(7) if i != 2), abs=1e-4)
    assert got["customer_sentiment_mean"] == pytest.approx(statistics.mean(i / 10 - 0.3 for i in range(0, 7, 2)), abs=1e-4)
    assert got["model_versions"] == ["sc-test"]
    # The analytics export carries every pane; the window's highest pane is the table's row.
    exported = [r for key, body in w.objects.items() if key.startswith("analytics/agent_scorecards/")
                for r in pq.read_table(io.BytesIO(body)).to_pylist()]
    hour_a = max((r for r in exported if (r["dimension_key"], r["granularity"]) == ("A", "hour")), key=lambda r: r["pane_index"])
    assert (hour_a["calls"], hour_a["score_p90"], dict(hour_a["criteria"])["greeting"]["passed"]) == (
        got["calls"], got["score_p90"], 4)
    assert hour_a["window_start"] == at(3, 14)


def test_an_open_window_is_written_early_and_then_on_time(world: tuple[str, World]) -> None:
    # Early firings run on processing time, which a TestStream on Prism does not drive for timers a DoFn sets from the
    # clock: a real unbounded source does, calls ending as they arrive, as in production.
    token, _ = world
    c = config(early_firing_s=1)
    start = time.time()

    def ending_now(tick: float) -> TimestampedValue:
        call = scored_call(f"e{int(float(tick) * 10)}", "A", datetime.fromtimestamp(float(tick), UTC), 70.0)
        return TimestampedValue(call, float(tick))

    options = PipelineOptions(streaming=True, prism_location=str(tools.go_binary("prism")))
    with TestPipeline(runner="PrismRunner", options=options) as p:
        _ = (p | PeriodicImpulse(start_timestamp=start, stop_timestamp=start + 6, fire_interval=0.5)
             | beam.Map(ending_now) | AgentScorecards(c, FakeClients(c, token)))
    _, w = world
    panes = [v for v in published(w) if v["dimension_key"] == "A" and v["granularity"] == "hour"]
    by_window: dict[str, list[dict[str, Any]]] = {}
    for value in panes:
        by_window.setdefault(value["window_start"], []).append(value)
    # An hour boundary may fall inside the run: the window holding most of the calls is the one to look at.
    busiest = max(by_window.values(), key=lambda values: max(v["calls"] for v in values))
    timings = [v["pane_timing"] for v in busiest]
    assert "EARLY" in timings and timings[-1] == "ON_TIME", timings
    assert [v["pane_index"] for v in busiest] == list(range(len(busiest)))
    early_calls = [v["calls"] for v in busiest if v["pane_timing"] == "EARLY"]
    assert early_calls == sorted(early_calls) and early_calls[0] < busiest[-1]["calls"]  # accumulating, before all came
    assert row(w, "agent", "A", "hour", datetime.fromisoformat(busiest[-1]["window_start"]))["calls"] == busiest[-1]["calls"]


def test_a_refused_table_write_is_counted_and_the_topic_still_gets_the_panes(world: tuple[str, World]) -> None:
    # A role without its grant on agent_scorecard must not stop the job (and with it the scoring of every call).
    _, w = world
    w.denied_tables.add("agent_scorecard")
    failures = prom.VIEW_WRITE_FAILURES.labels("agent_scorecard")
    before = failures._value.get()
    stream = TestStream().add_elements([arriving(scored_call("d1", "A", at(5, 9, 10), 80.0))]).advance_watermark_to_infinity()
    run(stream, world)
    assert w.scorecards == {}
    assert failures._value.get() - before >= 1
    assert {(v["dimension"], v["granularity"]) for v in published(w)} == {("agent", "hour"), ("agent", "day"),
                                                                          ("skill", "hour"), ("skill", "day")}
