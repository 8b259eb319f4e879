"""Recordings for the browser: byte ranges of the S3 object streamed through the console, and a small waveform.

The browser never sees an S3 URL: `/calls/{id}/audio` reads the exact stored version (audio_asset.s3_version_id) with the
console's read-only S3 identity and passes the Range the <audio> element asked for on to S3, so seeking in a long call
fetches only what is played. The waveform is computed here from the decoded samples, per channel, as min/max peaks of
`WAVEFORM_BUCKETS` slices, and kept in a small in-memory cache (a recording version never changes).
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from audio.wav import read_wav

WAVEFORM_BUCKETS = 600
# Longest recording whose waveform is drawn: the whole object is read and decoded for it (30 min of 8 kHz stereo µ-law ≈ 29 MB).
WAVEFORM_MAX_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ValueError):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def header(self) -> str:
        return f"bytes={self.start}-{self.end}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range of a `Range: bytes=a-b` header (None: no or unusable header, the whole object is sent).

    Multiple ranges are answered with the whole object, which RFC 9110 allows; a range past the end is not satisfiable.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable(header)
        return ByteRange(max(0, size - length), size - 1)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable(header)
    end = min(int(last), size - 1) if last else size - 1
    if end < start:
        return None
    return ByteRange(start, end)


class RecordingStore:
    """Reads recordings (and transcripts) from the audio bucket."""

    def __init__(self, client: Any, bucket: str, cache_entries: int = 64) -> None:
        self.client = client
        self.bucket = bucket
        self._peaks: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    def _version(self, version_id: str | None) -> dict[str, str]:
        return {"VersionId": version_id} if version_id else {}

    def size(self, key: str, version_id: str | None) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=key, **self._version(version_id))["ContentLength"])

    def stream(self, key: str, version_id: str | None, byte_range: ByteRange | None) -> Iterator[bytes]:
        extra = {"Range": byte_range.header()} if byte_range else {}
        body = self.client.get_object(Bucket=self.bucket, Key=key, **self._version(version_id), **extra)["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            finally:
                body.close()

        return chunks()

    def read_json(self, key: str) -> Any:
        import json

        return json.loads(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def waveform(self, key: str, version_id: str | None) -> dict[str, Any]:
        """{duration_s, channels: [[min, max] per bucket] per channel}, peaks scaled to -1..1."""
        cache_key = (key, version_id or "")
        with self._lock:
            if cache_key in self._peaks:
                self._peaks.move_to_end(cache_key)
                return self._peaks[cache_key]
        if self.size(key, version_id) > WAVEFORM_MAX_BYTES:
            return {"duration_s": None, "channels": [], "too_long": True}
        data = self.client.get_object(Bucket=self.bucket, Key=key, **self._version(version_id))["Body"].read()
        samples, rate, _ = read_wav(io.BytesIO(data))
        result = {"duration_s": round(len(samples) / rate, 3), "channels": peaks(samples)}
        with self._lock:
            self._peaks[cache_key] = result
            while len(self._peaks) > self._cache_entries:
                self._peaks.popitem(last=False)
        return result


def peaks(samples: np.ndarray, buckets: int = WAVEFORM_BUCKETS) -> list[list[list[float]]]:
    """Per channel, [min, max] of each of `buckets` equal slices of int16 samples (n_frames, channels), in -1..1."""
    frames = samples.shape[0]
    if frames == 0:
        return [[] for _ in range(samples.shape[1])]
    count = min(buckets, frames)
    edges = np.linspace(0, frames, count + 1).astype(int)
    result = []
    for channel in range(samples.shape[1]):
        scaled = samples[:, channel].astype(np.float32) / 32768.0
        lows = np.minimum.reduceat(scaled, edges[:-1])
        highs = np.maximum.reduceat(scaled, edges[:-1])
        result.append([[round(float(low), 3), round(float(high), 3)] for low, high in zip(lows, highs, strict=True)])
    return result
