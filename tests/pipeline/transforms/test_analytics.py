"""The Parquet export with no service: the row of a scored call, the files' bytes and names, and the windowed writes under
TestStream (on-time and late panes, one file per window, pane and shard) on Beam's DirectRunner and on Prism, into the fake S3."""

from __future__ import annotations

import dataclasses
import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from pydantic import ValidationError

from ccas.stack import tools
from pipeline import metrics as prom
from pipeline.build import build_pipeline
from pipeline.model import ScoredCall, StoredAudio
from pipeline.settings import PipelineSettings
from pipeline.transforms.analytics import (
    SCORING_RESULTS_SCHEMA,
    ExportParquet,
    ExportScoringResults,
    object_key,
    parquet_bytes,
    scoring_result_row,
    shard_of,
)
from tests.pipeline.transforms.fakes import FakeClients, World, drop_world, new_world
from tests.pipeline.transforms.test_stages_unit import PII_HMAC_KEY, enriched, job_config

REPO = Path(__file__).resolve().parents[3]
CUSTOMER_NUMBER = "0901234567"  # the other party of test_stages_unit.event
HOUR = 3600
WINDOW_START = 1_800_000_000 - 1_800_000_000 % HOUR  # 2027-01-15T08:00:00Z
KEY = re.compile(r"^analytics/(?P<table>\w+)/date=(?P<date>\d{4}-\d\d-\d\d)/(?P<start>\d{8}T\d{6}Z)-(?P<end>\d{8}T\d{6}Z)"
                 r"-pane(?P<pane>\d+)-shard(?P<shard>\d+)of(?P<shards>\d+)-[0-9a-f]{12}\.parquet$")
MINI_SCHEMA = pa.schema([pa.field("call_id", pa.string(), nullable=False), pa.field("score", pa.float64())])


def scored_call(call_id: str = "1001", score: float | None = 72.5, metrics: dict[str, Any] | None = None) -> ScoredCall:
    audio = StoredAudio(call=enriched(call_id, 1), s3_key=f"raw/2026/11/25/{call_id}.wav", s3_version_id=None, sha256="0" * 64,
                        size_bytes=100, codec="ulaw", sample_rate=8000, channels=1, duration_s=106.0,
                        stored_at="2026-11-25T10:00:00+00:00")
    breakdown = [{"criterion": "greeting", "passed": True, "points": 20.0},
                 {"criterion": "hold_etiquette", "passed": None, "applicable": False},
                 {"criterion": "no_dead_air", "passed": False, "points": 0.0}] if score is not None else []
    answer = {"score": score, "metrics": metrics if metrics is not None else {
        "dead_air_total_s": 4, "hold_total_s": 12.5, "talk_listen_ratio": 1.25, "customer_sentiment_mean": -0.1,
        "speech_total_s": 90.0}}
    return ScoredCall(audio=audio, score=score, scorable=score is not None, reason=None if score is not None else "silent: 0 s",
                      model_version="card-3", latency_ms=900, breakdown=breakdown, response=answer,
                      scored_at="2026-11-25T10:00:14+00:00")


@pytest.fixture
def fake() -> Iterator[tuple[Any, World]]:
    token, world = new_world()
    config = dataclasses.replace(job_config(), analytics_window_s=HOUR, analytics_allowed_lateness_s=HOUR, analytics_shards=2)
    try:
        yield config, FakeClients(config, token), world
    finally:
        drop_world(token)


def read_rows(body: bytes) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(body)).to_pylist()


# -- the row and the file ---------------------------------------------------------------------------------------------------


def test_a_scored_call_becomes_one_row_of_the_documented_schema() -> None:
    row = scoring_result_row(scored_call())
    assert list(row) == SCORING_RESULTS_SCHEMA.names
    assert row["call_id"] == "1001" and row["agent_id"] == "1234" and row["skill"] == "billing"
    assert row["customer_key"].startswith("hk1:")
    assert row["started_at"] == datetime(2026, 11, 25, 9, 58, tzinfo=UTC)
    assert row["ended_at"] == datetime(2026, 11, 25, 9, 59, 46, tzinfo=UTC)
    assert (row["score"], row["scorable"], row["reason"], row["model_version"]) == (72.5, True, None, "card-3")
    assert row["criteria"] == {"greeting": True, "hold_etiquette": None, "no_dead_air": False}
    assert (row["dead_air_total_s"], row["hold_total_s"], row["talk_listen_ratio"], row["customer_sentiment_mean"]) == \
        (4.0, 12.5, 1.25, -0.1)
    assert row["end_to_end_ms"] == 28_000  # 09:59:46 → 10:00:14
    assert row["scored_at"] == datetime(2026, 11, 25, 10, 0, 14, tzinfo=UTC)


def test_an_unscorable_call_keeps_its_reason_and_null_measures() -> None:
    row = scoring_result_row(scored_call(score=None, metrics={}))
    assert (row["score"], row["scorable"], row["reason"], row["criteria"]) == (None, False, "silent: 0 s", {})
    assert row["talk_listen_ratio"] is None and row["customer_sentiment_mean"] is None


