"""The audio bucket on the real S3 server (SeaweedFS): SSE, versioning, tags, metadata, and the deny-unencrypted policy."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from botocore.exceptions import ClientError

from ccas.s3_admin import bootstrap_bucket
from core.s3 import s3_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(stack_env: dict[str, str]):
    return s3_client(stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], stack_env["CCAS_S3_SECRET_KEY"],
                     ca_file=stack_env["CCAS_S3_CA_FILE"])


def test_bootstrap_is_idempotent_and_says_what_the_server_lacks(s3, stack_env: dict[str, str]) -> None:
    results = {result.step: result.outcome for result in bootstrap_bucket(s3, stack_env["CCAS_S3_BUCKET"])}
    assert results["bucket"] == "exists"
    for step in ("versioning", "default encryption (SSE-S3)", "public access block",
                 "policy: deny unencrypted PUTs and non-TLS requests"):
        assert results[step] == "applied", step
    # SeaweedFS does not implement lifecycle configuration; the bootstrap must say so rather than pretend.
    assert results["lifecycle rules"] == "not implemented by this server"
    assert s3.get_bucket_versioning(Bucket=stack_env["CCAS_S3_BUCKET"])["Status"] == "Enabled"


def test_object_round_trip_with_encryption_version_tags_and_metadata(s3, stack_env: dict[str, str]) -> None:
    bucket = stack_env["CCAS_S3_BUCKET"]
    call_id = f"t{uuid.uuid4().hex[:15]}"
    key = f"raw/2026/11/25/{call_id}.wav"
    body = b"RIFF" + uuid.uuid4().bytes * 1000
    digest = hashlib.sha256(body).hexdigest()
    put = s3.put_object(Bucket=bucket, Key=key, Body=body, ServerSideEncryption="AES256",
                        Tagging=f"call_id={call_id}&agent_id=1234&date=2026-11-25",
                        Metadata={"sha256": digest, "codec": "mulaw", "duration": "106.20"})
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["VersionId"] and head["VersionId"] == put["VersionId"]
    assert head["Metadata"] == {"sha256": digest, "codec": "mulaw", "duration": "106.20"}
    tags = {tag["Key"]: tag["Value"] for tag in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}
    assert tags == {"call_id": call_id, "agent_id": "1234", "date": "2026-11-25"}
    assert hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest() == digest

    # Versioning keeps an overwrite from destroying the first recording.
    second = s3.put_object(Bucket=bucket, Key=key, Body=b"RIFF-second", ServerSideEncryption="AES256")
    versions = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]]
    assert {put["VersionId"], second["VersionId"]} <= set(versions)


def test_unencrypted_put_is_denied_by_the_bucket_policy(s3, stack_env: dict[str, str]) -> None:
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket=stack_env["CCAS_S3_BUCKET"], Key="raw/2026/11/25/plain.wav", Body=b"plain")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_wrong_secret_is_refused(stack_env: dict[str, str]) -> None:
    intruder = s3_client(stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], "not-the-secret",
                         ca_file=stack_env["CCAS_S3_CA_FILE"])
    with pytest.raises(ClientError) as caught:
        intruder.list_objects_v2(Bucket=stack_env["CCAS_S3_BUCKET"])
    assert caught.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")
