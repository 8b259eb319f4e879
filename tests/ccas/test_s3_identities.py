"""S3 identities of least privilege on the real server: the pipeline reads and writes its own prefixes only (and only writes
the analytics export), the console only reads (and lists the analytics export), and neither can administer the bucket."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ccas import settings
from core.s3 import s3_client

pytestmark = pytest.mark.integration


def _client(stack_env: dict[str, str], component: str | None = None) -> Any:
    keys = settings.s3_identity_env(component) if component else stack_env
    return s3_client(stack_env["CCAS_S3_ENDPOINT"], keys["CCAS_S3_ACCESS_KEY"], keys["CCAS_S3_SECRET_KEY"],
                     ca_file=stack_env["CCAS_S3_CA_FILE"])


def _denied(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return refused.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def key() -> str:
    return f"raw/2026/12/03/identity-test-{uuid.uuid4().hex[:8]}.wav"


def test_the_pipeline_writes_and_reads_its_prefixes_only(stack_env: dict[str, str], key: str) -> None:
    pipeline, bucket = _client(stack_env, "pipeline"), stack_env["CCAS_S3_BUCKET"]
    pipeline.put_object(Bucket=bucket, Key=key, Body=b"RIFF-pipeline", ServerSideEncryption="AES256")
    assert pipeline.get_object(Bucket=bucket, Key=key)["Body"].read() == b"RIFF-pipeline"
    transcript = key.replace("raw/", "transcripts/").replace(".wav", ".json")
    pipeline.put_object(Bucket=bucket, Key=transcript, Body=b"{}", ServerSideEncryption="AES256")
    assert _denied(pipeline.put_object, Bucket=bucket, Key="elsewhere/x.wav", Body=b"x",
                   ServerSideEncryption="AES256") == "AccessDenied"
    assert _denied(pipeline.delete_bucket_policy, Bucket=bucket) == "AccessDenied", "no Admin at run time"


def test_the_pipeline_writes_the_analytics_export_without_reading_or_listing_it(stack_env: dict[str, str]) -> None:
    pipeline, bucket = _client(stack_env, "pipeline"), stack_env["CCAS_S3_BUCKET"]
    key = f"analytics/scoring_results/date=2026-12-03/identity-test-{uuid.uuid4().hex[:8]}.parquet"
    try:
        pipeline.put_object(Bucket=bucket, Key=key, Body=b"PAR1", ServerSideEncryption="AES256")
        assert _denied(pipeline.get_object, Bucket=bucket, Key=key) == "AccessDenied"
        assert _denied(pipeline.list_objects_v2, Bucket=bucket, Prefix="analytics/") == "AccessDenied"
        assert _denied(pipeline.put_object, Bucket=bucket, Key=key.replace(".parquet", "-plain.parquet"),
                       Body=b"PAR1") == "AccessDenied", "the bucket policy still wants SSE"
    finally:
        _client(stack_env).delete_object(Bucket=bucket, Key=key)


def test_the_console_reads_but_cannot_put(stack_env: dict[str, str], key: str) -> None:
    console, bucket = _client(stack_env, "console"), stack_env["CCAS_S3_BUCKET"]
    _client(stack_env).put_object(Bucket=bucket, Key=key, Body=b"RIFF-admin", ServerSideEncryption="AES256")
    assert console.get_object(Bucket=bucket, Key=key)["Body"].read() == b"RIFF-admin"
    assert _denied(console.put_object, Bucket=bucket, Key=key, Body=b"forged", ServerSideEncryption="AES256") == "AccessDenied"
    assert _denied(console.delete_object, Bucket=bucket, Key=key) == "AccessDenied"


def test_the_console_lists_and_reads_the_analytics_export_only(stack_env: dict[str, str]) -> None:
    console, admin, bucket = _client(stack_env, "console"), _client(stack_env), stack_env["CCAS_S3_BUCKET"]
    key = f"analytics/scoring_results/date=2026-12-03/identity-test-{uuid.uuid4().hex[:8]}.parquet"
    admin.put_object(Bucket=bucket, Key=key, Body=b"PAR1", ServerSideEncryption="AES256")
    try:
        listed = console.list_objects_v2(Bucket=bucket, Prefix="analytics/scoring_results/")
        assert key in [item["Key"] for item in listed.get("Contents", [])]
        assert console.get_object(Bucket=bucket, Key=key)["Body"].read() == b"PAR1"
        assert _denied(console.list_objects_v2, Bucket=bucket, Prefix="raw/") == "AccessDenied"
        assert _denied(console.put_object, Bucket=bucket, Key=key, Body=b"forged", ServerSideEncryption="AES256") == \
            "AccessDenied"
    finally:
        admin.delete_object(Bucket=bucket, Key=key)
