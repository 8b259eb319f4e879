"""The bucket bootstrap's calls against moto's S3 server, which implements every one of them (as AWS S3 does)."""

from __future__ import annotations

import json
import socket

import pytest
from moto.server import ThreadedMotoServer

from ccas import s3_admin
from ccas.s3_admin import bootstrap_bucket, lifecycle_rules
from core.s3 import s3_client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def moto_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_s3(moto_endpoint: str):
    return s3_client(moto_endpoint, "testing", "testing")


def test_every_bootstrap_step_applies_on_an_aws_compatible_server(moto_s3) -> None:
    bucket = "ccas-audio-dev"
    results = bootstrap_bucket(moto_s3, bucket)
    assert [(r.step, r.outcome) for r in results] == [
        ("bucket", "created"), ("versioning", "applied"), ("default encryption (SSE-S3)", "applied"),
        ("public access block", "applied"), ("policy: deny unencrypted PUTs and non-TLS requests", "applied"),
        ("lifecycle rules", "applied"),
    ]
    assert moto_s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = moto_s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = moto_s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    policy = json.loads(moto_s3.get_bucket_policy(Bucket=bucket)["Policy"])
    statement = policy["Statement"][0]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Null": {"s3:x-amz-server-side-encryption": "true"}}
    rules = {rule["ID"]: rule for rule in moto_s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules["raw-archive-then-expire"]["Transitions"][0] == {"Days": 90, "StorageClass": "GLACIER"}
    assert rules["raw-archive-then-expire"]["Expiration"] == {"Days": 365}
    assert rules["processed-deep-archive"]["Transitions"][0] == {"Days": 180, "StorageClass": "DEEP_ARCHIVE"}
    assert rules["transcripts-retain-365d"]["Expiration"] == {"Days": 365}
    assert len(rules) == len(lifecycle_rules())

    # A second run changes nothing and fails nothing.
    again = bootstrap_bucket(moto_s3, bucket)
    assert again[0].outcome == "exists" and all(r.outcome == "applied" for r in again[1:])


def test_cli_takes_endpoint_bucket_and_keys_from_its_settings_only(moto_endpoint: str, tmp_path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CCAS_S3_ENDPOINT", "CCAS_S3_BUCKET", "CCAS_S3_REGION"):
        monkeypatch.delenv(name, raising=False)
    # The stack folder holds no secrets here: nothing may come from a local stack.
    monkeypatch.setenv("CCAS_STACK_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as exited:
        s3_admin.main(["bootstrap", "--endpoint", moto_endpoint])
    assert exited.value.code == 2
    assert "CCAS_S3_BUCKET / --bucket: is not set" in capsys.readouterr().err

    monkeypatch.setenv("CCAS_S3_ACCESS_KEY", "testing")
    monkeypatch.setenv("CCAS_S3_SECRET_KEY", "testing")
    monkeypatch.setenv("CCAS_S3_BUCKET", "ccas-audio-cli")
    assert s3_admin.main(["bootstrap", "--endpoint", moto_endpoint]) == 0
    out = capsys.readouterr().out
    assert "s3 bootstrap: ccas-audio-cli: bucket created" in out
    assert "s3 bootstrap: ccas-audio-cli: lifecycle rules applied" in out
    assert s3_client(moto_endpoint, "testing", "testing").get_bucket_versioning(Bucket="ccas-audio-cli")["Status"] == "Enabled"
