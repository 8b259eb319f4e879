"""S3 identities of least privilege on the real server: the pipeline reads and writes its own prefixes only, the console
only reads, and neither can administer the bucket."""

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


def test_the_console_reads_but_cannot_put(stack_env: dict[str, str], key: str) -> None:
    console, bucket = _client(stack_env, "console"), stack_env["CCAS_S3_BUCKET"]
    _client(stack_env).put_object(Bucket=bucket, Key=key, Body=b"RIFF-admin", ServerSideEncryption="AES256")
    assert console.get_object(Bucket=bucket, Key=key)["Body"].read() == b"RIFF-admin"
    assert _denied(console.put_object, Bucket=bucket, Key=key, Body=b"forged", ServerSideEncryption="AES256") == "AccessDenied"
    assert _denied(console.delete_object, Bucket=bucket, Key=key) == "AccessDenied"
