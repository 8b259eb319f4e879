"""Pluggable offline ASR for the transcript criteria: none (default), faster-whisper, viet-asr, pocketsphinx.

Every engine hears only speech: the VAD's segments of each channel are laid end to end (with a short pause between, so the
decoder sees utterance boundaries) and each recognised word is mapped back to its time in the call. Hold music, beeps and dead
air cost nothing. On stereo each channel is transcribed on its own, so agent and customer words never mix. No engine downloads a
model: a missing model is an error at start-up.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from audio import dsp
from audio.intervals import merge
from scoring_service.schemas import TranscriptSegment, Word
from scoring_service.vad import ANALYSIS_RATE

log = logging.getLogger(__name__)

ENGINES = ("none", "faster-whisper", "viet-asr", "pocketsphinx")
LANGUAGES = ("vi", "en")  # the scorecard has phrase lists for these; detection chooses among them
ENGINE_RATE = 16000
CHUNK_GAP_S = 0.6  # speech closer than this is one utterance: more context for the decoder
EDGE_PAD_S = 0.15  # VAD edges sit on the first/last loud frame; words start and end a little beyond
PAUSE_S = 0.4  # silence put between utterances in the speech-only track
# Whisper's own failure marks (its temperature-fallback thresholds): a decode this repetitive or this unlikely is a
# hallucination, mostly on speech it cannot follow; without fallback it would be kept, so it is dropped as unheard.
MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0


@dataclass
class Transcript:
    engine: str
    asr_model: str  # names the weights; part of the transcript's S3 key
    language: str | None
    language_source: str  # metadata | detected | engine (single-language engine)
    segments: list[TranscriptSegment] = field(default_factory=list)
    language_probability: float | None = None


class Transcriber(Protocol):
    name: str
    model_name: str

    def transcribe(
        self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]], language: str | None = None
    ) -> Transcript:
        """audio: speaker → 8 kHz float signal; speech: speaker → VAD segments; language: known language or None (detect)."""
        ...


@dataclass
class SpeechTrack:
    """One channel's speech laid end to end at 16 kHz, and the map back to call time."""

    speaker: str
    audio: np.ndarray
    chunks: list[tuple[float, float, float]]  # (track start, call start, length) in seconds

    def chunk_at(self, track_s: float) -> int:
        starts = [c[0] for c in self.chunks]
        return max(0, bisect.bisect_right(starts, track_s) - 1)

    def call_time(self, track_s: float, chunk: int) -> float:
        track_start, call_start, length = self.chunks[chunk]
        return call_start + min(max(track_s - track_start, 0.0), length)

    @property
    def seconds(self) -> float:
        return sum(c[2] for c in self.chunks)


def speech_track(speaker: str, x: np.ndarray, segments: list[tuple[float, float]]) -> SpeechTrack:
    duration = len(x) / ANALYSIS_RATE
    padded = [(max(0.0, s - EDGE_PAD_S), min(duration, e + EDGE_PAD_S)) for s, e in segments]
    pieces, chunks, t = [], [], 0.0
    pause = np.zeros(int(PAUSE_S * ANALYSIS_RATE), dtype=np.float32)
    for start, end in merge(padded, CHUNK_GAP_S):
        piece = x[int(start * ANALYSIS_RATE) : int(end * ANALYSIS_RATE)].astype(np.float32)
        if not len(piece):
            continue
        chunks.append((t, start, len(piece) / ANALYSIS_RATE))
        pieces += [piece, pause]
        t += (len(piece) + len(pause)) / ANALYSIS_RATE
    audio = dsp.resample(np.concatenate(pieces), ANALYSIS_RATE, ENGINE_RATE) if pieces else np.zeros(0, np.float32)
    return SpeechTrack(speaker, audio.astype(np.float32), chunks)


def _speaker_label(who: str) -> str:
    return who if who in ("agent", "customer") else "unknown"


TimedWord = tuple[float, float, str, float | None]  # start, end (s), text, confidence