def test_the_file_has_the_schema_and_never_the_customer_number() -> None:
    call = scored_call()
    # The worst case: the call still carrying the number, as the calls.raw value does before enrich empties it.
    leaky = dataclasses.replace(call.audio.call, raw={**call.audio.call.raw, "other_parties": CUSTOMER_NUMBER})
    call = dataclasses.replace(call, audio=dataclasses.replace(call.audio, call=leaky))
    body = parquet_bytes([scoring_result_row(call), scoring_result_row(scored_call("1002", score=None, metrics={}))],
                         SCORING_RESULTS_SCHEMA)
    table = pq.read_table(io.BytesIO(body))
    assert table.schema.equals(SCORING_RESULTS_SCHEMA, check_metadata=False)
    assert table.schema.field("customer_key").metadata[b"description"].startswith(b"keyed hash")
    assert table.column("scored_at").type == pa.timestamp("us", tz="UTC")
    assert [r["call_id"] for r in table.to_pylist()] == ["1001", "1002"]
    assert CUSTOMER_NUMBER.encode() not in body
    assert PII_HMAC_KEY.encode() not in body


def test_times_given_as_text_are_stored_as_timestamps_and_unknown_fields_are_refused() -> None:
    schema = pa.schema([pa.field("agent_id", pa.string()), pa.field("window_start", pa.timestamp("us", tz="UTC"))])
    body = parquet_bytes([{"agent_id": "1234", "window_start": "2026-11-25T09:00:00Z"}], schema)
    assert read_rows(body) == [{"agent_id": "1234", "window_start": datetime(2026, 11, 25, 9, tzinfo=UTC)}]
    with pytest.raises(ValueError, match="row fields not in the schema: customer_number"):
        parquet_bytes([{"agent_id": "1234", "customer_number": CUSTOMER_NUMBER}], schema)


def test_the_name_says_table_date_window_pane_and_shard_and_follows_the_bytes() -> None:
    start, end = datetime(2026, 11, 25, 23, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    key = object_key("scoring_results", start, end, 1, 0, 2, b"rows")
    assert KEY.match(key).groupdict() == {"table": "scoring_results", "date": "2026-11-25", "start": "20261125T230000Z",
                                          "end": "20261126T000000Z", "pane": "1", "shard": "0", "shards": "2"}
    assert object_key("scoring_results", start, end, 1, 0, 2, b"rows") == key  # a retried write keeps its name
    assert object_key("scoring_results", start, end, 1, 0, 2, b"other rows") != key  # other rows never overwrite it


def test_a_table_name_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValueError, match="lower-case letters"):
        ExportParquet(job_config(), "../raw", MINI_SCHEMA)


# -- windows, panes and shards under TestStream ------------------------------------------------------------------------------


def row(n: int) -> dict[str, Any]:
    return {"call_id": f"call-{n}", "score": float(n)}


def at(n: int, seconds: int) -> TimestampedValue:
    return TimestampedValue(row(n), WINDOW_START + seconds)


@pytest.mark.parametrize("runner", ["BundleBasedDirectRunner", "PrismRunner"])
def test_on_time_and_late_rows_make_one_file_per_window_pane_and_shard(fake: tuple[Any, Any, World], runner: str) -> None:
    config, clients, world = fake
    stream = (TestStream()
              .add_elements([at(n, 60 * n) for n in range(8)])  # 8 calls of the 08:00 window
              .add_elements([at(20, HOUR + 10), at(21, HOUR + 20)])  # 2 of the 09:00 window
              .advance_watermark_to(WINDOW_START + HOUR + 1)  # 08:00 closes: its on-time panes fire
              .add_elements([at(30, 100)])  # late for 08:00, within the allowed lateness
              .advance_watermark_to(WINDOW_START + 3 * HOUR + 1)  # 09:00 closes; 08:00 is past its lateness
              .add_elements([at(40, 200)])  # too late: dropped
              .advance_watermark_to_infinity())
    options = PipelineOptions(streaming=True, **({"prism_location": str(tools.go_binary("prism"))} if runner == "PrismRunner"
                                                   else {}))
    with TestPipeline(runner=runner, options=options) as p:
        _ = p | stream | ExportParquet(config, "calls_test", MINI_SCHEMA, clients=clients)

    files = {key: KEY.match(key).groupdict() for key in world.objects}
    assert all(files.values()), sorted(world.objects)
    rows = {key: read_rows(body) for key, body in world.objects.items()}
    exported = sorted(r["call_id"] for file_rows in rows.values() for r in file_rows)
    assert exported == sorted([f"call-{n}" for n in (*range(8), 20, 21, 30)])  # each once; call-40 came too late
    panes = Counter((f["start"], f["pane"], f["shard"]) for f in files.values())
    assert set(panes.values()) == {1}, "one file per window, pane and shard"
    on_time = {key for key, f in files.items() if f["start"] == "20270115T080000Z" and f["pane"] == "0"}
    assert len(on_time) == 2 and sum(len(rows[key]) for key in on_time) == 8, "8 calls, 2 shards: 2 files, not 8"
    late = [key for key, f in files.items() if f["pane"] != "0"]
    assert [(files[key]["start"], files[key]["pane"]) for key in late] == [("20270115T080000Z", "1")]
    assert [r["call_id"] for r in rows[late[0]]] == ["call-30"]  # a late pane holds only the new rows
    assert world.object_args[late[0]]["Metadata"]["pane-timing"] == "LATE"
    assert {f["date"] for f in files.values()} == {"2027-01-15"} and {f["shards"] for f in files.values()} == {"2"}
    for key, args in world.object_args.items():
        assert args["ServerSideEncryption"] == "AES256" and args["ContentType"] == "application/vnd.apache.parquet", key
        assert args["Metadata"]["rows"] == str(len(rows[key]))


