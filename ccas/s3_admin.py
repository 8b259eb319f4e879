"""`ccas s3 bootstrap`: the audio bucket with its security and lifecycle rules, on any S3-compatible server.

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

from botocore.exceptions import ClientError
from pydantic import Field

from core.config import add_flags, load_for_command, secret
from core.s3 import s3_client as core_s3_client
from core.settings import S3Settings

log = logging.getLogger(__name__)

NOT_IMPLEMENTED_CODES = {"NotImplemented", "501"}


def lifecycle_rules() -> list[dict[str, Any]]:
    """Retention: raw 90 d → Glacier, 365 d delete; processed 180 d → Deep Archive; transcripts 365 d."""
    return [
        {"ID": "raw-archive-then-expire", "Filter": {"Prefix": "raw/"}, "Status": "Enabled",
         "Transitions": [{"Days": 90, "StorageClass": "GLACIER"}], "Expiration": {"Days": 365}},
        {"ID": "processed-deep-archive", "Filter": {"Prefix": "processed/"}, "Status": "Enabled",
         "Transitions": [{"Days": 180, "StorageClass": "DEEP_ARCHIVE"}]},
        {"ID": "transcripts-retain-365d", "Filter": {"Prefix": "transcripts/"}, "Status": "Enabled",
         "Expiration": {"Days": 365}},
    ]


def deny_unencrypted_policy(bucket: str) -> str:
    """Refuse a PUT without server-side encryption, and any request not made over TLS (recordings are customer data)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyUnencryptedObjectUploads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
        }, {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
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
        ("policy: deny unencrypted PUTs and non-TLS requests", lambda: client.put_bucket_policy(
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


class BucketBootstrapSettings(S3Settings):
    # The bootstrap's flags keep their short names; the keys stay environment-only (a command line is visible in `ps`).
    s3_endpoint: str = Field(default="", json_schema_extra={"flag": "--endpoint"},
                             description="S3 endpoint URL; empty: AWS S3 (default endpoint and credential chain)")
    s3_bucket: str = Field(json_schema_extra={"flag": "--bucket"}, description="the audio bucket to create and secure")
    s3_region: str = Field(default="", json_schema_extra={"flag": "--region"},
                           description="S3 region; empty: AWS's own resolution (us-east-1 for other endpoints)")


SECRET_FIELDS = ("s3_access_key", "s3_secret_key")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas s3", description="S3 administration for CCAS")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="create and secure the audio bucket (idempotent); keys: CCAS_S3_ACCESS_KEY, "
                                            "CCAS_S3_SECRET_KEY, or the AWS credential chain")
    add_flags(boot, BucketBootstrapSettings, skip=SECRET_FIELDS)
    args = parser.parse_args(argv)
    settings = load_for_command(BucketBootstrapSettings, args, "s3 bootstrap")
    bucket = settings.s3_bucket
    client = core_s3_client(settings.s3_endpoint, secret(settings.s3_access_key) or None,
                            secret(settings.s3_secret_key) or None, region=settings.s3_region or None,
                            ca_file=settings.s3_ca_file or None)
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