def segments_from_words(track: SpeechTrack, words: list[TimedWord]) -> list[TranscriptSegment]:
    """Track-time words → call-time segments, one per utterance chunk, each word at its own time."""
    by_chunk: dict[int, list[Word]] = {}
    for start, end, text, confidence in words:
        text = text.strip()
        if not text:
            continue
        chunk = track.chunk_at((start + end) / 2)
        w0, w1 = track.call_time(start, chunk), track.call_time(end, chunk)
        conf = None if confidence is None else round(min(max(float(confidence), 0.0), 1.0), 3)
        by_chunk.setdefault(chunk, []).append(Word(start_s=round(w0, 3), end_s=round(max(w0, w1), 3), text=text, confidence=conf))
    out = []
    for chunk, chunk_words in sorted(by_chunk.items()):
        _track_start, call_start, length = track.chunks[chunk]
        out.append(
            TranscriptSegment(
                start_s=round(min(w.start_s for w in chunk_words), 3),
                end_s=round(max(max(w.end_s for w in chunk_words), min(call_start + length, chunk_words[-1].end_s)), 3),
                text=" ".join(w.text for w in chunk_words),
                speaker=_speaker_label(track.speaker),  # type: ignore[arg-type]
                words=chunk_words,
            )
        )
    return out


def speech_tracks(audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]]) -> list[SpeechTrack]:
    tracks = [speech_track(who, audio[who], segs) for who, segs in speech.items()]
    return [t for t in tracks if t.chunks]


def _sorted(segments: list[TranscriptSegment]) -> list[TranscriptSegment]:
    return sorted(segments, key=lambda s: (s.start_s, s.speaker))


def per_utterance(
    audio: dict[str, np.ndarray],
    speech: dict[str, list[tuple[float, float]]],
    decode: Callable[[np.ndarray], list[TimedWord]],
) -> list[TranscriptSegment]:
    """Segments from an engine that decodes one utterance at a time: `decode` gets each utterance's 16 kHz audio and gives
    its words with times from the utterance's start."""
    segments = []
    for track in speech_tracks(audio, speech):
        for track_start, _call_start, length in track.chunks:
            piece = track.audio[int(track_start * ENGINE_RATE) : int((track_start + length) * ENGINE_RATE)]
            words = [(track_start + start, track_start + end, text, c) for start, end, text, c in decode(piece)]
            segments += segments_from_words(track, words)
    return _sorted(segments)


class FasterWhisperTranscriber:
    """Whisper (CTranslate2 weights on disk, int8 on CPU) through faster-whisper; words with times and probabilities."""

    name = "faster-whisper"

    def __init__(self, model_dir: Path | None, beam_size: int = 1, cpu_threads: int = 2) -> None:
        if not model_dir or not (Path(model_dir) / "model.bin").is_file():
            raise RuntimeError(
                f"ASR model directory {model_dir!s} holds no CTranslate2 model.bin (set CCAS_SCORING_ASR_MODEL_DIR to a "
                "faster-whisper model; `bash scripts/models.sh` assembles Whisper base into ${CCAS_CACHE}/models)"
            )
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise RuntimeError("ASR engine faster-whisper needs `pip install faster-whisper`") from exc
        self.model_name = _whisper_model_name(Path(model_dir))
        self.beam_size = beam_size
        self._model = WhisperModel(
            str(model_dir), device="cpu", compute_type="int8", cpu_threads=cpu_threads, local_files_only=True
        )
        self._lock = threading.Lock()  # one model, decoded serially: its threads already use the cores

    def detect_language(self, tracks: list[SpeechTrack]) -> tuple[str, float]:
        """The most likely of LANGUAGES on the longest channel's first 30 s of speech."""
        longest = max(tracks, key=lambda t: t.seconds)
        with self._lock:
            _lang, _p, probs = self._model.detect_language(audio=longest.audio[: 30 * ENGINE_RATE])
        allowed = {lang: p for lang, p in probs if lang in LANGUAGES}
        best = max(allowed, key=allowed.__getitem__) if allowed else LANGUAGES[0]
        return best, round(float(allowed.get(best, 0.0)), 3)

    def transcribe(
        self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]], language: str | None = None
    ) -> Transcript:
        tracks = speech_tracks(audio, speech)
        result = Transcript(self.name, self.model_name, language, "metadata" if language else "detected")
        if not tracks:
            return result
        if language is None:
            result.language, result.language_probability = self.detect_language(tracks)
        segments = []
        for track in tracks:
            with self._lock:
                parts, _info = self._model.transcribe(
                    track.audio,
                    language=result.language,
                    beam_size=self.beam_size,
                    temperature=0.0,  # no temperature fallback: its re-decodes cost up to 5x on hard audio for little gain
                    word_timestamps=True,
                    vad_filter=False,  # the track is already speech only
                    condition_on_previous_text=False,  # one misheard utterance must not derail the next
                )
                words = [
                    (w.start, w.end, w.word, w.probability)
                    for p in parts
                    if p.compression_ratio <= MAX_COMPRESSION_RATIO and p.avg_logprob >= MIN_AVG_LOGPROB
                    for w in (p.words or [])
                ]
            segments += segments_from_words(track, words)
        result.segments = _sorted(segments)
        return result