def test_scored_calls_are_exported_as_scoring_results(fake: tuple[Any, Any, World]) -> None:
    config, clients, world = fake
    calls = [scored_call("1001"), scored_call("1002", score=64.0), scored_call("1003", score=None, metrics={})]
    ended = int(datetime(2026, 11, 25, 9, 59, 46, tzinfo=UTC).timestamp())
    with TestPipeline(runner="BundleBasedDirectRunner") as p:
        _ = (p | beam.Create([TimestampedValue(call, ended) for call in calls])
             | ExportScoringResults(config, clients))
    assert all(key.startswith("analytics/scoring_results/date=2026-11-25/20261125T090000Z-20261125T100000Z-pane0-")
               for key in world.objects), sorted(world.objects)
    exported = {r["call_id"]: r for body in world.objects.values() for r in read_rows(body)}
    assert {call_id: r["score"] for call_id, r in exported.items()} == {"1001": 72.5, "1002": 64.0, "1003": None}
    assert exported["1001"]["criteria"] == [("greeting", True), ("hold_etiquette", None), ("no_dead_air", False)]


def test_a_refused_write_is_counted_and_skipped_and_never_fails_the_job(fake: tuple[Any, Any, World]) -> None:
    # A missing grant on analytics/ (seen: AccessDenied) failed every bundle of the branch and with it the whole job, so no
    # call was scored until someone fixed the policy. The export is a view of scoring_result: it falls behind, the calls go on.
    config, clients, world = fake
    world.denied_prefixes.add("analytics/scoring_results/")
    failures = prom.VIEW_WRITE_FAILURES.labels("analytics/scoring_results")
    before = failures._value.get()
    ended = int(datetime(2026, 11, 25, 9, 59, 46, tzinfo=UTC).timestamp())
    calls = [scored_call(call_id) for call_id in ("2001", "2002", "2003", "2004")]
    with TestPipeline(runner="BundleBasedDirectRunner") as p:
        _ = p | beam.Create([TimestampedValue(call, ended) for call in calls]) | ExportScoringResults(config, clients)
    assert world.objects == {}
    shards = {shard_of(scoring_result_row(call), "call_id", config.analytics_shards) for call in calls}
    assert failures._value.get() - before == len(shards)  # one file per shard, each refused


# -- the wiring and the settings --------------------------------------------------------------------------------------------


def _stages(config: Any) -> set[str]:
    p = beam.Pipeline()
    build_pipeline(p, config)
    return {transform.unique_name for transform in p.to_runner_api().components.transforms.values()}


def test_the_pipeline_exports_scoring_results_unless_turned_off() -> None:
    assert "ExportScoringResults" in _stages(job_config())
    assert "ExportScoringResults" not in _stages(dataclasses.replace(job_config(), analytics_export=False))


@pytest.mark.parametrize("window_s", [90, 7 * 60, 86400 + 60])
def test_a_window_must_be_whole_minutes_that_divide_a_day(window_s: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CCAS_KAFKA_BOOTSTRAP": "k:9092", "CCAS_DATABASE_URL": "postgresql://x@h/db", "CCAS_S3_BUCKET": "b",
                        "CCAS_AVAYA_URL": "http://a", "CCAS_AVAYA_USER": "u", "CCAS_SCORING_URL": "http://s",
                        "CCAS_PII_HMAC_KEY": PII_HMAC_KEY}.items():
        monkeypatch.setenv(name, value)
    assert PipelineSettings(analytics_window_s=900).analytics_window_s == 900
    with pytest.raises(ValidationError, match="analytics_window_s"):
        PipelineSettings(analytics_window_s=window_s)


def test_every_column_is_documented() -> None:
    text = (REPO / "docs" / "analytics.md").read_text()
    undocumented = [name for name in SCORING_RESULTS_SCHEMA.names if f"| `{name}` |" not in text]
    assert not undocumented, f"docs/analytics.md lacks the scoring_results columns {undocumented}"
