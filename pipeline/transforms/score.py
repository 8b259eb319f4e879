"""ScoreCall: stream each stored recording from S3 to the scoring service.

Retry policy (pipeline/io/resilience.py): while the service or S3 is unavailable (refused, timed out, 408/429/502/503/504) the
call is held and retried for up to the outage budget; an error of this call (HTTP 500, an unusable answer) is retried with full
jitter up to `scoring_attempts` times, then dead-lettered; a 4xx refusal goes to scoring.results.dlq at once.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline import metrics as prom
from pipeline.clients import StageClients
from pipeline.io.resilience import S3, SCORING
from pipeline.model import DeadLetter, EnrichedCall, ScoredCall, StoredAudio, iso, utcnow
from pipeline.options import JobConfig, language_of
from pipeline.transforms._bundles import BatchingDoFn, Held
from pipeline.transforms.download import dated_key, object_tags
from schemas.contracts import DEAD_LETTER_TAG


def transcript_key(call: EnrichedCall, asr_model: str) -> str:
    return dated_key(call, "transcripts", f"{call.call_id}_{asr_model}.json")


class _ScoreFn(BatchingDoFn):
    """StoredAudio → ScoredCall | dead letter (4xx at once with retries=1; 5xx/timeout after the last attempt)."""

    bound_name = "score"
    owned_clients = ("scoring", "store")

    def __init__(self, config: JobConfig, clients: StageClients) -> None:
        self.config = config
        self.clients = clients
        self.concurrency = config.scoring_concurrency
        self.scored = Metrics.counter(self.__class__, "calls_scored")
        self.failures = Metrics.counter(self.__class__, "scoring_failures")

    def setup(self) -> None:
        super().setup()
        prom.ensure_metrics_server(self.config.metrics_host, self.config.metrics_port)
        self.scoring = self.clients.scoring(pool_size=self.concurrency)
        self.store = self.clients.audio_store(max_pool=max(10, self.concurrency))

    def _score_once(self, audio: StoredAudio) -> ScoredCall:
        body, size = self.store.open(audio.s3_key, audio.s3_version_id)
        started = time.monotonic()
        try:
            answer = self.scoring.score(call_id=audio.call_id, agent_id=audio.call.agent_id, audio=body, size=size,
                                        language=language_of(audio.call.skill, self.config.skill_languages))
        finally:
            body.close()
        latency_ms = int((time.monotonic() - started) * 1000)
        prom.SCORING_LATENCY_MS.observe(latency_ms)
        answer, transcript = self._store_transcript(audio, answer)
        score = answer.get("score")
        return ScoredCall(audio=audio, score=None if score is None else float(score), scorable=bool(answer.get("scorable", True)),
                          reason=answer.get("reason"), model_version=str(answer["model_version"])[:32], latency_ms=latency_ms,
                          breakdown=list(answer.get("breakdown") or []), response=answer, scored_at=iso(utcnow()),
                          transcript=transcript)

    def _store_transcript(self, audio: StoredAudio, answer: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Put the answer's transcript in S3 and keep only its summary (with the key) in the answer stored in PostgreSQL."""
        full = answer.get("transcript")
        if not isinstance(full, dict) or not full.get("asr_model"):
            return answer, None
        key = transcript_key(audio.call, str(full["asr_model"]))
        tags = object_tags(audio.call, kind="transcript", asr_model=str(full["asr_model"]))
        document = {"call_id": audio.call_id, "model_version": answer.get("model_version"), "audio_s3_key": audio.s3_key,
                    **full}
        body = json.dumps(document, ensure_ascii=False).encode()
        self.store.put_stream(key, iter([body]), tags, lambda _head, _size, sha256: {"sha256": sha256},
                              content_type="application/json")
        summary = {"s3_key": key, "asr_model": str(full["asr_model"])[:64], "language": full.get("language"),
                   "word_count": int(full.get("word_count") or 0), "confidence": full.get("confidence")}
        return {**answer, "transcript": summary}, summary

    def work(self, audio: StoredAudio) -> ScoredCall | DeadLetter:
        # Full jitter: retries of many workers after an error spread out instead of arriving together.
        return self.attempted(
            f"scoring of {audio.call_id}", lambda _: self._score_once(audio), self.config.scoring_attempts,
            lambda n: random.uniform(0, self.config.scoring_backoff_s * 2 ** (n - 1)), (S3, SCORING),
            lambda error, tries: DeadLetter.of("score", error, retries=tries, payload=audio.call.raw, call_id=audio.call_id,
                                               source=audio.source))

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        out: list[tuple[str | None, Any, Held]] = []
        for item in held:
            result = item.work.result() if item.work else None
            out.append((DEAD_LETTER_TAG if isinstance(result, DeadLetter) else None, result, item))
        self.scored.inc(sum(1 for tag, _, _ in out if tag is None))
        return out


@beam.typehints.with_input_types(StoredAudio)
class ScoreCall(beam.PTransform):
    """StoredAudio → (ScoredCall, DeadLetter).

    Args:
        config: scoring concurrency and retry policy (and, without `clients`, the S3 and scoring-service settings).
        clients: where the stage's audio store and scoring client come from; None: the real ones of `config`.
    """

    def __init__(self, config: JobConfig, clients: StageClients | None = None) -> None:
        super().__init__()
        self.config = config
        self.clients = clients or StageClients(config)

    def expand(self, stored: Any) -> tuple[Any, Any]:
        results = (
            stored
            | "Score" >> beam.ParDo(_ScoreFn(self.config, self.clients)).with_input_types(StoredAudio)
            .with_output_types(ScoredCall).with_outputs(DEAD_LETTER_TAG, main="good")
        )
        return results.good, results[DEAD_LETTER_TAG]
