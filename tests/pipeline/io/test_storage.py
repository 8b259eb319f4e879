"""AudioStore on the real S3 server: single PUT and multipart paths both end with SSE, tags, metadata and the right SHA-256."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest

from core.s3 import s3_client
from pipeline.io.storage import AudioStore

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(stack_env: dict[str, str]) -> AudioStore:
    client = s3_client(stack_env["CCAS_S3_ENDPOINT"], stack_env["CCAS_S3_ACCESS_KEY"], stack_env["CCAS_S3_SECRET_KEY"],
                       ca_file=stack_env["CCAS_S3_CA_FILE"])
    return AudioStore(client, stack_env["CCAS_S3_BUCKET"], part_size=5 * 1024 * 1024)


def _chunks(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("size", [300_000, 12 * 1024 * 1024 + 17], ids=["single-put", "multipart"])
def test_stream_upload_keeps_hash_tags_metadata_and_encryption(store: AudioStore, size: int) -> None:
    data = b"RIFF" + os.urandom(size - 4)
    key = f"raw/2026/11/25/t{uuid.uuid4().hex[:12]}.wav"
    seen: dict = {}

    def metadata_of(head: bytes, total: int, sha256: str) -> dict:
        seen.update(head=head[:4], total=total)
        return {"sha256": sha256, "codec": "ulaw"}

    stored = store.put_stream(key, _chunks(data), {"call_id": "c1", "agent_id": "1234", "date": "2026-11-25"}, metadata_of)
    digest = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.size_bytes, seen) == (digest, size, {"head": b"RIFF", "total": size})
    head = store.client.head_object(Bucket=store.bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["Metadata"] == {"sha256": digest, "codec": "ulaw"}
    assert head["VersionId"] == stored.version_id
    tags = {t["Key"]: t["Value"] for t in store.client.get_object_tagging(Bucket=store.bucket, Key=key)["TagSet"]}
    assert tags == {"call_id": "c1", "agent_id": "1234", "date": "2026-11-25"}
    body, length = store.open(key, stored.version_id)
    assert length == size and hashlib.sha256(body.read()).hexdigest() == digest
    versions = store.client.list_object_versions(Bucket=store.bucket, Prefix=key).get("Versions", [])
    assert [v["VersionId"] for v in versions] == [stored.version_id]  # the metadata-less multipart version is gone


def test_failed_stream_aborts_the_multipart_upload(store: AudioStore) -> None:
    key = f"raw/2026/11/25/t{uuid.uuid4().hex[:12]}.wav"

    def broken():
        yield os.urandom(6 * 1024 * 1024)  # one part uploaded
        raise ConnectionError("recorder hung up")

    with pytest.raises(ConnectionError):
        store.put_stream(key, broken(), {"call_id": "c2"}, lambda head, size, sha: {"sha256": sha})
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=key).get("Uploads", [])
    assert uploads == []
    assert store.client.list_objects_v2(Bucket=store.bucket, Prefix=key).get("KeyCount", 0) == 0
