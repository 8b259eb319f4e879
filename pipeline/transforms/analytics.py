"""ExportParquet: pipeline rows written to S3 as Parquet files for analysts, one file per event-time window, pane and shard.

Layout (docs/analytics.md), date, start and end being the window's in UTC:

    s3://<bucket>/analytics/<table>/date=YYYY-MM-DD/<start>-<end>-pane<i>-shard<k>of<n>-<digest>.parquet

A window fires once when the watermark passes its end (pane 0); a row that arrives later, within the allowed lateness, fires
another pane of its window, written as one more file with the next pane index. Files are only ever added, never rewritten: the
digest (of the file's bytes) keeps the name unique when a restarted job, whose windows start again at pane 0, writes a second
pane 0 of a window, while a retried write of the same rows reuses its name and puts the same bytes again instead of adding a copy.

Event time is the element's timestamp, Kafka's CreateTime of the calls.raw message, which the poller sets to the call's end. It
is not re-stamped from `ended_at`: a requeued call is republished, days later perhaps, with a new CreateTime, and stamped with
its old end it would arrive that far behind the watermark and be dropped as too late.

Why a GroupByKey and our own PUT rather than Beam's file sinks (fileio.WriteToFiles): Beam's S3 filesystem (apache_beam.io.aws)
reaches our endpoint and verifies it with our CA file (--s3_endpoint_url, --s3_verify), but it sends no server-side-encryption
header, neither on its uploads nor on the copy that moves a finished temporary file into place, so the bucket policy (deny PUTs
without SSE) refuses every file; and it takes its keys as pipeline options, which the runner's UI and a command line show. The
windowing and triggering are Beam's all the same: WindowInto and a GroupByKey per (window, shard) gather each pane's rows, and
core.s3's client (TLS verified with CCAS_S3_CA_FILE, SSE-S3 on every PUT, keys from the environment) writes them as one object.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics import Metrics
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import PaneInfoTiming

from pipeline.clients import StageClients
from pipeline.io.resilience import S3, hold
from pipeline.model import ScoredCall, parse_iso
from pipeline.options import JobConfig
from pipeline.transforms._bundles import close_quietly, view_write_failed

ANALYTICS_PREFIX = "analytics/"
SCORING_RESULTS = "scoring_results"
AGENT_SCORECARDS = "agent_scorecards"  # the scorecard aggregation's rows, exported by the same transform
TABLES = (SCORING_RESULTS, AGENT_SCORECARDS)
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"
SSE = "AES256"
TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
UTC_MICROS = pa.timestamp("us", tz="UTC")


def column(name: str, type_: pa.DataType, description: str, nullable: bool = True) -> pa.Field:
    """A schema field whose description travels inside every file (Parquet key-value metadata of the Arrow schema)."""
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


# One row per scored call. The customer's number never appears: only customer_key, its keyed hash (core.pii).
SCORING_RESULTS_SCHEMA = pa.schema([
    column("call_id", pa.string(), "the recorder's call id", nullable=False),
    column("model_version", pa.string(), "scorecard/model version that scored the call", nullable=False),
    column("agent_id", pa.string(), "the agent's id on the recorder"),
    column("skill", pa.string(), "the skill (queue) the call came through"),
    column("customer_key", pa.string(),
           "keyed hash of the customer's number (hk1:…): groups a customer's calls; never the number"),
    column("started_at", UTC_MICROS, "call start (UTC)"),
    column("ended_at", UTC_MICROS, "call end (UTC)"),
    column("duration_s", pa.float64(), "call duration the recorder reported (s)"),
    column("scorable", pa.bool_(), "false when the recording could not be scored (too short, silent, no agent speech)",
           nullable=False),
    column("score", pa.float64(), "0–100; null when not scorable"),
    column("reason", pa.string(), "why the call was not scorable; null when scored"),
    column("criteria", pa.map_(pa.string(), pa.bool_()), "criterion id → passed (null: the criterion did not apply)"),
    column("dead_air_total_s", pa.float64(), "stretches of 3 s or more where nobody speaks and the line is quiet (s)"),
    column("hold_total_s", pa.float64(), "time on hold: music or tones without speech (s)"),
    column("talk_listen_ratio", pa.float64(), "agent talk time / customer talk time (null: speakers not told apart)"),
    column("customer_sentiment_mean", pa.float64(), "mean sentiment of the customer's turns, -1…1 (needs a transcript)"),
    column("end_to_end_ms", pa.int64(), "call end to scored (ms)", nullable=False),
    column("scored_at", UTC_MICROS, "when the pipeline received the score (UTC)", nullable=False),
])

# One row per firing (pane) of a scorecard window (pipeline/transforms/scorecard.py); a window's value is its highest pane.
_CRITERION_COUNTS = pa.struct([("passed", pa.int64()), ("applicable", pa.int64()), ("pass_rate", pa.float64())])
AGENT_SCORECARDS_SCHEMA = pa.schema([
    column("dimension", pa.string(), "what the window is keyed by: agent or skill", nullable=False),
    column("dimension_key", pa.string(), "the agent id or the skill", nullable=False),
    column("granularity", pa.string(), "hour or day (of the configured time zone)", nullable=False),
    column("window_start", UTC_MICROS, "window start, inclusive (UTC; a local midnight for days)", nullable=False),
    column("window_end", UTC_MICROS, "window end, exclusive (UTC)", nullable=False),
    column("time_zone", pa.string(), "the zone whose hours and days the windows follow", nullable=False),
    column("pane_index", pa.int64(), "0, 1, 2… per firing of the window: the highest is the window's value", nullable=False),
    column("pane_timing", pa.string(), "EARLY, ON_TIME or LATE", nullable=False),
    column("calls", pa.int64(), "calls with a result in the window (a call counted once)", nullable=False),
    column("scored_calls", pa.int64(), "of those, calls with a score", nullable=False),
    column("score_mean", pa.float64(), "mean score of the scored calls"),
    column("score_min", pa.float64(), "lowest score"),
    column("score_max", pa.float64(), "highest score"),
    column("score_p50", pa.float64(), "median score (linear interpolation, as percentile_cont)"),
    column("score_p90", pa.float64(), "90th percentile of the scores"),
    column("criteria", pa.map_(pa.string(), _CRITERION_COUNTS),
           "criterion id → calls it applied to, how many passed, pass rate"),
    column("dead_air_total_s", pa.float64(), "dead air over the window's calls (s)"),
    column("hold_total_s", pa.float64(), "hold time over the window's calls (s)"),
    column("talk_listen_ratio_mean", pa.float64(), "mean talk/listen ratio of the calls that have one"),
    column("customer_sentiment_mean", pa.float64(), "mean customer sentiment of the calls that have one"),
    column("model_versions", pa.list_(pa.string()), "the model versions that scored the window's calls"),
])

# Metrics of the scoring service's answer (response["metrics"]) exported as columns of their own.
EXPORTED_METRICS = ("dead_air_total_s", "hold_total_s", "talk_listen_ratio", "customer_sentiment_mean")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def scoring_result_row(scored: ScoredCall) -> dict[str, Any]:
    """The scoring_results row of one scored call (SCORING_RESULTS_SCHEMA)."""
    call = scored.audio.call
    metrics = scored.response.get("metrics") or {}
    return {
        "call_id": scored.call_id, "model_version": scored.model_version, "agent_id": call.agent_id, "skill": call.skill,
        "customer_key": call.customer_key, "started_at": parse_iso(call.started_at), "ended_at": parse_iso(call.ended_at),
        "duration_s": _number(call.duration), "scorable": scored.scorable, "score": _number(scored.score),
        "reason": scored.reason,
        "criteria": {item["criterion"]: item.get("passed") for item in scored.breakdown if item.get("criterion")},
        **{name: _number(metrics.get(name)) for name in EXPORTED_METRICS},
        "end_to_end_ms": scored.end_to_end_ms, "scored_at": parse_iso(scored.scored_at),
    }


def _cell(value: Any, type_: pa.DataType) -> Any:
    # Rows built elsewhere (the scorecards) may carry ISO strings for their times: one conversion here for every table.
    if isinstance(value, str) and pa.types.is_timestamp(type_):
        return parse_iso(value)
    return value


def parquet_bytes(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    """One Parquet file (snappy, the codec every reader in docs/analytics.md has) of `rows`, columns exactly `schema`'s."""
    unknown = sorted({key for row in rows for key in row} - set(schema.names))
    if unknown:  # a column the schema lacks would be dropped without a word: refuse the row instead
        raise ValueError(f"row fields not in the schema: {', '.join(unknown)}")
    columns = {field.name: [_cell(row.get(field.name), field.type) for row in rows] for field in schema}
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _basic(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def object_key(table: str, start: datetime, end: datetime, pane_index: int, shard: int, shards: int, body: bytes) -> str:
    """Where one pane of one shard of one window goes; `start` and `end` in UTC."""
    digest = hashlib.sha256(body).hexdigest()[:12]
    return (f"{ANALYTICS_PREFIX}{table}/date={start:%Y-%m-%d}/"
            f"{_basic(start)}-{_basic(end)}-pane{pane_index}-shard{shard}of{shards}-{digest}.parquet")


def _row_order(row: dict[str, Any]) -> str:
    # The same rows give the same bytes, hence the same name, whatever order the runner hands them over in.
    return json.dumps(row, sort_keys=True, default=str)


def shard_of(row: dict[str, Any], shard_by: str, shards: int) -> int:
    # crc32, not hash(): Python salts str hashes per process, and every worker must send a row to the same shard.
    return zlib.crc32(str(row.get(shard_by)).encode()) % shards


def _keyed_by_shard(row: dict[str, Any], shard_by: str, shards: int) -> tuple[int, dict[str, Any]]:
    return shard_of(row, shard_by, shards), row


class _WriteParquetFn(beam.DoFn):
    """(shard, rows of one pane) → the key of the Parquet object written for them."""

    def __init__(self, clients: StageClients, table: str, schema: pa.Schema, shards: int) -> None:
        self.clients = clients
        self.table = table
        self.schema = schema
        self.shards = shards
        self.files = Metrics.counter("analytics", f"{table}_files_written")
        self.late_files = Metrics.counter("analytics", f"{table}_late_files_written")
        self.rows = Metrics.counter("analytics", f"{table}_rows_written")

    def setup(self) -> None:
        self.s3 = self.clients.analytics_s3()

    def teardown(self) -> None:
        close_quietly(self, "s3")

    def process(self, element: tuple[int, Iterable[dict[str, Any]]], pane_window: Any = beam.DoFn.WindowParam,
                pane: Any = beam.DoFn.PaneInfoParam) -> Iterator[str]:
        shard, grouped = element
        rows = sorted(grouped, key=_row_order)
        if not rows:
            return
        body = parquet_bytes(rows, self.schema)
        start, end = pane_window.start.to_utc_datetime(has_tz=True), pane_window.end.to_utc_datetime(has_tz=True)
        key = object_key(self.table, start, end, pane.index, shard, self.shards, body)
        timing = PaneInfoTiming.to_string(pane.timing)
        config = self.clients.config
        metadata = {"window-start": start.isoformat(), "window-end": end.isoformat(), "pane-index": str(pane.index),
                    "pane-timing": timing, "rows": str(len(rows))}
        try:
            hold(S3, lambda: self.s3.put_object(Bucket=config.s3_bucket, Key=key, Body=body, ServerSideEncryption=SSE,
                                                ContentType=PARQUET_CONTENT_TYPE, Metadata=metadata),
                 config.outage_budget_s, config.outage_backoff_cap_s)
        except Exception as error:  # refused for good (or down past the budget): the view is behind, the calls go on
            view_write_failed(f"analytics/{self.table}", f"{key} ({len(rows)} rows)", error)
            return
        self.files.inc()
        self.rows.inc(len(rows))
        if pane.timing == PaneInfoTiming.LATE:
            self.late_files.inc()
        yield key


class ExportParquet(beam.PTransform):
    """PCollection of row dicts → PCollection of the S3 keys of the Parquet files written (one per window, pane and shard).

    Args:
        config: the bucket, the window (`analytics_window_s`), the allowed lateness and the number of shards.
        table: the folder under analytics/ (scoring_results, agent_scorecards, …).
        schema: the files' exact columns; a row field outside it fails the write.
        shard_by: the row field whose hash picks the shard (with one shard, the default, it does not matter).
        clients: where the S3 client comes from; None: the real one of `config`.

    A write that finds S3 unavailable is retried for up to the outage budget; any other failure fails the bundle, which the
    runner retries (the name, hence the object, stays the same).
    """

    def __init__(self, config: JobConfig, table: str, schema: pa.Schema, *, shard_by: str = "call_id",
                 clients: StageClients | None = None) -> None:
        super().__init__()
        if not TABLE_NAME.match(table):
            raise ValueError(f"table {table!r}: lower-case letters, digits and _ only (it is a folder and a SQL view)")
        self.config = config
        self.table = table
        self.schema = schema
        self.shard_by = shard_by
        self.clients = clients or StageClients(config)

    def expand(self, rows: Any) -> Any:
        c = self.config
        return (
            rows
            | "Window" >> beam.WindowInto(
                window.FixedWindows(c.analytics_window_s),
                # On time: one pane when the watermark passes the window's end. Late: one more pane per late arrival; late
                # rows are rare (a call is in flight, holding the watermark back, until it is scored), so this adds few files.
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,  # a late pane holds only the new rows: no duplicates
                allowed_lateness=Duration(seconds=c.analytics_allowed_lateness_s))
            | "KeyByShard" >> beam.Map(_keyed_by_shard, self.shard_by, c.analytics_shards).with_output_types(
                beam.typehints.Tuple[int, beam.typehints.Dict[str, Any]])
            | "GroupPerWindowAndShard" >> beam.GroupByKey()
            | "WriteParquet" >> beam.ParDo(_WriteParquetFn(self.clients, self.table, self.schema, c.analytics_shards))
        )


class ExportScoringResults(beam.PTransform):
    """ScoredCall → S3 keys of the scoring_results Parquet files (scoring_result_row, SCORING_RESULTS_SCHEMA)."""

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients

    def expand(self, scored: Any) -> Any:
        return (
            scored
            | "ToRow" >> beam.Map(scoring_result_row)
            | "Export" >> ExportParquet(self.config, SCORING_RESULTS, SCORING_RESULTS_SCHEMA, clients=self.clients)
        )
