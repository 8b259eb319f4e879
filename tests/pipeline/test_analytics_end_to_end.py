"""The running pipeline (Prism, either Kafka reader, its own S3 identity) exports what it scores: with one-minute windows,
every call in scoring_result appears exactly once in the Parquet files under analytics/scoring_results/, in the file of the
window holding its end, with the score PostgreSQL has, and every file is encrypted (SSE)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
import pytest

from core.s3 import s3_client
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALLS = 6
WINDOW_S = 60


@pytest.fixture(scope="module")
def scenario(stack_env: dict[str, str]) -> Iterator[dict]:
    with e2e.publish_scenario(stack_env, CALLS) as published:
        yield published


def exported(client: Any, bucket: str, days: set[str], call_ids: set[str],
             since: datetime) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """call_id -> [(key, row)] of every file written since `since` under the days' partitions holding one of `call_ids` (both
    readers' runs export the same calls: each run looks at its own files)."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for day in sorted(days):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=f"analytics/scoring_results/date={day}/"):
            for item in page.get("Contents", []):
                if item["LastModified"] < since:
                    continue
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                for row in pq.read_table(io.BytesIO(body)).to_pylist():
                    if row["call_id"] in call_ids:
                        found.setdefault(row["call_id"], []).append((item["Key"], row))
    return found


def _window(key: str) -> tuple[datetime, datetime]:
    start, end = key.rsplit("/", 1)[1].split("-")[:2]
    return datetime.strptime(start, "%Y%m%dT%H%M%S%z"), datetime.strptime(end, "%Y%m%dT%H%M%S%z")


@pytest.mark.parametrize("kafka_io", ["java", "python"])
def test_the_running_pipeline_exports_every_scored_call_once(scenario: dict, kafka_io: str) -> None:
    env = scenario["env"]
    admin = s3_client(env["CCAS_S3_ENDPOINT"], env["CCAS_S3_ACCESS_KEY"], env["CCAS_S3_SECRET_KEY"],
                      ca_file=env["CCAS_S3_CA_FILE"])
    bucket = env["CCAS_S3_BUCKET"]
    with e2e.scratch_database(env["CCAS_DATABASE_URL"]) as url:
        group = f"ccas-pipeline-e2e-analytics-{kafka_io}-{uuid.uuid4().hex[:8]}"
        e2e.commit_group(scenario["bootstrap"], group, "calls.raw", scenario["start"])
        started = datetime.now(UTC).replace(microsecond=0)  # S3's LastModified has whole seconds
        pipeline = e2e.start_pipeline(scenario["services"], url, group, kafka_io, f"pipeline-{group}.log",
                                      extra=[f"--analytics_window_s={WINDOW_S}"])
        try:
            good = len(scenario["inums"]) - 2  # the dead replay and the corrupt recording are dead-lettered
            e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM scoring_result")[0][0] >= good, 420,
                           f"{good} scored calls", [pipeline])
            scores = {call_id: None if score is None else float(score)
                      for call_id, score in e2e.query(url, "SELECT call_id, score FROM scoring_result")}
            days = {f"{ended:%Y-%m-%d}" for (ended,) in e2e.query(url, "SELECT ended_at AT TIME ZONE 'UTC' FROM call")}

            def all_exported() -> dict[str, list[tuple[str, dict[str, Any]]]] | None:
                rows = exported(admin, bucket, days, set(scores), started)
                return rows if set(rows) == set(scores) else None

            # A window's file is written once the watermark passes its end: a minute or so after the last call.
            rows = e2e.wait_until(all_exported, 300, "every scored call in the analytics files", [pipeline], interval_s=5)
        finally:
            pipeline.stop()
    assert {call_id: [row["score"] for _, row in found] for call_id, found in rows.items()} == \
        {call_id: [score] for call_id, score in scores.items()}, "each scored call exported once, with its score"
    for found in rows.values():
        key, row = found[0]
        start, end = _window(key)
        assert start <= row["ended_at"] < end and (end - start).total_seconds() == WINDOW_S, (key, row["ended_at"])
    keys = {key for found in rows.values() for key, _ in found}
    assert {admin.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] for key in keys} == {"AES256"}
