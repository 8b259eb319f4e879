"""In-memory stand-ins for every client the I/O stages open, so the stages run under TestPipeline with no service at all.

Beam pickles each DoFn (with its `StageClients`) before running it, so a fake cannot keep what it records on itself: the
copy that runs is not the object the test holds. `FakeClients` therefore carries only a token, and every client it opens (in
DoFn setup, inside this process) records into the `World` registered under that token, which the test reads afterwards.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.recorder import AvayaError, AvayaUnavailable
from pipeline.clients import StageClients
from pipeline.io.publisher import EventPublisher
from pipeline.io.storage import AudioStore
from pipeline.model import EnrichedCall, ScoredCall, StoredAudio
from pipeline.options import JobConfig
from schemas.contracts import WATERMARK_KEY

FOREVER = -1
BUCKET = "fake-audio"


@dataclass
class World:
    """Everything the fakes of one test know and record. Methods and fields are guarded by `lock`: stages run I/O on threads."""

    statuses: dict[str, str] = field(default_factory=dict)  # the `call` table: call_id -> status
    assets: dict[str, StoredAudio] = field(default_factory=dict)
    scores: dict[str, ScoredCall] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # call_id -> error_reason of the latest mark_errors
    scorecards: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)  # the agent_scorecard table
    db_calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (method, call_ids) per transaction
    published: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (topic, key, value)
    objects: dict[str, bytes] = field(default_factory=dict)  # S3 key -> body
    object_args: dict[str, dict[str, Any]] = field(default_factory=dict)  # S3 key -> SSE, tagging, type, metadata of its PUT
    transcribe: bool = False  # the fake scoring service answers with a transcript, as one with ASR does
    recordings: dict[str, bytes] = field(default_factory=dict)  # what the recorder replays, per call_id
    replay_failures: dict[str, tuple[int, Callable[[], AvayaError]]] = field(default_factory=dict)
    fail_mid_stream: set[str] = field(default_factory=set)  # call_ids whose scripted replay failure comes after some bytes
    replays: Counter[str] = field(default_factory=Counter)  # replay attempts per call_id
    scoring_failures: dict[str, tuple[int, Callable[[], Exception]]] = field(default_factory=dict)
    scoring_requests: list[tuple[str, str | None, str]] = field(default_factory=list)  # (call_id, agent_id, sha256 of body)
    scoring_languages: dict[str, str | None] = field(default_factory=dict)  # call_id -> language sent with the recording
    partitions: dict[tuple[str, int], tuple[frozenset[int], int]] = field(default_factory=dict)  # data offsets, log end
    group_offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # the consumer group's committed offsets
    commits: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, offset) in commit order
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    broken_factories: set[str] = field(default_factory=set)  # client factories that raise, as a failing setup would
    record_calls: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (topic, partition, offset) -> call_id
    outages: Counter[str] = field(default_factory=Counter)  # client -> how many more operations find its service down
    outage_hits: Counter[str] = field(default_factory=Counter)  # client -> operations that found it down
    denied_prefixes: set[str] = field(default_factory=set)  # S3 keys under these: AccessDenied, as a missing grant gives
    denied_tables: set[str] = field(default_factory=set)  # tables the role may not write: permission denied
    model_version: str = "fake-1"  # what the fake scoring service scores with (its /v1/scorecard)
    stored_calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # call_id -> row of Database.rescore_audio
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_replay(self, call_id: str, times: int, error: Callable[[], AvayaError], *, mid_stream: bool = False) -> None:
        """The next `times` replays of `call_id` raise `error()` (FOREVER: every one): at once, or after half the recording."""
        self.replay_failures[call_id] = (times, error)
        if mid_stream:
            self.fail_mid_stream.add(call_id)

    def fail_scoring(self, call_id: str, times: int, error: Callable[[], Exception]) -> None:
        """The next `times` scoring requests for `call_id` raise `error()` (FOREVER: every one)."""
        self.scoring_failures[call_id] = (times, error)

    def add_partition(self, topic: str, partition: int, data_offsets: set[int], end: int) -> None:
        """A partition whose log holds data records at `data_offsets`; every other offset below `end` is a control record."""
        self.partitions[(topic, partition)] = (frozenset(data_offsets), end)

    def take_outage(self, client: str) -> None:
        """Raise the error a real client raises while its service is down, if `client` still has an outage to serve."""
        with self.lock:
            if self.outages[client] <= 0:
                return
            self.outages[client] -= 1
            self.outage_hits[client] += 1
        raise OUTAGE_ERRORS[client]()

    def topic(self, name: str) -> list[dict[str, Any]]:
        return [value for topic, _, value in self.published if topic == name]

    def take_failure(self, failures: dict[str, tuple[int, Callable[[], Any]]], call_id: str) -> Any:
        if call_id not in failures:
            return None
        times, error = failures[call_id]
        if times == 0:
            return None
        if times != FOREVER:
            failures[call_id] = (times - 1, error)
        return error()


def _database_down() -> Exception:
    import psycopg2

    return psycopg2.OperationalError("connection to server at 127.0.0.1 failed: Connection refused")


def _kafka_down() -> Exception:
    from kafka.errors import KafkaTimeoutError

    return KafkaTimeoutError("Batch for TopicPartition(topic='x', partition=0) containing 1 record(s) expired")


def _s3_down() -> Exception:
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9/fake-audio")


def _scoring_down() -> Exception:
    from pipeline.io.scoring_client import ScoringUnavailable

    return ScoringUnavailable("scoring service unreachable: Connection refused")


# What each fake raises during an outage: the error its real client raises when the service is down.
OUTAGE_ERRORS: dict[str, Callable[[], Exception]] = {
    "database": _database_down, "publisher": _kafka_down, "audio_store": _s3_down, "scoring": _scoring_down,
    "recorder": lambda: AvayaUnavailable("replay failed after 1 attempts: ConnectionError: refused", None),
    "offset_consumer": _kafka_down,
}

WORLDS: dict[str, World] = {}


def new_world() -> tuple[str, World]:
    token = uuid.uuid4().hex
    WORLDS[token] = World()
    return token, WORLDS[token]


def drop_world(token: str) -> None:
    WORLDS.pop(token, None)


class FakeClients(StageClients):
    """StageClients whose every client is an in-memory fake recording into the World of `token`."""

    def __init__(self, config: JobConfig, token: str) -> None:
        super().__init__(config)
        self.token = token

    def _open(self, name: str) -> World:
        world = WORLDS[self.token]
        with world.lock:
            if name in world.broken_factories:
                raise ConnectionError(f"{name} unreachable (fake)")
            world.opened.append(name)
        return world

    def database(self) -> FakeDatabase:
        return FakeDatabase(self._open("database"))

    def publisher(self, client_id: str) -> EventPublisher:
        # The real publisher over a fake producer: its stamping and schema check are part of what the stages rely on.
        return EventPublisher(FakeProducer(self._open("publisher"), client_id))

    def audio_store(self, max_pool: int) -> AudioStore:
        return AudioStore(FakeS3(self._open("audio_store")), BUCKET)

    def analytics_s3(self) -> FakeS3:
        return FakeS3(self._open("analytics_s3"))

    def recorder(self) -> FakeRecorder:
        return FakeRecorder(self._open("recorder"))

    def scoring(self, pool_size: int) -> FakeScoring:
        return FakeScoring(self._open("scoring"))

    def offset_consumer(self) -> FakeConsumer:
        return FakeConsumer(self._open("offset_consumer"))


class FakeDatabase:
    """The pipeline's Database with its status machine in a dict: statuses never move backwards, ERROR can restart."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _log(self, method: str, call_ids: list[str]) -> None:
        self.world.db_calls.append((method, tuple(sorted(call_ids))))

    def upsert_calls(self, calls: list[EnrichedCall]) -> dict[str, str]:
        self.world.take_outage("database")
        with self.world.lock:
            self._log("upsert_calls", [c.call_id for c in calls])
            for call in calls:
                status = self.world.statuses.get(call.call_id, "PENDING_DOWNLOAD")
                self.world.statuses[call.call_id] = "PENDING_DOWNLOAD" if status == "ERROR" else status
            return {c.call_id: self.world.statuses[c.call_id] for c in calls}

    def record_assets(self, assets: list[StoredAudio]) -> None:
        self.world.take_outage("database")
        with self.world.lock:
            self._log("record_assets", [a.call_id for a in assets])
            for asset in assets:
                self.world.assets[asset.call_id] = asset
                if self.world.statuses.get(asset.call_id) in ("PENDING_DOWNLOAD", "ERROR"):
                    self.world.statuses[asset.call_id] = "DOWNLOADED"

    def record_scores(self, scored: list[ScoredCall], end_to_end_ms: dict[str, int]) -> None:
        self.world.take_outage("database")
        with self.world.lock:
            self._log("record_scores", [s.call_id for s in scored])
            for result in scored:
                self.world.scores[result.call_id] = result
                self.world.statuses[result.call_id] = "SCORED"

    def upsert_scorecards(self, rows: list[dict[str, Any]]) -> None:
        self.world.take_outage("database")
        if "agent_scorecard" in self.world.denied_tables:
            import psycopg2.errors

            raise psycopg2.errors.InsufficientPrivilege("permission denied for table agent_scorecard")
        with self.world.lock:
            for row in rows:
                key = (row["dimension"], row["dimension_key"], row["granularity"], row["window_start"])
                stored = self.world.scorecards.get(key)
                if stored is None or stored["pane_index"] <= row["pane_index"]:
                    self.world.scorecards[key] = row

    def call_statuses(self, call_ids: list[str]) -> dict[str, str]:
        self.world.take_outage("database")
        with self.world.lock:
            return {call_id: self.world.statuses[call_id] for call_id in call_ids if call_id in self.world.statuses}

    def mark_errors(self, reasons: dict[str, str]) -> None:
        if not reasons:
            return
        self.world.take_outage("database")
        with self.world.lock:
            self._log("mark_errors", list(reasons))
            for call_id, reason in reasons.items():
                if call_id in self.world.statuses and self.world.statuses[call_id] != "SCORED":
                    self.world.statuses[call_id] = "ERROR"
                    self.world.errors[call_id] = reason

    def rescore_candidates(self, target: str, since: datetime | None = None, until: datetime | None = None,
                           agent_id: str | None = None) -> list[str]:
        self.world.take_outage("database")
        with self.world.lock:
            found = sorted(call_id for call_id, row in self.world.stored_calls.items()
                           if row["model_version"] != target and (since is None or row["started_at"] >= since)
                           and (until is None or row["started_at"] < until)
                           and (agent_id is None or row["agent_id"] == agent_id))
            self._log("rescore_candidates", found)
            return found

    def rescore_audio(self, call_ids: list[str], target: str) -> list[dict[str, Any]]:
        self.world.take_outage("database")
        with self.world.lock:
            self._log("rescore_audio", list(call_ids))
            return [self.world.stored_calls[call_id] for call_id in call_ids
                    if call_id in self.world.stored_calls and self.world.stored_calls[call_id]["model_version"] != target]

    def close(self) -> None:
        with self.world.lock:
            self.world.closed.append("database")


