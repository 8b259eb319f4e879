"""The one S3 client factory: any S3-compatible endpoint, or AWS S3 itself when the endpoint is empty."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

AWS_SUFFIX = ".amazonaws.com"


def _sse_header(params: dict[str, Any], **_: Any) -> None:
    params["headers"]["x-amz-server-side-encryption"] = "AES256"


def s3_client(endpoint: str | None = None, access_key: str | None = None, secret_key: str | None = None, *,
              region: str | None = None, connect_timeout: float = 5, read_timeout: float = 60, max_pool: int = 10,
              ca_file: str | None = None) -> Any:
    """A boto3 S3 client.

    `endpoint` empty or None: AWS S3 with boto3's default endpoint, region and credential chain (environment, profile, IAM
    role) — keys are passed only when both are given. Any other endpoint is an S3-compatible server: path-style addressing
    (they do not resolve virtual-host buckets) and region us-east-1 unless told otherwise.

    `ca_file`: the CA bundle that verifies an https endpoint (a private CA's certificate); None: the system's trust store.

    SeaweedFS evaluates the deny-unencrypted bucket policy on CompleteMultipartUpload and AbortMultipartUpload too (AWS judges
    the SSE header on the initiating request only), so against a non-AWS endpoint those calls repeat the header.
    """
    custom = bool(endpoint)
    credentials = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key} if access_key and secret_key else {}
    client = boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        region_name=region or ("us-east-1" if custom else None),
        verify=ca_file or None,
        config=Config(s3={"addressing_style": "path" if custom else "auto"}, connect_timeout=connect_timeout,
                      read_timeout=read_timeout, retries={"max_attempts": 3, "mode": "standard"},
                      max_pool_connections=max_pool, request_checksum_calculation="when_required",
                      response_checksum_validation="when_required"),
        **credentials,
    )
    if custom and not client.meta.endpoint_url.endswith(AWS_SUFFIX):
        for operation in ("CompleteMultipartUpload", "AbortMultipartUpload"):
            client.meta.events.register(f"before-call.s3.{operation}", _sse_header)
    return client