def _whisper_model_name(model_dir: Path) -> str:
    """'whisper-base'-style name: CTranslate2 configs carry no size, but their alignment heads name decoder layers (the last
    alignment layer + 1 is the layer count for the official sizes); otherwise the directory's name."""
    import json

    sizes = {4: "tiny", 6: "base", 12: "small", 24: "medium", 32: "large"}
    try:
        heads = json.loads((model_dir / "config.json").read_text()).get("alignment_heads") or []
        layers = max(int(layer) for layer, _head in heads) + 1 if heads else 0
    except (OSError, ValueError, TypeError):
        layers = 0
    return f"whisper-{sizes[layers]}" if layers in sizes else model_dir.name


class VietAsrTranscriber:
    """viet-asr (Vietnamese only; its ONNX model is compiled into the wheel). Gives text per utterance, no word times: words
    are spread evenly over their utterance, with no confidence."""

    name = "viet-asr"
    model_name = "viet-asr"

    def __init__(self) -> None:
        try:
            import vietasr
        except ImportError as exc:
            raise RuntimeError("ASR engine viet-asr needs `pip install viet-asr`") from exc
        self._vietasr = vietasr
        # A native pipeline is not shared between threads, and each holds its ~70 MB model: idle ones are reused, so at
        # most as many exist as calls were ever transcribed at once (the service's worker count), whatever thread runs them.
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._idle.put(self._vietasr.Pipeline.preset("transcribe"))  # fail at start-up, not on the first call

    def _transcribe(self, pcm: np.ndarray) -> str:
        try:
            pipeline = self._idle.get_nowait()
        except queue.Empty:
            pipeline = self._vietasr.Pipeline.preset("transcribe")
        try:
            return str(pipeline.transcribe(pcm, float(ENGINE_RATE)).text).strip()
        finally:
            self._idle.put(pipeline)

    def transcribe(
        self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]], language: str | None = None
    ) -> Transcript:
        def decode(piece: np.ndarray) -> list[TimedWord]:
            # An int16 array: the engine silently returns "" for float input.
            tokens = self._transcribe(dsp.to_int16(piece)).split()
            step = len(piece) / ENGINE_RATE / max(len(tokens), 1)
            return [(i * step, (i + 1) * step, token, None) for i, token in enumerate(tokens)]

        return Transcript(self.name, self.model_name, "vi", "engine", per_utterance(audio, speech, decode))