class _Acknowledged:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    """A kafka-python producer whose sends are acknowledged at once and recorded as (topic, key, decoded value)."""

    def __init__(self, world: World, client_id: str) -> None:
        self.world = world
        self.client_id = client_id

    def send(self, topic: str, key: bytes, value: bytes) -> _Acknowledged:
        with self.world.lock:
            self.world.published.append((topic, key.decode(), json.loads(value)))
        return _Acknowledged()

    def flush(self, timeout: float | None = None) -> None:
        self.world.take_outage("publisher")

    def close(self, timeout: float | None = None) -> None:
        with self.world.lock:
            self.world.closed.append("publisher")


class FakeS3:
    """The boto3 calls AudioStore makes for a recording under one part, and the Parquet export's: put_object, get_object."""

    def __init__(self, world: World) -> None:
        self.world = world

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **args: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.world.take_outage("audio_store")
        if any(Key.startswith(prefix) for prefix in self.world.denied_prefixes):
            import botocore.exceptions

            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                "PutObject")
        with self.world.lock:
            self.world.objects[Key] = bytes(Body)
            self.world.object_args[Key] = {k: args.get(k) for k in ("ServerSideEncryption", "Tagging", "ContentType", "Metadata")}
            return {"VersionId": f"v{len(self.world.objects)}"}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        with self.world.lock:
            body = self.world.objects[Key]
        return {"Body": io.BytesIO(body), "ContentLength": len(body)}

    def close(self) -> None:
        with self.world.lock:
            self.world.closed.append("audio_store")


