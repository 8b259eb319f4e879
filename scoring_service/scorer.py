"""One uploaded WAV → ScoreResponse: caps, decode, features, transcript, scorecard. Sync: routes run it in a thread."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydantic import TypeAdapter, ValidationError

from audio.wav import WavError, decode_frames, read_wav_info
from scoring_service import observability
from scoring_service.asr import LANGUAGES, Transcriber, Transcript, make_transcriber
from scoring_service.errors import BadRequest, PayloadTooLarge, Unprocessable, from_wav_error
from scoring_service.features import Features, extract
from scoring_service.mono import resolve_roles
from scoring_service.schemas import CALL_ID_PATTERN, ScoreResponse, TranscriptOut, TranscriptSegment
from scoring_service.scorecard import Scorecard, evaluate, load_scorecard
from scoring_service.sentiment import score_text, sentiment_metrics
from scoring_service.settings import ScoringSettings
from scoring_service.transcript import transcript_metrics
from scoring_service.voice_encoder import shared_encoder

log = logging.getLogger(__name__)

_SEGMENTS = TypeAdapter(list[TranscriptSegment])
_LAYOUTS = ("mono", "agent_left", "agent_right")
_EVIDENCE_NOTES = {
    "dead_air": "dead air {d:.1f} s",
    "hold": "hold {d:.1f} s",
    "overtalk": "overtalk {d:.1f} s",
    "interruptions_by_agent": "agent started over the customer ({d:.1f} s)",
    "monologue": "agent monologue {d:.1f} s",
    "response_gap": "reply after {d:.1f} s",
}


@dataclass(frozen=True)
class ScoreFields:
    call_id: str | None = None
    agent_id: str | None = None
    channel_layout: str | None = None
    transcript: list[TranscriptSegment] | None = None
    language: str | None = None


def parse_fields(
    call_id: Any = None, agent_id: Any = None, channel_layout: Any = None, transcript: Any = None, language: Any = None
) -> ScoreFields:
    """Form fields → ScoreFields; anything malformed is a 400 naming the field."""
    for name, value in (
        ("call_id", call_id),
        ("agent_id", agent_id),
        ("channel_layout", channel_layout),
        ("transcript", transcript),
        ("language", language),
    ):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"{name} must be a text field, not a file", "bad_field")
    if call_id is not None and not re.fullmatch(CALL_ID_PATTERN, call_id):
        raise BadRequest("call_id must match ^[0-9A-Za-z_-]{1,32}$", "bad_call_id")
    # agent_id is only logged: any printable name a recorder reports is fine (a strict pattern would dead-letter good calls).
    if agent_id is not None and not re.fullmatch(r"[^\x00-\x1f\x7f]{1,128}", agent_id):
        raise BadRequest("agent_id must be 1-128 printable characters", "bad_agent_id")
    if channel_layout is not None and channel_layout not in _LAYOUTS:
        raise BadRequest(f"channel_layout must be one of {', '.join(_LAYOUTS)}", "bad_channel_layout")
    if language is not None:
        # Recorders report a locale ("vi-VN", "en_US"); the scorecard knows languages.
        language = language.strip().lower().replace("_", "-").split("-")[0] or None
        if language is not None and language not in LANGUAGES:
            raise BadRequest(f"language must be one of {', '.join(LANGUAGES)} (or a locale of one)", "bad_language")
    segments = None
    if transcript is not None:
        try:
            data = json.loads(transcript)
            if isinstance(data, dict):
                data = data.get("segments")
            segments = _SEGMENTS.validate_python(data)
        except (ValueError, ValidationError) as exc:
            raise BadRequest(
                f"transcript must be JSON segments [{{start_s, end_s, text, speaker?}}]: {exc}"[:400], "bad_transcript"
            ) from exc
    return ScoreFields(call_id, agent_id, channel_layout, segments, language)


def _stream_size(fileobj: BinaryIO) -> int:
    end = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(0)
    return end


class Scorer:
    def __init__(self, settings: ScoringSettings, card: Scorecard | None = None, transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self.card = card or load_scorecard(settings.scorecard)
        self.transcriber = (
            transcriber
            if transcriber is not None
            else make_transcriber(
                settings.asr_engine,
                settings.asr_model_dir,
                settings.asr_beam_size,
                settings.asr_threads,
                settings.asr_language_engines,
            )
        )
        self.voice_encoder = shared_encoder(settings.speaker_model) if settings.speaker_model else None
        self.slots = asyncio.Semaphore(settings.workers)

    @property
    def model_version(self) -> str:
        return self.card.model_version

    def score_file(self, fileobj: BinaryIO, fields: ScoreFields, max_duration_s: float | None = None) -> ScoreResponse:
        started = time.perf_counter()
        try:
            info = read_wav_info(fileobj, _stream_size(fileobj))
        except WavError as exc:
            raise from_wav_error(exc) from exc
        cap = max_duration_s or self.settings.max_duration_s
        if info.n_frames == 0:
            raise Unprocessable("the WAV holds no audio frames (0 seconds)", "empty_audio")
        if info.duration_s > cap:
            raise PayloadTooLarge(f"audio lasts {info.duration_s:.0f} s; the cap is {cap:.0f} s", "audio_too_long")
        if info.n_frames * info.channels * 2 > self.settings.max_decoded_mb * 1024 * 1024:
            raise PayloadTooLarge(f"decoded audio would exceed {self.settings.max_decoded_mb:.0f} MB", "audio_too_large")
        layout = fields.channel_layout or ("agent_left" if info.channels == 2 else "mono")
        if info.channels == 1 and layout != "mono":
            raise BadRequest(f"channel_layout {layout} needs a stereo file; this one is mono", "channel_layout_mismatch")
        pcm = decode_frames(fileobj.read(info.n_frames * info.bytes_per_frame), info)
        if len(pcm) == 0:
            raise Unprocessable("the data chunk is empty", "empty_audio")
        features = extract(pcm, info.sample_rate, layout)
        del pcm
        response = self._score(features, fields, info.codec, info.sample_rate, info.channels)
        response.latency_ms = round((time.perf_counter() - started) * 1000, 1)
        observability.AUDIO_SECONDS.inc(features.duration_s)
        observability.CALLS.labels(scorable=str(response.scorable).lower()).inc()
        return response

    def _score(self, f: Features, fields: ScoreFields, codec: str, rate: int, channels: int) -> ScoreResponse:
        card = self.card
        reason = None
        if f.duration_s < card.min_duration_s:
            reason = f"too_short: {f.duration_s:.2f} s < {card.min_duration_s:.2f} s"
        elif f.metrics["speech_total_s"] < card.min_speech_s:
            reason = f"silent: {f.metrics['speech_total_s']:.2f} s of speech < {card.min_speech_s:.2f} s"
        elif f.layout != "mono" and (f.metrics.get("agent_talk_s") or 0.0) < card.min_speech_s:
            reason = f"no_agent_speech: {f.metrics.get('agent_talk_s') or 0.0:.2f} s on the agent channel"
        source = "none"
        segments, transcript, language = None, None, fields.language
        if reason is None:
            if fields.transcript is not None:
                segments, source = fields.transcript, "request"
            elif self.transcriber is not None:
                heard = self.transcriber.transcribe(f.signals, f.speech, fields.language)
                segments, source, language = heard.segments, heard.engine, heard.language
                transcript = transcript_out(heard)
        roles = None
        if reason is None and f.layout == "mono" and self.voice_encoder is not None:
            roles = resolve_roles(f, self.voice_encoder, segments, card.phrases, language)
            if roles.segments is not None:
                segments = roles.segments
                if transcript is not None:
                    transcript.segments = roles.segments
        t_metrics, t_na, t_evidence = transcript_metrics(
            segments, card.phrases, f.duration_s, f.intervals.get("hold", []), language, card.matching
        )
        s_metrics, s_na, s_evidence = sentiment_metrics(segments, language)
        t_metrics, t_na, t_evidence = {**t_metrics, **s_metrics}, {**t_na, **s_na}, {**t_evidence, **s_evidence}
        if transcript is not None:
            for segment in transcript.segments:
                segment.sentiment = round(score_text(segment.text, language), 3)
        metrics = {**f.metrics, **t_metrics}
        metrics["transcript_segments"] = len(segments) if segments is not None else None
        not_applicable = {**f.not_applicable, **t_na}
        intervals = dict(f.intervals)
        if roles is not None:
            metrics.update(roles.metrics)
            intervals.update(roles.intervals)
            not_applicable = {k: v for k, v in not_applicable.items() if k not in roles.metrics} | roles.not_applicable
        evidence = dict(t_evidence)
        for key, ivs in intervals.items():
            template = _EVIDENCE_NOTES.get(key, key)
            evidence[key] = [(s, e, template.format(d=e - s)) for s, e in ivs]
        score, breakdown = (None, []) if reason else evaluate(card, metrics, not_applicable, evidence)
        if reason:
            log.info("call %s (agent %s) not scorable: %s", fields.call_id, fields.agent_id, reason)
        else:
            log.debug("call %s (agent %s) scored %.2f", fields.call_id, fields.agent_id, score)
        return ScoreResponse(
            call_id=fields.call_id,
            score=score,
            scorable=reason is None,
            reason=reason,
            model_version=card.model_version,
            duration_s=f.duration_s,
            codec=codec,
            sample_rate=rate,
            channels=channels,
            channel_layout=f.layout,  # type: ignore[arg-type]
            transcript_source=source,  # type: ignore[arg-type]
            language=language,
            transcript=transcript,
            metrics=metrics,
            breakdown=breakdown,
            latency_ms=0.0,
        )


def transcript_out(heard: Transcript) -> TranscriptOut:
    words = [w for s in heard.segments for w in s.words]
    confidences = [w.confidence for w in words if w.confidence is not None]
    return TranscriptOut(
        engine=heard.engine,
        asr_model=heard.asr_model,
        language=heard.language,
        language_source=heard.language_source,
        language_probability=heard.language_probability,
        word_count=len(words),
        confidence=round(sum(confidences) / len(confidences), 3) if confidences else None,
        text=" ".join(s.text for s in heard.segments),
        segments=heard.segments,
    )
