"""Replay audio for the mock: callgen plans and renders each recording on first replay; a small LRU keeps recent renders.

Rendering (espeak-ng) takes seconds, so it never happens at start-up or for a search — only when a replay asks for that inum.
With a pool (`render_pool`, for load benchmarks) nothing is synthesised while the mock runs: a replay loops or cuts one of
the pool's recordings to the call's length, so the measured cores do the product's work, not the test's.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audio import g711, wav
from avaya_source.mock.schedule import Segment

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000


@dataclass(frozen=True)
class AudioConfig:
    stereo: bool = False  # agent left, customer right
    codec: str = "ulaw"  # ulaw | alaw | pcm16; real replays are mono µ-law
    min_seconds: float = 0.0  # loop the call's audio up to this length (long-recording and memory tests)
    cache_entries: int = 16
    stereo_ratio: float | None = None  # share of inums replayed in two channels; None: `stereo` for all
    pool_dir: Path | None = None  # pre-rendered recordings (render_pool) instead of synthesis on replay


def _plan(segment: Segment, stereo: bool):  # noqa: ANN202 - callgen's CallPlan type
    import callgen

    return callgen.plan_call(segment.plan_seed, duration_s=segment.duration_s, language=segment.language, stereo=stereo)


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def render_pool(folder: Path, clips: int = 6, seconds: float = 240.0, seed: int = 7) -> list[Path]:
    """`clips` mono and `clips` stereo recordings of `seconds` each (callgen, both languages) saved as .npy into `folder`;
    ones already there are kept, so a pool is rendered once per machine."""
    import callgen

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for layout in ("mono", "stereo"):
        for index in range(clips):
            path = folder / f"{layout}-{index:02d}.npy"
            if not path.exists():
                language = "en" if index % 3 == 0 else "vi"
                plan = callgen.plan_call(seed * 1000 + index, duration_s=seconds, language=language, stereo=layout == "stereo")
                pcm = callgen.render_call(plan, sample_rate=SAMPLE_RATE)
                partial = path.with_suffix(".part.npy")
                np.save(partial, pcm.reshape(len(pcm), -1).astype(np.int16))
                partial.rename(path)
            paths.append(path)
    return paths


class AudioStore:
    """inum → rendered PCM (int16, frames × channels), rendered once per inum under a per-inum lock, or taken from the pool."""

    def __init__(self, config: AudioConfig) -> None:
        self.config = config
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._rendering: dict[str, threading.Lock] = {}
        self._pool: dict[bool, list[np.ndarray]] = {}
        if config.pool_dir is not None:
            for stereo in (False, True):
                paths = sorted(config.pool_dir.glob(f"{'stereo' if stereo else 'mono'}-*.npy"))
                if not paths:
                    raise ValueError(f"audio pool {config.pool_dir} has no {'stereo' if stereo else 'mono'}-*.npy recording")
                self._pool[stereo] = [np.load(path, mmap_mode="r") for path in paths if ".part" not in path.name]

    def stereo(self, segment: Segment) -> bool:
        if self.config.stereo_ratio is None:
            return self.config.stereo
        return _fraction(segment.inum, "stereo") < self.config.stereo_ratio

    def truth(self, segment: Segment) -> dict:
        plan = _plan(segment, self.stereo(segment))
        return {
            "inum": segment.inum,
            "contact_id": segment.contact_id,
            "switch_call_id": segment.switch_call_id,
            "part": segment.part,
            "parts": segment.parts,
            "kind": segment.kind,
            "duration_s": segment.duration_s,
            "language": segment.language,
            "stereo": self.stereo(segment),
            "plan_seed": segment.plan_seed,
            # The search metadata's agent; callgen's plan names its own (planning it costs ~0.3 s, too slow for every search).
            "agents": segment.agents_field,
            "truth": plan.truth,
        }

    def pcm(self, segment: Segment) -> np.ndarray:
        if self._pool:
            clips = self._pool[self.stereo(segment)]
            return clips[segment.plan_seed % len(clips)]
        with self._lock:
            cached = self._cache.get(segment.inum)
            if cached is not None:
                self._cache.move_to_end(segment.inum)
                return cached
            inum_lock = self._rendering.setdefault(segment.inum, threading.Lock())
        with inum_lock:  # two replays of one inum render it once
            with self._lock:
                cached = self._cache.get(segment.inum)
            if cached is not None:
                return cached
            import callgen

            pcm = callgen.render_call(_plan(segment, self.stereo(segment)), sample_rate=SAMPLE_RATE)
            log.info("rendered inum=%s %.1fs %s", segment.inum, len(pcm) / SAMPLE_RATE, "stereo" if pcm.shape[1] > 1 else "mono")
            with self._lock:
                self._cache[segment.inum] = pcm
                while len(self._cache) > self.config.cache_entries:
                    self._cache.popitem(last=False)
                self._rendering.pop(segment.inum, None)
            return pcm

    def wav_size_and_chunks(self, segment: Segment, chunk_size: int = 65536,
                            min_seconds: float | None = None) -> tuple[int, Iterator[bytes]]:
        """(Content-Length, chunk iterator) of the replay WAV; looping to min_seconds is streamed, never built in memory."""
        pcm = self.pcm(segment)
        frames = pcm.reshape(len(pcm), -1)
        channels = frames.shape[1]
        width = 2 if self.config.codec == "pcm16" else 1
        natural = round(segment.duration_s * SAMPLE_RATE) if self._pool else len(frames)  # a pool clip is looped or cut
        total = max(natural, int((min_seconds or self.config.min_seconds) * SAMPLE_RATE))
        header = wav.wav_header(total, SAMPLE_RATE, channels, self.config.codec)  # type: ignore[arg-type]
        data_size = total * channels * width
        size = len(header) + data_size + (data_size & 1)

        def chunks() -> Iterator[bytes]:
            yield header
            remaining = data_size
            step = max(1, chunk_size // (channels * width))
            while remaining > 0:
                for start in range(0, len(frames), step):
                    block = _encode(frames[start : start + step], self.config.codec)
                    block = block[:remaining]
                    remaining -= len(block)
                    yield block
                    if remaining <= 0:
                        break
            if data_size & 1:
                yield b"\x00"

        return size, chunks()


def _encode(frames: np.ndarray, codec: str) -> bytes:
    """Interleaved frames → WAV data bytes with the project's G.711 tables."""
    flat = np.ascontiguousarray(frames).reshape(-1)
    if codec == "pcm16":
        return flat.astype("<i2").tobytes()
    if codec == "alaw":
        return g711.alaw_encode(flat).tobytes()
    return g711.ulaw_encode(flat).tobytes()
