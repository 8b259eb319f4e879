"""Streaming a recording into S3 without holding it: at most one part (8 MiB) in memory, SHA-256 computed on the way.

A recording that fits in one part is a single PUT carrying every tag and metadata field. A larger one is a multipart upload;
S3 metadata is fixed when an upload starts, and the SHA-256 is known only at its end, so the object is then copied onto itself
server-side with the full metadata (no bytes pass through us) and the metadata-less first version is deleted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

log = logging.getLogger(__name__)

PART_SIZE = 8 * 1024 * 1024
SSE = "AES256"


@dataclass(frozen=True)
class StoredObject:
    key: str
    version_id: str | None
    sha256: str
    size_bytes: int
    head: bytes  # the first bytes of the object (the WAV header lives here)


class AudioStore:
    """Recordings in one bucket through a boto3-compatible S3 client (owned: `close` closes it)."""

    def __init__(self, client: Any, bucket: str, part_size: int = PART_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.part_size = part_size

    def close(self) -> None:
        close = getattr(self.client, "close", None)  # boto3 clients grew close() late; older ones just drop their pool
        if close is not None:
            close()

    def put_stream(self, key: str, chunks: Iterable[bytes], tags: dict[str, str],
                   metadata_of: Any, content_type: str = "audio/wav") -> StoredObject:
        """Upload `chunks` to `key`. `metadata_of(head: bytes, size: int, sha256: str) -> dict` builds the object metadata."""
        digest = hashlib.sha256()
        buffer = bytearray()
        head = b""
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        tagging = urlencode(tags)
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                if not head and len(buffer) >= 4096:
                    head = bytes(buffer[:65536])
                if len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = self.client.create_multipart_upload(
                            Bucket=self.bucket, Key=key, ServerSideEncryption=SSE, Tagging=tagging, ContentType=content_type,
                        )["UploadId"]
                    part = bytes(buffer[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, part))
            head = head or bytes(buffer[:65536])
            sha256 = digest.hexdigest()
            metadata = {k: str(v) for k, v in metadata_of(head, size, sha256).items()}
            if upload_id is None:
                put = self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), ServerSideEncryption=SSE,
                                             Tagging=tagging, Metadata=metadata, ContentType=content_type)
                return StoredObject(key, put.get("VersionId"), sha256, size, head)
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                buffer.clear()
            done = self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                         MultipartUpload={"Parts": parts})
            upload_id = None
            version = self._attach_metadata(key, done.get("VersionId"), metadata, tagging, content_type)
            return StoredObject(key, version, sha256, size, head)
        except BaseException:
            if upload_id is not None:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _attach_metadata(self, key: str, version_id: str | None, metadata: dict[str, str], tagging: str,
                         content_type: str) -> str | None:
        source: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            source["VersionId"] = version_id
        copied = self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source, MetadataDirective="REPLACE",
                                         Metadata=metadata, ContentType=content_type, ServerSideEncryption=SSE,
                                         TaggingDirective="REPLACE", Tagging=tagging)
        if version_id and copied.get("VersionId") and copied["VersionId"] != version_id:
            self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        return copied.get("VersionId")

    def open(self, key: str, version_id: str | None = None) -> tuple[Any, int]:
        """(streaming body, content length) of a stored object."""
        extra = {"VersionId": version_id} if version_id else {}
        answer = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
        return answer["Body"], int(answer["ContentLength"])