class FakeReplay:
    """core.recorder.ReplayStream's surface: a context manager iterating the recording in chunks (or failing half-way)."""

    def __init__(self, body: bytes, chunk_size: int = 4096, fail_after_half: AvayaError | None = None) -> None:
        self.body = body
        self.chunk_size = chunk_size
        self.fail_after_half = fail_after_half

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.chunk_size):
            if self.fail_after_half is not None and start >= len(self.body) // 2:
                raise self.fail_after_half
            yield self.body[start:start + self.chunk_size]

    def __enter__(self) -> FakeReplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class FakeRecorder:
    """core.recorder.RecorderHttp's replay: the World's recording of the call, or its scripted failure."""

    def __init__(self, world: World) -> None:
        self.world = world

    def replay(self, inum: str) -> FakeReplay:
        self.world.take_outage("recorder")
        with self.world.lock:
            self.world.replays[inum] += 1
            error = self.world.take_failure(self.world.replay_failures, inum)
            body = self.world.recordings.get(inum)
            mid_stream = inum in self.world.fail_mid_stream
        if error is not None and not mid_stream:
            raise error
        if body is None:
            raise KeyError(f"the fake recorder has no recording {inum}")
        return FakeReplay(body, fail_after_half=error)

    def close(self) -> None:
        with self.world.lock:
            self.world.closed.append("recorder")


