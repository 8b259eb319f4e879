"""WAV files as call recorders write them: PCM16 or G.711 µ-law/A-law, mono or stereo, 8–48 kHz.

The one WAV parser and writer of the project: the generator, the Avaya mock and the scoring service all use this module, so a file
the mock serves is read by exactly the code that scores it. The G.711 companding itself is in `audio.g711`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

Codec = Literal["pcm16", "ulaw", "alaw"]

FORMAT_PCM = 1
FORMAT_ALAW = 6
FORMAT_ULAW = 7
FORMAT_EXTENSIBLE = 0xFFFE
_TAG_OF_CODEC: dict[str, int] = {"pcm16": FORMAT_PCM, "alaw": FORMAT_ALAW, "ulaw": FORMAT_ULAW}
_CODEC_OF_TAG = {tag: codec for codec, tag in _TAG_OF_CODEC.items()}
MIN_RATE, MAX_RATE = 8000, 48000
# Streaming writers (espeak-ng --stdout, some recorders) put a placeholder size in the header; the real size is what follows.
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000}


class WavError(ValueError):
    """Base of the typed WAV errors; `kind` is a stable machine-readable name."""

    kind = "wav_error"


class NotWav(WavError):
    """The bytes are not a RIFF/WAVE file at all."""

    kind = "not_wav"


class UnsupportedFormat(WavError):
    """A well-formed WAV in a codec, width, channel count or rate we do not decode."""

    kind = "unsupported_codec"


class CorruptWav(WavError):
    """A RIFF/WAVE file whose chunks are missing, truncated or inconsistent."""

    kind = "corrupt_wav"


@dataclass(frozen=True)
class WavInfo:
    codec: Codec
    sample_rate: int
    channels: int
    n_frames: int
    data_offset: int

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate

    @property
    def bytes_per_frame(self) -> int:
        return self.channels * (2 if self.codec == "pcm16" else 1)


# ---------------------------------------------------------------- writing


def _as_frames(pcm: np.ndarray) -> np.ndarray:
    frames = np.asarray(pcm)
    if frames.dtype != np.int16:
        raise TypeError(f"pcm must be int16, got {frames.dtype}")
    return frames.reshape(-1, 1) if frames.ndim == 1 else frames


def encode_frames(frames: np.ndarray, codec: Codec) -> bytes:
    """int16 frames (n, channels) or samples → the WAV data bytes of `codec` (interleaved)."""
    interleaved = np.ascontiguousarray(frames).reshape(-1)
    if codec == "pcm16":
        return interleaved.astype("<i2").tobytes()
    if codec == "ulaw":
        return ulaw_encode(interleaved).tobytes()
    if codec == "alaw":
        return alaw_encode(interleaved).tobytes()
    raise UnsupportedFormat(f"unknown codec {codec!r}")


def wav_header(n_frames: int, sample_rate: int, channels: int, codec: Codec) -> bytes:
    """RIFF header up to the data chunk's size field. G.711 gets an 18-byte fmt and a `fact` chunk, as Avaya replays have."""
    if codec not in _TAG_OF_CODEC:
        raise UnsupportedFormat(f"unknown codec {codec!r}")
    width = 2 if codec == "pcm16" else 1
    data_size = n_frames * channels * width
    fmt = struct.pack(
        "<HHIIHH", _TAG_OF_CODEC[codec], channels, sample_rate, sample_rate * channels * width, channels * width, width * 8
    )
    chunks = b""
    if codec == "pcm16":
        chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
    else:
        fmt += struct.pack("<H", 0)  # cbSize: non-PCM formats carry the extension size
        chunks += b"fmt " + struct.pack("<I", len(fmt)) + fmt
        chunks += b"fact" + struct.pack("<II", 4, n_frames)
    chunks += b"data" + struct.pack("<I", data_size)
    riff_size = 4 + len(chunks) + data_size + (data_size & 1)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks


