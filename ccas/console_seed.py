"""Demo and test data for the QA console: calls synthesised by callgen, scored by the real scorer in process, stored as the
pipeline stores them (WAV in S3 under raw/YYYY/MM/DD/ with SSE-S3, rows in call, audio_asset, scoring_result, transcript),
plus bulk rows for volume (the bench's 10,000 calls) that reuse a real breakdown with varied scores.

The transcript document is the scored call's script (what callgen made each party say) with each line's words spread evenly
over its utterance: what an ASR would give, without running one. It is labelled asr_model `callgen-script`.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg2.extras import Json, execute_values

from audio.wav import wav_bytes
from callgen import plan_call, render_call

SCRIPT_MODEL = "callgen-script"
SSE = "AES256"  # what the pipeline writes with (pipeline/io/storage.py)


@dataclass
class SeededCall:
    call_id: str
    agent_id: str
    started_at: datetime
    duration_s: float
    wav: bytes
    details: dict[str, Any]
    transcript: dict[str, Any]
    channels: int

    @property
    def score(self) -> float | None:
        return self.details.get("score")


def _words(text: str, start_s: float, end_s: float) -> list[dict[str, Any]]:
    words = text.split()
    step = (end_s - start_s) / max(1, len(words))
    return [{"start_s": round(start_s + i * step, 3), "end_s": round(start_s + (i + 1) * step, 3), "text": word,
             "confidence": None} for i, word in enumerate(words)]


def scored_call(seed: int, call_id: str, agent_id: str, started_at: datetime, duration_s: float = 45.0,
                language: str = "en") -> SeededCall:
    """One synthetic stereo call, µ-law 8 kHz as Avaya replays it, scored by the real scorer with its script as transcript."""
    from scoring_service.schemas import TranscriptSegment
    from scoring_service.scorer import ScoreFields, Scorer
    from scoring_service.settings import ScoringSettings

    plan = plan_call(seed, duration_s=duration_s, language=language, stereo=True, force_hold=duration_s >= 60)
    wav = wav_bytes(render_call(plan), 8000, "ulaw")
    segments = [TranscriptSegment(start_s=u.start_s, end_s=u.end_s, text=u.text, speaker=u.speaker) for u in plan.utterances]
    scorer = Scorer(ScoringSettings(asr_engine="none", token="console-seed-token-000"))
    answer = scorer.score_file(io.BytesIO(wav), ScoreFields(call_id=call_id, agent_id=agent_id, transcript=segments,
                                                            language=language)).model_dump(mode="json")
    transcript = {"call_id": call_id, "model_version": answer["model_version"], "engine": "request", "asr_model": SCRIPT_MODEL,
                  "language": language, "word_count": sum(len(u.text.split()) for u in plan.utterances), "confidence": None,
                  "segments": [{"speaker": u.speaker, "start_s": u.start_s, "end_s": u.end_s, "text": u.text,
                                "words": _words(u.text, u.start_s, u.end_s)} for u in plan.utterances]}
    return SeededCall(call_id, agent_id, started_at, plan.duration_s, wav, answer, transcript, 2)


def store(s3: Any, bucket: str, connection: Any, call: SeededCall, skill: str = "billing", agent_name: str | None = None,
          model_version: str | None = None) -> None:
    """Put the call's WAV and transcript in S3 (SSE) and its rows in PostgreSQL, as the pipeline would; the caller commits."""
    import hashlib

    day = call.started_at
    audio_key = f"raw/{day:%Y}/{day:%m}/{day:%d}/{call.call_id}.wav"
    transcript_key = f"transcripts/{day:%Y}/{day:%m}/{day:%d}/{call.call_id}_{SCRIPT_MODEL}.json"
    put = s3.put_object(Bucket=bucket, Key=audio_key, Body=call.wav, ServerSideEncryption=SSE, ContentType="audio/wav",
                        Tagging=f"call_id={call.call_id}&agent_id={call.agent_id}&date={day:%Y-%m-%d}")
    s3.put_object(Bucket=bucket, Key=transcript_key, Body=json.dumps(call.transcript).encode(), ServerSideEncryption=SSE,
                  ContentType="application/json")
    version = model_version or call.details["model_version"]
    details = {**call.details, "model_version": version,
               "transcript": {"s3_key": transcript_key, "asr_model": SCRIPT_MODEL, "language": call.transcript["language"]}}
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO agent (agent_id, full_name) VALUES (%s, %s) ON CONFLICT (agent_id) DO NOTHING",
                       (call.agent_id, agent_name))
        cursor.execute("INSERT INTO call (call_id, started_at, ended_at, duration_seconds, agent_id, skill, status)"
                       " VALUES (%s, %s, %s, %s, %s, %s, 'SCORED')",
                       (call.call_id, day, day + timedelta(seconds=call.duration_s), call.duration_s, call.agent_id, skill))
        cursor.execute("INSERT INTO audio_asset (call_id, s3_key, s3_version_id, sha256, codec, sample_rate, channels,"
                       " duration_seconds, size_bytes, status) VALUES (%s, %s, %s, %s, 'ulaw', 8000, %s, %s, %s, 'READY')",
                       (call.call_id, audio_key, put.get("VersionId"), hashlib.sha256(call.wav).hexdigest(), call.channels,
                        call.duration_s, len(call.wav)))
        add_result(cursor, call.call_id, call.score, version, details, day + timedelta(seconds=call.duration_s + 30))
        cursor.execute("INSERT INTO transcript (call_id, asr_model, language, s3_key, word_count) VALUES (%s, %s, %s, %s, %s)",
                       (call.call_id, SCRIPT_MODEL, call.transcript["language"], transcript_key,
                        call.transcript["word_count"]))


