"""Pluggable ASR for the transcript criteria: none (default), pocketsphinx (English, model in wheel), faster-whisper (local).

Each backend transcribes the speech segments the VAD found (per speaker on stereo), so silence and hold music cost nothing and
every transcript segment keeps its time and speaker. No backend ever downloads a model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from audio import dsp
from audio.intervals import merge
from scoring_service.schemas import TranscriptSegment
from scoring_service.vad import ANALYSIS_RATE

log = logging.getLogger(__name__)

MAX_CHUNK_S = 30.0
CHUNK_GAP_S = 0.6  # speech closer than this is decoded as one utterance: more context, fewer decoder restarts


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]]) -> list[TranscriptSegment]:
        """audio: speaker → 8 kHz float signal; speech: speaker → segments. Speakers: agent/customer, or line (mono)."""
        ...


def _chunks(segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for start, end in merge(segments, CHUNK_GAP_S):
        while end - start > MAX_CHUNK_S:
            out.append((start, start + MAX_CHUNK_S))
            start += MAX_CHUNK_S
        out.append((start, end))
    return out


def _speaker_label(who: str) -> str:
    return who if who in ("agent", "customer") else "unknown"


class PocketsphinxTranscriber:
    """CMU PocketSphinx with the en-US acoustic model and dictionary bundled in the `pocketsphinx` wheel (16 kHz)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        from pocketsphinx import Decoder  # noqa: F401 - fail at start-up, not on the first call

        self._local = threading.local()

    def _decoder(self):  # type: ignore[no-untyped-def]
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            from pocketsphinx import Decoder

            decoder = self._local.decoder = Decoder(samprate=16000, loglevel="FATAL")
        return decoder

    def transcribe(self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]]) -> list[TranscriptSegment]:
        decoder = self._decoder()
        out = []
        for who, segments in speech.items():
            for start, end in _chunks(segments):
                piece = audio[who][int(start * ANALYSIS_RATE) : int(end * ANALYSIS_RATE)]
                pcm = dsp.to_int16(dsp.resample(piece, ANALYSIS_RATE, 16000))
                decoder.start_utt()
                decoder.process_raw(pcm.tobytes(), full_utt=True)
                decoder.end_utt()
                hyp = decoder.hyp()
                text = hyp.hypstr.strip() if hyp is not None else ""
                if text:
                    out.append(
                        TranscriptSegment(start_s=round(start, 3), end_s=round(end, 3), text=text, speaker=_speaker_label(who))
                    )
        return sorted(out, key=lambda s: (s.start_s, s.speaker))


class FasterWhisperTranscriber:
    """faster-whisper (CTranslate2) from a model directory on disk; local_files_only: a missing model fails, never downloads."""

    name = "faster-whisper"

    def __init__(self, model_dir: Path) -> None:
        if not model_dir or not Path(model_dir).is_dir():
            raise RuntimeError(
                f"faster-whisper model directory {model_dir!s} does not exist (set CCAS_SCORING_WHISPER_MODEL_DIR)"
            )
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise RuntimeError("ASR backend faster-whisper needs `pip install faster-whisper`") from exc
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", local_files_only=True)
        self._lock = threading.Lock()

    def transcribe(self, audio: dict[str, np.ndarray], speech: dict[str, list[tuple[float, float]]]) -> list[TranscriptSegment]:
        out = []
        for who, segments in speech.items():
            for start, end in _chunks(segments):
                piece = dsp.resample(audio[who][int(start * ANALYSIS_RATE) : int(end * ANALYSIS_RATE)], ANALYSIS_RATE, 16000)
                with self._lock:  # one CTranslate2 model, used serially
                    parts, _info = self._model.transcribe(piece, beam_size=1, vad_filter=False)
                    text = " ".join(p.text.strip() for p in parts).strip()
                if text:
                    out.append(
                        TranscriptSegment(start_s=round(start, 3), end_s=round(end, 3), text=text, speaker=_speaker_label(who))
                    )
        return sorted(out, key=lambda s: (s.start_s, s.speaker))


def make_transcriber(backend: str, whisper_model_dir: Path | None = None) -> Transcriber | None:
    """The configured backend, or None for 'none'. Raises at start-up on a bad configuration."""
    if backend == "none":
        return None
    if backend == "pocketsphinx":
        return PocketsphinxTranscriber()
    if backend == "faster-whisper":
        return FasterWhisperTranscriber(whisper_model_dir)  # type: ignore[arg-type]
    raise ValueError(f"unknown ASR backend {backend!r} (none, pocketsphinx, faster-whisper)")