class PocketsphinxTranscriber:
    """CMU PocketSphinx, en-US model bundled in its wheel (16 kHz; English only, weak on 8 kHz calls)."""

    name = "pocketsphinx"
    model_name = "pocketsphinx-en-us"

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # noqa: F401 - fail at start-up, not on the first call

        self._local = threading.local()

    def _decoder(self):  # type: ignore[no-untyped-def]
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            from pocketsphinx import Decoder

            decoder = self._local.decoder = Decoder(samprate=ENGINE_RATE, loglevel="FATAL")
        return decoder

    def transcribe(
        self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]], language: str | None = None
    ) -> Transcript:
        decoder = self._decoder()

        def decode(piece: np.ndarray) -> list[TimedWord]:
            decoder.start_utt()
            decoder.process_raw(dsp.to_int16(piece).tobytes(), full_utt=True)
            decoder.end_utt()
            # Segment frames are 10 ms; fillers (<sil>, [NOISE]) carry no words; "word(2)" names a pronunciation variant.
            return [
                (seg.start_frame / 100, seg.end_frame / 100, seg.word.split("(")[0], None)
                for seg in decoder.seg()
                if not seg.word.startswith(("<", "["))
            ]

        return Transcript(self.name, self.model_name, "en", "engine", per_utterance(audio, speech, decode))


class RoutedTranscriber:
    """A default engine plus engines chosen per language (e.g. viet-asr for Vietnamese). The language comes from the
    recording's metadata or, when unknown, from the default engine's detection."""

    def __init__(self, default: Transcriber, by_language: dict[str, Transcriber]) -> None:
        self.default, self.by_language = default, by_language
        self.name = default.name
        self.model_name = default.model_name

    def transcribe(
        self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]], language: str | None = None
    ) -> Transcript:
        source, probability = "metadata", None
        if language is None and isinstance(self.default, FasterWhisperTranscriber):
            tracks = speech_tracks(audio, speech)
            if tracks:
                (language, probability), source = self.default.detect_language(tracks), "detected"
        engine = self.by_language.get(language or "", self.default)
        heard = engine.transcribe(audio, speech, language)
        if language is not None:
            heard.language, heard.language_source, heard.language_probability = language, source, probability
        return heard


def parse_language_engines(text: str) -> dict[str, str]:
    """'vi=viet-asr,en=faster-whisper' → {'vi': 'viet-asr', 'en': 'faster-whisper'}; 'none' → {}; errors name the bad item."""
    out: dict[str, str] = {}
    if text.strip().lower() == "none":
        return out
    for item in filter(None, (part.strip() for part in text.split(","))):
        language, sep, engine = item.partition("=")
        if not sep or language.strip() not in LANGUAGES or engine.strip() not in ENGINES[1:]:
            raise ValueError(
                f"bad language engine {item!r}: write language=engine, language in {LANGUAGES}, engine in {ENGINES[1:]}"
            )
        out[language.strip()] = engine.strip()
    return out


def make_transcriber(
    engine: str, model_dir: Path | None = None, beam_size: int = 1, cpu_threads: int = 2, language_engines: str = ""
) -> Transcriber | None:
    """The configured engine (routed per language when `language_engines` says so), or None for 'none'. Raises at start-up
    on a bad configuration."""
    if engine == "none":
        return None
    routes = parse_language_engines(language_engines)
    if routes:
        default = make_transcriber(engine, model_dir, beam_size, cpu_threads)
        assert default is not None
        engines = {name: make_transcriber(name, model_dir, beam_size, cpu_threads) for name in set(routes.values())}
        return RoutedTranscriber(default, {lang: engines[name] for lang, name in routes.items()})  # type: ignore[misc]
    if engine == "faster-whisper":
        return FasterWhisperTranscriber(model_dir, beam_size=beam_size, cpu_threads=cpu_threads)
    if engine == "viet-asr":
        return VietAsrTranscriber()
    if engine == "pocketsphinx":
        return PocketsphinxTranscriber()
    raise ValueError(f"unknown ASR engine {engine!r} ({', '.join(ENGINES)})")
