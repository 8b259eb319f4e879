"""The Parquet export and `ccas analytics query` on the real stack: the pipeline's S3 identity writes the files over HTTPS with
SSE, and the console's read-only identity queries them; the answer equals the same SQL over the same rows in memory."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

import apache_beam as beam
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.transforms.window import TimestampedValue

from ccas import settings
from ccas.apps import ccas_command
from core.s3 import s3_client
from pipeline.clients import StageClients
from pipeline.transforms.analytics import SCORING_RESULTS, SCORING_RESULTS_SCHEMA, ExportParquet, shard_of
from tests.pipeline.transforms.test_stages_unit import job_config

pytestmark = pytest.mark.integration

CALLS_PER_AGENT = 4


def rows_of_one_run(run: str, day: datetime) -> list[dict[str, Any]]:
    """Three agents of this run (ids unique to it), 12 calls 37 minutes apart from `day` on (seven windows), one unscorable."""
    rows = []
    for a in range(3):
        for c in range(CALLS_PER_AGENT):
            ended = day + timedelta(minutes=37 * (a * CALLS_PER_AGENT + c))
            score = None if (a, c) == (2, 0) else float(40 + 7 * a + 11 * c) + 0.25
            rows.append({"call_id": f"{run}-{a}-{c}", "model_version": "card-3", "agent_id": f"{run}-agent{a}",
                         "scorable": score is not None, "score": score, "ended_at": ended, "end_to_end_ms": 20_000,
                         "scored_at": ended + timedelta(seconds=20), "criteria": {"greeting": c % 2 == 0}})
    return rows


def our_files(client: Any, bucket: str, day: datetime, run: str) -> dict[str, list[dict[str, Any]]]:
    """The files under `day`'s partition that hold this run's rows (earlier runs of the test may have left theirs)."""
    found = {}
    listing = client.list_objects_v2(Bucket=bucket, Prefix=f"analytics/{SCORING_RESULTS}/date={day:%Y-%m-%d}/")
    for item in listing.get("Contents", []):
        body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        rows = pq.read_table(io.BytesIO(body)).to_pylist()
        if any(row["call_id"].startswith(f"{run}-") for row in rows):
            found[item["Key"]] = rows
    return found


def test_exported_files_are_encrypted_and_the_query_equals_the_sql_answer(stack_env: dict[str, str]) -> None:
    run = f"it{uuid.uuid4().hex[:8]}"
    day = datetime(2026, 11, 20, 8, tzinfo=UTC)
    rows = rows_of_one_run(run, day)
    pipeline_keys = settings.s3_identity_env("pipeline")  # the identity the deployed pipeline writes with
    config = dataclasses.replace(
        job_config(), s3_endpoint=stack_env["CCAS_S3_ENDPOINT"], s3_bucket=stack_env["CCAS_S3_BUCKET"],
        s3_access_key=pipeline_keys["CCAS_S3_ACCESS_KEY"], s3_secret_key=pipeline_keys["CCAS_S3_SECRET_KEY"],
        s3_ca_file=stack_env["CCAS_S3_CA_FILE"], analytics_window_s=3600, analytics_shards=2)
    admin = s3_client(stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], stack_env["CCAS_S3_SECRET_KEY"],
                      ca_file=stack_env["CCAS_S3_CA_FILE"])
    bucket = stack_env["CCAS_S3_BUCKET"]
    with TestPipeline(runner="BundleBasedDirectRunner") as p:
        _ = (p | beam.Create([TimestampedValue(row, row["ended_at"].timestamp()) for row in rows])
             | ExportParquet(config, SCORING_RESULTS, SCORING_RESULTS_SCHEMA, clients=StageClients(config)))
    files = our_files(admin, bucket, day, run)
    try:
        expected_files = {(f"{row['ended_at']:%Y%m%dT%H}0000Z", shard_of(row, "call_id", 2)) for row in rows}
        assert sorted((key.rsplit("/", 1)[1][:16], int(key.split("-shard")[1][0])) for key in files) == sorted(expected_files), \
            "one file per window and shard"
        assert sorted(row["call_id"] for file_rows in files.values() for row in file_rows) == sorted(r["call_id"] for r in rows)
        assert {admin.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] for key in files} == {"AES256"}

        sql = ("select agent_id, avg(score) as average, count(*) as calls, count(score) as scored from scoring_results "
               f"where agent_id like '{run}-%' group by agent_id order by agent_id")
        console = settings.s3_identity_env("console")  # read-only: List and Read under analytics/ are all the query needs
        env = {**os.environ, **{k: v for k, v in stack_env.items() if k.startswith("CCAS_S3_")}, **console}
        answer = subprocess.run(ccas_command("analytics", "query", "--format", "json", "--since", f"{day:%Y-%m-%d}",
                                             "--until", f"{day:%Y-%m-%d}", sql), env=env, capture_output=True, text=True,
                                timeout=120)
        assert answer.returncode == 0, answer.stderr
        queried = json.loads(answer.stdout)

        connection = duckdb.connect()
        connection.register("scoring_results", pa.Table.from_pylist(rows))
        cursor = connection.execute(sql)
        expected = [dict(zip([c[0] for c in cursor.description], values, strict=True)) for values in cursor.fetchall()]
        assert queried == expected
        agents = sorted({row["agent_id"] for row in rows})
        assert [q["average"] for q in queried] == [
            mean(r["score"] for r in rows if r["agent_id"] == agent and r["score"] is not None) for agent in agents]
        assert [(q["calls"], q["scored"]) for q in queried] == [(4, 4), (4, 4), (4, 3)]
    finally:
        for key in files:  # the bucket keeps no test rows beyond the test (the admin identity may delete, the others not)
            admin.delete_object(Bucket=bucket, Key=key)