def fake_score(call_id: str) -> float:
    """A stable score per call, so a test can predict it."""
    return float(int(hashlib.sha256(call_id.encode()).hexdigest()[:4], 16) % 101)


class FakeScoring:
    """pipeline.io.scoring_client.ScoringClient's score(): reads the whole body it is given, answers like the service."""

    def __init__(self, world: World) -> None:
        self.world = world

    def score(self, *, call_id: str, agent_id: str | None, audio: Any, size: int, channel_layout: str | None = None,
              language: str | None = None) -> dict:
        self.world.take_outage("scoring")
        body = audio.read()
        if len(body) != size:
            raise AssertionError(f"scoring got {len(body)} bytes of {size}")
        with self.world.lock:
            self.world.scoring_requests.append((call_id, agent_id, hashlib.sha256(body).hexdigest()))
            self.world.scoring_languages[call_id] = language
            error = self.world.take_failure(self.world.scoring_failures, call_id)
        if error is not None:
            raise error
        answer = {"call_id": call_id, "score": fake_score(call_id), "scorable": True, "reason": None,
                  "model_version": self.world.model_version,
                  "breakdown": [{"criterion": "greeting", "score": 1.0}]}
        if self.world.transcribe:
            words = [{"start_s": 0.5, "end_s": 0.9, "text": "Xin", "confidence": 0.9},
                     {"start_s": 0.9, "end_s": 1.3, "text": "chào", "confidence": 0.7}]
            answer["transcript"] = {"engine": "faster-whisper", "asr_model": "whisper-base", "language": language,
                                    "language_source": "metadata", "word_count": 2, "confidence": 0.8, "text": "Xin chào",
                                    "segments": [{"start_s": 0.5, "end_s": 1.3, "text": "Xin chào", "speaker": "agent",
                                                  "words": words}]}
        return answer

    def model_version(self) -> str:
        self.world.take_outage("scoring")
        return self.world.model_version

    def close(self) -> None:
        with self.world.lock:
            self.world.closed.append("scoring")


@dataclass(frozen=True)
class _Record:
    offset: int
    value: bytes | None = None
    key: bytes | None = None


class FakeConsumer:
    """The kafka-python consumer calls CommitOffsets makes, over the World's partitions and the group's committed offsets."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.positions: dict[Any, int] = {}

    def _layout(self, tp: Any) -> tuple[frozenset[int], int]:
        return self.world.partitions[(tp.topic, tp.partition)]

    def committed(self, tp: Any) -> int | None:
        with self.world.lock:
            return self.world.group_offsets.get((tp.topic, tp.partition))

    def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {tp: 0 for tp in partitions}

    def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {tp: self._layout(tp)[1] for tp in partitions}

    def commit(self, offsets: dict[Any, Any]) -> None:
        self.world.take_outage("offset_consumer")
        with self.world.lock:
            for tp, meta in offsets.items():
                self.world.group_offsets[(tp.topic, tp.partition)] = meta.offset
                self.world.commits.append((tp.topic, tp.partition, meta.offset))

    def assign(self, partitions: list[Any]) -> None:
        return None

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[Any, list[_Record]]:
        """The first data record at or after each assigned position (control records are skipped, as Kafka does)."""
        found: dict[Any, list[_Record]] = {}
        for tp, position in self.positions.items():
            data, end = self._layout(tp)
            following = [offset for offset in data if offset >= position]
            if following:
                call_id = self.world.record_calls.get((tp.topic, tp.partition, min(following)))
                if call_id == WATERMARK_KEY:  # the poller's watermark marker
                    found[tp] = [_Record(min(following), b'{"watermark": "2026-11-25T10:00:00+00:00"}', WATERMARK_KEY.encode())]
                else:
                    found[tp] = [_Record(min(following), json.dumps({"call_id": call_id}).encode() if call_id else None,
                                         call_id.encode() if call_id else None)]
                self.positions[tp] = min(following) + 1
            else:
                self.positions[tp] = end
        return found

    def position(self, tp: Any) -> int:
        return self.positions[tp]

    def close(self, autocommit: bool = True) -> None:
        with self.world.lock:
            self.world.closed.append("offset_consumer")
