"""Real speech from espeak-ng, trimmed to the voiced extent and cached on disk.

Each utterance is synthesised once per (voice, speed, pitch, text, rate) and kept under `${CCAS_CACHE}/callgen/tts/`, so planning
and rendering a call (which both need the audio: the plan's timeline is laid out from real utterance lengths) stay cheap.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from audio import dsp
from audio.wav import read_wav

log = logging.getLogger(__name__)

SYNTH_VERSION = "2"
# The voiced extent runs from the first to the last 5 ms frame within this many dB of the utterance's loudest frame. espeak-ng
# leaves ~100 ms of -60 dB residue after the last phoneme; nobody hears it, so it is not talk time.
_TRIM_BELOW_PEAK_DB = 30.0


def cache_root() -> Path:
    return Path(os.environ.get("CCAS_CACHE") or Path.home() / ".cache" / "ccas") / "callgen"


@lru_cache(maxsize=1)
def _espeak() -> tuple[str, str]:
    """(binary, version line): the version is part of the cache key, another espeak-ng build speaks slightly differently."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); the call generator needs it for real speech")
    version = subprocess.run([binary, "--version"], check=True, capture_output=True, text=True, timeout=30).stdout.strip()
    return binary, version


def synthesize(text: str, voice: str, speed: int, pitch: int, sample_rate: int = 8000) -> np.ndarray:
    """Speech for `text` as float32 at `sample_rate`, trimmed to its voiced extent, peak-normalised to 0.5."""
    binary, version = _espeak()
    key = hashlib.sha256(f"{SYNTH_VERSION}|{version}|{voice}|{speed}|{pitch}|{sample_rate}|{text}".encode()).hexdigest()[:32]
    path = cache_root() / "tts" / key[:2] / f"{key}.npy"
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            log.warning("unreadable TTS cache entry %s; synthesising again", path)
    # Word gap -g 1 (10 ms) keeps an utterance one continuous stretch of speech, as a fluent talker's would be.
    cmd = [binary, "-v", voice, "-s", str(speed), "-p", str(pitch), "-g", "1", "--stdout", text]
    wav = subprocess.run(cmd, check=True, capture_output=True, timeout=60).stdout
    pcm, rate, _ = read_wav(wav)
    speech = dsp.resample(dsp.to_float(pcm[:, 0]), rate, sample_rate)
    frame = max(1, sample_rate // 200)
    levels = dsp.frame_db(speech, frame)
    loud = np.flatnonzero(levels > levels.max() - _TRIM_BELOW_PEAK_DB) if len(levels) else np.zeros(0, dtype=int)
    speech = speech[loud[0] * frame : (loud[-1] + 1) * frame] if len(loud) else speech[:0]
    peak = float(np.max(np.abs(speech))) if len(speech) else 1.0
    speech = (speech * (0.5 / peak)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: parallel test workers may synthesise the same utterance.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as handle:
        np.save(handle, speech)
    os.replace(handle.name, path)
    return speech