def add_result(cursor: Any, call_id: str, score: float | None, model_version: str, details: dict[str, Any],
               created_at: datetime) -> None:
    cursor.execute("INSERT INTO scoring_result (call_id, score, scorable, model_version, details, created_at, updated_at)"
                   " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (call_id, score, score is not None, model_version, Json({**details, "model_version": model_version}),
                    created_at, created_at))


def varied_details(template: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The template's breakdown with each criterion passed or failed at random and the score recomputed from the points."""
    breakdown = []
    for row in template.get("breakdown") or []:
        row = dict(row)
        if row.get("applicable"):
            row["passed"] = rng.random() < 0.75
            row["points"] = row["max_points"] if row["passed"] else 0.0
        breakdown.append(row)
    # Weights are rounded per criterion: their sum can pass 100 by a hundredth.
    score = min(100.0, round(sum(float(row["points"]) for row in breakdown if row.get("applicable")), 2))
    return {**template, "breakdown": breakdown, "score": score}


def bulk_calls(connection: Any, template: dict[str, Any], count: int, agents: list[str], newest: datetime, days: int,
               prefix: str, seed: int = 7, skills: tuple[str, ...] = ("billing", "support", "sales")) -> int:
    """`count` scored calls spread over `days` days before `newest`, rows only (no audio); returns how many were inserted."""
    rng = random.Random(seed)
    calls, results = [], []
    with connection.cursor() as cursor:
        execute_values(cursor, "INSERT INTO agent (agent_id, full_name) VALUES %s ON CONFLICT (agent_id) DO NOTHING",
                       [(agent, f"Agent {agent}") for agent in agents])
        for index in range(count):
            started = newest - timedelta(seconds=rng.uniform(0, days * 86400))
            duration = round(rng.uniform(30, 600), 2)
            call_id = f"{prefix}{index:06d}"
            details = varied_details(template, rng)
            calls.append((call_id, started, started + timedelta(seconds=duration), duration, rng.choice(agents),
                          rng.choice(skills), "SCORED"))
            results.append((call_id, details["score"], True, details["model_version"], Json(details),
                            started + timedelta(seconds=duration + 30), started + timedelta(seconds=duration + 30)))
        execute_values(cursor, "INSERT INTO call (call_id, started_at, ended_at, duration_seconds, agent_id, skill, status)"
                       " VALUES %s", calls, page_size=1000)
        execute_values(cursor, "INSERT INTO scoring_result (call_id, score, scorable, model_version, details, created_at,"
                       " updated_at) VALUES %s", results, page_size=1000)
    return count
