"""The S3 client factory: an empty endpoint is AWS S3 with AWS's own endpoint and credential chain, never the local stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.s3 import s3_client


@pytest.fixture
def aws_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith(("CCAS_", "AWS_"))]:
        monkeypatch.delenv(name)
    # A local stack with generated keys right there: none of it may be used.
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "secrets.env").write_text("CCAS_S3_ACCESS_KEY=localstackkey\nCCAS_S3_SECRET_KEY=localstacksecret\n")
    monkeypatch.setenv("CCAS_STACK_DIR", str(stack))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-environment")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))


def test_empty_endpoint_targets_aws_with_the_environment_credentials(aws_environment: None) -> None:
    client = s3_client("")
    assert client.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"
    assert client.meta.region_name == "eu-west-1"
    credentials = client._request_signer._credentials  # what boto3 will sign with
    assert (credentials.access_key, credentials.secret_key) == ("AKIAFROMENVIRONMENT", "secret-from-environment")
    assert credentials.method == "env"


def test_none_endpoint_and_a_region_setting_behave_the_same(aws_environment: None) -> None:
    client = s3_client(None, region="ap-southeast-1")
    assert client.meta.endpoint_url == "https://s3.ap-southeast-1.amazonaws.com"
    assert client._request_signer._credentials.access_key == "AKIAFROMENVIRONMENT"


def test_an_endpoint_is_an_s3_compatible_server_with_path_style_and_the_given_keys(aws_environment: None) -> None:
    client = s3_client("http://127.0.0.1:9", "given-key", "given-secret")
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client._request_signer._credentials.access_key == "given-key"
    url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert url.startswith("http://127.0.0.1:9/b/k?"), url