def iter_wav_bytes(pcm_int16: np.ndarray, sample_rate: int, codec: Codec = "ulaw", chunk_size: int = 65536) -> Iterator[bytes]:
    """The WAV file as a stream of chunks (header first); encodes chunk by chunk so a long call never exists twice in memory."""
    frames = _as_frames(pcm_int16)
    channels = frames.shape[1]
    width = 2 if codec == "pcm16" else 1
    yield wav_header(len(frames), sample_rate, channels, codec)
    step = max(1, chunk_size // (channels * width))
    for start in range(0, len(frames), step):
        yield encode_frames(frames[start : start + step], codec)
    if (len(frames) * channels * width) & 1:
        yield b"\x00"  # RIFF chunks are word aligned


def write_wav(fileobj: BinaryIO, pcm_int16: np.ndarray, sample_rate: int, codec: Codec = "ulaw") -> int:
    """Write a WAV file; returns the number of bytes written."""
    written = 0
    for chunk in iter_wav_bytes(pcm_int16, sample_rate, codec):
        fileobj.write(chunk)
        written += len(chunk)
    return written


def wav_bytes(pcm_int16: np.ndarray, sample_rate: int, codec: Codec = "ulaw") -> bytes:
    return b"".join(iter_wav_bytes(pcm_int16, sample_rate, codec))


# ---------------------------------------------------------------- reading


def _read_exact(fileobj: BinaryIO, n: int, what: str) -> bytes:
    data = fileobj.read(n)
    if len(data) != n:
        raise CorruptWav(f"truncated {what}: wanted {n} bytes, got {len(data)}")
    return data


def _parse_fmt(body: bytes) -> tuple[Codec, int, int]:
    if len(body) < 16:
        raise CorruptWav(f"fmt chunk too short ({len(body)} bytes)")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == FORMAT_EXTENSIBLE:
        if len(body) < 40:
            raise CorruptWav("WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID carry the format tag
    if tag not in _CODEC_OF_TAG:
        raise UnsupportedFormat(f"unsupported WAV format tag {tag:#06x} (supported: PCM16, µ-law, A-law)")
    codec = _CODEC_OF_TAG[tag]
    want_bits = 16 if codec == "pcm16" else 8
    if bits != want_bits:
        raise UnsupportedFormat(f"{codec} with {bits} bits per sample is not supported")
    if channels not in (1, 2):
        raise UnsupportedFormat(f"{channels} channels (supported: 1 or 2)")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedFormat(f"sample rate {rate} Hz outside {MIN_RATE}-{MAX_RATE} Hz")
    if block_align != channels * want_bits // 8:
        raise CorruptWav(f"block align {block_align} does not match {channels} channel(s) of {want_bits} bits")
    return codec, rate, channels


def read_wav_info(fileobj: BinaryIO, total_size: int | None = None) -> WavInfo:
    """Parse the header and leave `fileobj` at the first data byte. Costs a few reads: callers check caps before decoding."""
    head = fileobj.read(12)
    if len(head) == 0:
        raise CorruptWav("empty file")
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX", b"RF64") or head[8:12] != b"WAVE":
        if head[:4] == b"RIFF" and len(head) < 12:
            raise CorruptWav("truncated RIFF header")
        raise NotWav("not a RIFF/WAVE file")
    if head[:4] != b"RIFF":
        raise UnsupportedFormat(f"{head[:4].decode()} WAV files are not supported")
    position = 12
    fmt: tuple[Codec, int, int] | None = None
    while True:
        chunk_head = fileobj.read(8)
        if len(chunk_head) < 8:
            raise CorruptWav("no data chunk" if fmt else "no fmt chunk")
        chunk_id, size = chunk_head[:4], struct.unpack("<I", chunk_head[4:])[0]
        position += 8
        if chunk_id == b"fmt ":
            if size > 4096:
                raise CorruptWav(f"fmt chunk of {size} bytes")
            fmt = _parse_fmt(_read_exact(fileobj, size + (size & 1), "fmt chunk")[:size])
            position += size + (size & 1)
        elif chunk_id == b"data":
            if fmt is None:
                raise CorruptWav("data chunk before fmt chunk")
            codec, rate, channels = fmt
            frame_bytes = channels * (2 if codec == "pcm16" else 1)
            if total_size is not None:
                available = max(0, total_size - position)
                size = available if size in _STREAMING_SIZES or size > available else size
            elif size in _STREAMING_SIZES:
                raise CorruptWav("data size unknown and stream length not given")
            return WavInfo(codec, rate, channels, size // frame_bytes, position)
        else:
            skip = size + (size & 1)
            if total_size is not None and position + skip > total_size:
                raise CorruptWav(f"chunk {chunk_id!r} runs past the end of the file")
            fileobj.seek(skip, io.SEEK_CUR) if fileobj.seekable() else _read_exact(fileobj, skip, "chunk")
            position += skip


def decode_frames(raw: bytes, info: WavInfo) -> np.ndarray:
    """Raw data-chunk bytes → int16 array (n_frames, channels)."""
    usable = len(raw) - len(raw) % info.bytes_per_frame
    if info.codec == "pcm16":
        samples = np.frombuffer(raw[:usable], dtype="<i2").astype(np.int16)
    else:
        codes = np.frombuffer(raw[:usable], dtype=np.uint8)
        samples = ulaw_decode(codes) if info.codec == "ulaw" else alaw_decode(codes)
    return samples.reshape(-1, info.channels)


def read_wav(source: BinaryIO | bytes | str, max_frames: int | None = None) -> tuple[np.ndarray, int, Codec]:
    """Decode a WAV → (int16 array (n_frames, channels), sample_rate, codec).

    `max_frames` guards memory: a file declaring more is refused from its header, before any sample is read.
    """
    if isinstance(source, bytes):
        fileobj: BinaryIO = io.BytesIO(source)
    elif isinstance(source, str):
        fileobj = open(source, "rb")  # noqa: SIM115 - closed below
    else:
        fileobj = source
    try:
        total = _stream_size(fileobj)
        info = read_wav_info(fileobj, total)
        if max_frames is not None and info.n_frames > max_frames:
            raise UnsupportedFormat(f"{info.n_frames} frames exceed the cap of {max_frames}")
        raw = fileobj.read(info.n_frames * info.bytes_per_frame)
        return decode_frames(raw, info), info.sample_rate, info.codec
    finally:
        if isinstance(source, str):
            fileobj.close()


def _stream_size(fileobj: BinaryIO) -> int | None:
    if not fileobj.seekable():
        return None
    here = fileobj.tell()
    end = fileobj.seek(0, io.SEEK_END)
    fileobj.seek(here)
    return end - here
