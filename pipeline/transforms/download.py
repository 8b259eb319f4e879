"""DownloadToS3: stream each recording from the recorder's Replay API into S3, hash it, read its WAV header, record the asset.

Retry policy (pipeline/io/resilience.py): while the recorder or S3 is unavailable (no answer, 408/429/502/503/504, throttling)
the call is held and retried for up to the outage budget; a replay that fails for this call (HTTP 500, a truncated body) is
retried after a delay that doubles each time (by default 1, 2, 4, 8 s: 5 attempts), then goes to audio.ready.dlq; a refusal
(404 once the recorder answered, another 4xx) goes there at once.
A recording whose header cannot be read is still stored (it is the recording we got): judging audio is the scorer's job.
"""

from __future__ import annotations

import io
import time
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from audio.wav import WavError, read_wav_info
from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import KAFKA, POSTGRES, RECORDER, S3
from pipeline.model import DeadLetter, EnrichedCall, StoredAudio, iso, parse_iso, utcnow
from pipeline.options import JobConfig
from pipeline.transforms._bundles import BatchingDoFn, Held
from schemas.contracts import DEAD_LETTER_TAG


def dated_key(call: EnrichedCall, folder: str, name: str) -> str:
    """`folder/YYYY/MM/DD/name`, dated by the call's start (UTC): every object of a call sits under the same day."""
    day = parse_iso(call.started_at)
    return f"{folder}/{day:%Y}/{day:%m}/{day:%d}/{name}"


def s3_key_for(call: EnrichedCall) -> str:
    return dated_key(call, "raw", f"{call.call_id}.wav")


def object_tags(call: EnrichedCall, **extra: str) -> dict[str, str]:
    """The tags every object of a call carries (lifecycle and cost reports select on them), plus `extra`."""
    day = parse_iso(call.started_at)
    return {"call_id": call.call_id, "agent_id": call.agent_id or "unknown", "date": f"{day:%Y-%m-%d}", **extra}


def wav_facts(head: bytes, size: int) -> dict[str, Any]:
    """codec, sample_rate, channels, duration from the header; all None when the header is unreadable."""
    try:
        info = read_wav_info(io.BytesIO(head), total_size=size)
    except WavError:
        return {"codec": None, "sample_rate": None, "channels": None, "duration_s": None}
    return {"codec": info.codec, "sample_rate": info.sample_rate, "channels": info.channels,
            "duration_s": round(info.duration_s, 2)}


class _DownloadFn(BatchingDoFn):
    """EnrichedCall → StoredAudio (after the bundle's audio_asset upsert and audio.ready publish) | dead letter."""

    bound_name = "download"
    owned_clients = ("recorder", "store", "db", "publisher")

    def __init__(self, config: JobConfig, clients: StageClients) -> None:
        self.config = config
        self.clients = clients
        self.concurrency = config.download_concurrency
        self.downloaded = Metrics.counter(self.__class__, "calls_downloaded")
        self.failures = Metrics.counter(self.__class__, "download_failures")
        self.bytes = Metrics.counter(self.__class__, "bytes_stored")

    def setup(self) -> None:
        super().setup()
        prom.ensure_metrics_server(self.config.metrics_host, self.config.metrics_port)
        self.recorder = self.clients.recorder()
        self.store = self.clients.audio_store(max_pool=max(10, self.concurrency))
        self.db = self.clients.database()
        self.publisher = self.clients.publisher("ccas-pipeline-download")

    def _store_once(self, call: EnrichedCall, attempt: int) -> StoredAudio:
        tags = object_tags(call)

        def metadata_of(head: bytes, size: int, sha256: str) -> dict[str, Any]:
            facts = wav_facts(head, size)
            return {"sha256": sha256, "codec": facts["codec"] or "unknown", "duration": facts["duration_s"] or "",
                    "sample_rate": facts["sample_rate"] or "", "channels": facts["channels"] or ""}

        with self.recorder.replay(call.call_id) as replay:
            stored = self.store.put_stream(s3_key_for(call), iter(replay), tags, metadata_of)
        facts = wav_facts(stored.head, stored.size_bytes)
        return StoredAudio(call=call, s3_key=stored.key, s3_version_id=stored.version_id, sha256=stored.sha256,
                           size_bytes=stored.size_bytes, stored_at=iso(utcnow()), attempts=attempt, **facts)

    def work(self, call: EnrichedCall) -> StoredAudio | DeadLetter:
        def store(attempt_number: int) -> StoredAudio:
            started = time.monotonic()
            stored = self._store_once(call, attempt_number)
            prom.DOWNLOAD_LATENCY_MS.observe((time.monotonic() - started) * 1000)
            return stored

        return self.attempted(
            f"replay of {call.call_id} into S3", store, self.config.download_attempts,
            lambda n: self.config.download_backoff_s * 2 ** (n - 1), (RECORDER, S3),
            lambda error, tries: DeadLetter.of("download", error, retries=tries, payload=call.raw, call_id=call.call_id,
                                               source=call.source))

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        out: list[tuple[str | None, Any, Held]] = []
        stored: list[tuple[StoredAudio, Held]] = []
        for item in held:
            result = item.work.result() if item.work else None
            if isinstance(result, DeadLetter):
                out.append((DEAD_LETTER_TAG, result, item))
            else:
                stored.append((result, item))
        if stored:
            assets = [audio for audio, _ in stored]
            self.held(POSTGRES, lambda: self.db.record_assets(assets))
            messages = []
            for audio, item in stored:
                delay_ms = int((parse_iso(audio.stored_at) - parse_iso(audio.call.ended_at)).total_seconds() * 1000)
                messages.append(("audio.ready", audio.call_id, {
                    "call_id": audio.call_id, "s3_key": audio.s3_key, "sha256": audio.sha256, "duration": audio.duration_s,
                    "sample_rate": audio.sample_rate, "codec": audio.codec or "unknown", "channels": audio.channels,
                    "size_bytes": audio.size_bytes, "agent_id": audio.call.agent_id, "ended_at": audio.call.ended_at,
                    "ingest_delay_ms": max(0, delay_ms),
                }))
                self.bytes.inc(audio.size_bytes)
                out.append((None, audio, item))
            self.held(KAFKA, lambda: self.publisher.publish_all(messages))
            self.downloaded.inc(len(stored))
            prom.CALLS_PROCESSED.labels("download").inc(len(stored))
        return out


@beam.typehints.with_input_types(EnrichedCall)
class DownloadToS3(beam.PTransform):
    """EnrichedCall → (StoredAudio, DeadLetter).

    Args:
        config: download concurrency and retry policy (and, without `clients`, the recorder, S3, database and Kafka settings).
        clients: where the stage's recorder, audio store, database and publisher come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients or StageClients(config)

    def expand(self, calls: Any) -> tuple[Any, Any]:
        results = (
            calls
            | "Download" >> beam.ParDo(_DownloadFn(self.config, self.clients)).with_input_types(EnrichedCall)
            .with_output_types(StoredAudio).with_outputs(DEAD_LETTER_TAG, main="good")
        )
        return results.good, results[DEAD_LETTER_TAG]
