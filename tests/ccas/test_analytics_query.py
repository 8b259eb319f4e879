"""`ccas analytics query` against moto's S3 server (no stack): the views, the date filter, the output formats and the errors.
tests/ccas/test_analytics_stack.py runs it on the real stack (HTTPS with the stack's CA, files the pipeline's identity wrote)."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from statistics import mean
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from ccas import analytics
from ccas.analytics import AnalyticsQuerySettings
from core.s3 import s3_client
from pipeline.transforms.analytics import SCORING_RESULTS_SCHEMA, object_key, parquet_bytes

BUCKET = "ccas-audio-test"
AVERAGE_SQL = "select agent_id, avg(score) as average, count(*) as calls from scoring_results group by agent_id order by agent_id"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def result_row(call_id: str, agent_id: str, score: float | None, ended_at: datetime) -> dict[str, Any]:
    return {"call_id": call_id, "model_version": "card-3", "agent_id": agent_id, "scorable": score is not None, "score": score,
            "ended_at": ended_at, "criteria": {"greeting": score is not None and score > 50}, "end_to_end_ms": 30_000,
            "scored_at": ended_at}


ROWS = {  # two days, two windows on the first; each list is one file
    (datetime(2026, 11, 24, 9, tzinfo=UTC), 0): [result_row("a1", "1001", 80.0, datetime(2026, 11, 24, 9, 5, tzinfo=UTC)),
                                                 result_row("a2", "1002", 60.0, datetime(2026, 11, 24, 9, 7, tzinfo=UTC))],
    (datetime(2026, 11, 24, 9, tzinfo=UTC), 1): [result_row("a3", "1001", 70.0, datetime(2026, 11, 24, 9, 9, tzinfo=UTC))],
    (datetime(2026, 11, 24, 10, tzinfo=UTC), 0): [result_row("a4", "1002", None, datetime(2026, 11, 24, 10, 1, tzinfo=UTC))],
    (datetime(2026, 11, 25, 8, tzinfo=UTC), 0): [result_row("b1", "1001", 50.0, datetime(2026, 11, 25, 8, 30, tzinfo=UTC)),
                                                 result_row("b2", "1003", 90.5, datetime(2026, 11, 25, 8, 40, tzinfo=UTC))],
}


@pytest.fixture(scope="module")
def settings() -> Iterator[AnalyticsQuerySettings]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = s3_client(endpoint, "testing", "testing")
    client.create_bucket(Bucket=BUCKET)
    for (start, pane), rows in ROWS.items():
        body = parquet_bytes(rows, SCORING_RESULTS_SCHEMA)
        end = start.replace(hour=start.hour + 1)
        client.put_object(Bucket=BUCKET, Key=object_key("scoring_results", start, end, pane, 0, 1, body), Body=body,
                          ServerSideEncryption="AES256")
    try:
        yield AnalyticsQuerySettings(s3_endpoint=endpoint, s3_bucket=BUCKET, s3_access_key="testing", s3_secret_key="testing")
    finally:
        server.stop()


def run(settings: AnalyticsQuerySettings, sql: str, output: str = "json", since: date | None = None,
        until: date | None = None) -> tuple[int, str]:
    out = io.StringIO()
    status = analytics.query(settings, sql, since, until, output, out)
    return status, out.getvalue()


def expected_averages(day: date | None = None) -> list[dict[str, Any]]:
    rows = [r for rows in ROWS.values() for r in rows if day is None or r["ended_at"].date() == day]
    agents = sorted({r["agent_id"] for r in rows})
    scored = {agent: [r["score"] for r in rows if r["agent_id"] == agent and r["score"] is not None] for agent in agents}
    return [{"agent_id": agent, "average": mean(scored[agent]) if scored[agent] else None,
             "calls": sum(r["agent_id"] == agent for r in rows)} for agent in agents]


def test_the_average_per_agent_equals_the_one_computed_from_the_rows(settings: AnalyticsQuerySettings) -> None:
    status, text = run(settings, AVERAGE_SQL)
    assert status == 0
    assert json.loads(text) == expected_averages()


def test_since_and_until_read_only_those_date_partitions(settings: AnalyticsQuerySettings) -> None:
    status, text = run(settings, AVERAGE_SQL, since=date(2026, 11, 25), until=date(2026, 11, 25))
    assert (status, json.loads(text)) == (0, expected_averages(date(2026, 11, 25)))
    status, text = run(settings, "select min(\"date\") as first, max(\"date\") as last, count(*) as n from scoring_results",
                       until=date(2026, 11, 24))
    assert (status, json.loads(text)) == (0, [{"first": "2026-11-24", "last": "2026-11-24", "n": 4}])


def test_the_columns_keep_their_types(settings: AnalyticsQuerySettings) -> None:
    status, text = run(settings, "select ended_at, criteria['greeting'] as greeting, scorable from scoring_results "
                                 "where call_id = 'a1'", output="csv")
    assert status == 0
    assert list(csv.reader(io.StringIO(text))) == [["ended_at", "greeting", "scorable"],
                                                   ["2026-11-24 09:05:00+00:00", "True", "True"]]


def test_the_table_is_aligned_with_nulls_shown(settings: AnalyticsQuerySettings) -> None:
    status, text = run(settings, AVERAGE_SQL.replace("order by agent_id", "order by agent_id desc"), output="table",
                       since=date(2026, 11, 24), until=date(2026, 11, 24))
    assert status == 0
    assert text.splitlines() == [
        "agent_id  average  calls",
        "--------  -------  -----",
        "1002           60      2",
        "1001           75      2",
        "(2 rows)",
    ]
    status, text = run(settings, "select score from scoring_results where call_id = 'a4'", output="table")
    assert text.splitlines()[2].strip() == "NULL"


def test_bad_sql_is_named_as_such(settings: AnalyticsQuerySettings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "selec agent_id from scoring_results")[0] == analytics.BAD_SQL
    assert run(settings, "select no_such_column from scoring_results")[0] == analytics.BAD_SQL
    assert run(settings, "select * from no_such_table")[0] == analytics.BAD_SQL
    assert capsys.readouterr().err.count("ccas analytics: bad SQL:") == 3


def test_a_table_without_files_says_so(settings: AnalyticsQuerySettings, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(settings, "select count(*) from agent_scorecards")[0] == analytics.FAILED
    assert f"no Parquet files under s3://{BUCKET}/analytics/agent_scorecards/ yet" in capsys.readouterr().err
    assert run(settings, "select count(*) from scoring_results", since=date(2026, 12, 1))[0] == analytics.FAILED
    assert f"no Parquet files under s3://{BUCKET}/analytics/scoring_results/ for the dates 2026-12-01 to …" in \
        capsys.readouterr().err


def test_wrong_keys_fail_with_the_location(settings: AnalyticsQuerySettings, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = settings.model_copy(update={"s3_bucket": "no-such-bucket"})
    assert run(wrong, AVERAGE_SQL)[0] == analytics.FAILED
    assert "ccas analytics: cannot read s3://no-such-bucket/analytics/" in capsys.readouterr().err


def test_the_extension_loads_only_with_its_signature_checked() -> None:
    import duckdb

    connection = duckdb.connect(config={"allow_unsigned_extensions": False})
    connection.execute(f"LOAD '{analytics.httpfs_extension()}'")
    assert connection.execute("select loaded from duckdb_extensions() where extension_name = 'httpfs'").fetchone() == (True,)


def test_the_command_line(settings: AnalyticsQuerySettings, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"CCAS_S3_ENDPOINT": settings.s3_endpoint, "CCAS_S3_BUCKET": BUCKET, "CCAS_S3_ACCESS_KEY": "testing",
                        "CCAS_S3_SECRET_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    assert analytics.main(["query", "--format", "json", "--since", "2026-11-25", AVERAGE_SQL]) == 0
    assert json.loads(capsys.readouterr().out) == expected_averages(date(2026, 11, 25))
    with pytest.raises(SystemExit):
        analytics.main(["query", "--since", "2026-11-26", "--until", "2026-11-25", "select 1"])

