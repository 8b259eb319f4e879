"""`ccas s3 bootstrap`: the audio bucket with the seed's security and lifecycle rules, on any S3-compatible server.

Every call is standard S3 (tested against AWS's behaviour through moto's server too). A server that does not implement one of
them (SeaweedFS: lifecycle) gets one clear line saying so; nothing is skipped silently and everything else is still applied.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ccas.settings import setting

log = logging.getLogger(__name__)

NOT_IMPLEMENTED_CODES = {"NotImplemented", "501"}


def _sse_header(params: dict[str, Any], **_: Any) -> None:
    params["headers"]["x-amz-server-side-encryption"] = "AES256"


def s3_client(endpoint: str | None = None, access_key: str | None = None, secret_key: str | None = None,
              connect_timeout: float = 5, read_timeout: float = 60, max_pool: int = 10) -> Any:
    """A boto3 S3 client for CCAS_S3_* (path-style: S3-compatible servers do not resolve virtual-host buckets).

    SeaweedFS evaluates the deny-unencrypted bucket policy on CompleteMultipartUpload and AbortMultipartUpload too (AWS
    judges the SSE header on the initiating request only), so against a non-AWS endpoint those calls repeat the header.
    """
    client = boto3.client(
        "s3",
        endpoint_url=endpoint or setting("CCAS_S3_ENDPOINT"),
        aws_access_key_id=access_key or setting("CCAS_S3_ACCESS_KEY"),
        aws_secret_access_key=secret_key or setting("CCAS_S3_SECRET_KEY"),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, connect_timeout=connect_timeout, read_timeout=read_timeout,
                      retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=max_pool,
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )
    if not client.meta.endpoint_url.endswith(".amazonaws.com"):
        for operation in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            client.meta.events.register(f"before-call.s3.{operation}", _sse_header)
    return client


def lifecycle_rules() -> list[dict[str, Any]]:
    """The seed's retention (section 5.2): raw 90 d → Glacier, 365 d delete; processed 180 d → Deep Archive; transcripts 365 d."""
    return [
        {"ID": "raw-archive-then-expire", "Filter": {"Prefix": "raw/"}, "Status": "Enabled",
         "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}], "Expiration": {"Days": 365}},
        {"ID": "processed-deep-archive", "Filter": {"Prefix": "processed/"}, "Status": "Enabled",
         "Transitions": [{"Days": 180, "StorageClass": "DEEP_ARCHIVE"}]},
        {"ID": "transcripts-retain-365d", "Filter": {"Prefix": "transcripts/"}, "Status": "Enabled",
         "Expiration": {"Days": 365}},
    ]


def deny_unencrypted_policy(bucket: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyUnencryptedObjectUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
        }],
    })


@dataclass
class StepResult:
    step: str
    outcome: str  # "applied" | "not implemented by this server"
    detail: str = ""


def _steps(client: Any, bucket: str) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("versioning", lambda: client.put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})),
        ("default encryption (SSE-S3)", lambda: client.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": False}]})),
        ("public access block", lambda: client.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})),
        ("policy: deny unencrypted PUTs", lambda: client.put_bucket_policy(
            Bucket=bucket, Policy=deny_unencrypted_policy(bucket))),
        ("lifecycle rules", lambda: client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": lifecycle_rules()})),
    ]


def ensure_bucket(client: Any, bucket: str) -> str:
    try:
        client.head_bucket(Bucket=bucket)
        return "exists"
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=bucket)
    return "created"


def bootstrap_bucket(client: Any, bucket: str) -> list[StepResult]:
    """Create (if missing) and secure the bucket; idempotent. Raises on any failure other than 'not implemented'."""
    results = [StepResult("bucket", ensure_bucket(client, bucket))]
    for step, call in _steps(client, bucket):
        try:
            call()
            results.append(StepResult(step, "applied"))
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in NOT_IMPLEMENTED_CODES:
                raise
            results.append(StepResult(step, "not implemented by this server", error.response["Error"].get("Message", code)))
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas s3", description="S3 administration for CCAS")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="create and secure the audio bucket (idempotent)")
    boot.add_argument("--bucket", default=None, help="bucket name (default: CCAS_S3_BUCKET, ccas-audio-dev locally)")
    boot.add_argument("--endpoint", default=None, help="S3 endpoint URL (default: CCAS_S3_ENDPOINT)")
    args = parser.parse_args(argv)
    bucket = args.bucket or setting("CCAS_S3_BUCKET")
    client = s3_client(endpoint=args.endpoint)
    try:
        results = bootstrap_bucket(client, bucket)
    except ClientError as error:
        print(f"s3 bootstrap of {bucket} failed: {error}", file=sys.stderr)
        return 1
    for result in results:
        if result.outcome == "not implemented by this server":
            print(f"s3 bootstrap: {bucket}: {result.step} NOT APPLIED — the S3 server does not implement it "
                  f"({result.detail}); AWS S3 does (see README, 'S3 server limits')")
        else:
            print(f"s3 bootstrap: {bucket}: {result.step} {result.outcome}")
    return 0
