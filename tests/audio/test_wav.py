"""WAV and G.711: bit-exact against the ITU tables (audioop as oracle while Python ships it), round trips, typed errors."""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest

from audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audio.wav import CorruptWav, NotWav, UnsupportedFormat, iter_wav_bytes, read_wav, read_wav_info, wav_bytes, write_wav

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference only; removed in Python 3.13, which is why audio.g711 does not use it

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)


def test_ulaw_matches_reference_for_every_sample_and_code() -> None:
    assert np.array_equal(ulaw_encode(ALL_INT16), np.frombuffer(audioop.lin2ulaw(ALL_INT16.tobytes(), 2), np.uint8))
    assert np.array_equal(ulaw_decode(ALL_CODES), np.frombuffer(audioop.ulaw2lin(ALL_CODES.tobytes(), 2), np.int16))


def test_alaw_matches_reference_for_every_sample_and_code() -> None:
    assert np.array_equal(alaw_encode(ALL_INT16), np.frombuffer(audioop.lin2alaw(ALL_INT16.tobytes(), 2), np.uint8))
    assert np.array_equal(alaw_decode(ALL_CODES), np.frombuffer(audioop.alaw2lin(ALL_CODES.tobytes(), 2), np.int16))


def test_ulaw_header_is_what_avaya_replays_look_like() -> None:
    pcm = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
    data = wav_bytes(pcm, 8000, "ulaw")
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (tag, channels, rate, byte_rate, align, bits) == (7, 1, 8000, 8000, 1, 8)
    assert data[38:42] == b"fact" and struct.unpack("<I", data[46:50])[0] == 8000
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8
    assert len(data) == 58 + 8000


@pytest.mark.parametrize("codec", ["pcm16", "ulaw", "alaw"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_round_trip(codec: str, channels: int, rate: int) -> None:
    rng = np.random.default_rng(rate + channels)
    pcm = (rng.standard_normal((rate // 4 + 1, channels)) * 3000).astype(np.int16)
    decoded, got_rate, got_codec = read_wav(wav_bytes(pcm, rate, codec))  # type: ignore[arg-type]
    assert (got_rate, got_codec, decoded.shape) == (rate, codec, pcm.shape)
    if codec == "pcm16":
        assert np.array_equal(decoded, pcm)
    else:  # G.711 keeps ~13 bits: the error is bounded by the segment step
        assert np.max(np.abs(decoded.astype(int) - pcm.astype(int))) <= 1100
        assert np.mean(np.abs(decoded.astype(int) - pcm.astype(int))) < 60


def test_streaming_bytes_equal_written_file_and_come_in_chunks() -> None:
    pcm = np.arange(-50000, 50000, dtype=np.int32).astype(np.int16).reshape(-1, 2)
    chunks = list(iter_wav_bytes(pcm, 8000, "alaw", chunk_size=4096))
    assert len(chunks) > 10 and all(len(c) <= 4096 for c in chunks[1:])
    buffer = io.BytesIO()
    written = write_wav(buffer, pcm, 8000, "alaw")
    assert buffer.getvalue() == b"".join(chunks) and written == len(buffer.getvalue())


def test_streaming_placeholder_size_uses_the_real_length() -> None:
    pcm = np.ones((1000, 1), dtype=np.int16)
    data = bytearray(wav_bytes(pcm, 8000, "pcm16"))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # what `espeak-ng --stdout` and streaming recorders write
    decoded, _, _ = read_wav(bytes(data))
    assert decoded.shape == (1000, 1)


def test_unknown_chunks_are_skipped() -> None:
    data = wav_bytes(np.ones((10, 1), dtype=np.int16), 8000, "pcm16")
    with_list = data[:36] + b"LIST" + struct.pack("<I", 5) + b"abcde\x00" + data[36:]
    decoded, _, _ = read_wav(with_list)
    assert decoded.shape == (10, 1)


def test_typed_errors() -> None:
    good = wav_bytes(np.ones((100, 1), dtype=np.int16), 8000, "pcm16")
    with pytest.raises(NotWav):
        read_wav(b"ID3\x03 this is an mp3")
    with pytest.raises(CorruptWav):
        read_wav(b"")
    with pytest.raises(CorruptWav):
        read_wav(good[:30])  # fmt chunk cut off
    with pytest.raises(CorruptWav):
        read_wav(good[:12] + b"data" + good[40:])  # data before fmt
    mp3_in_wav = bytearray(good)
    mp3_in_wav[20:22] = struct.pack("<H", 0x55)
    with pytest.raises(UnsupportedFormat):
        read_wav(bytes(mp3_in_wav))
    wrong_rate = bytearray(good)
    wrong_rate[24:28] = struct.pack("<I", 96000)
    with pytest.raises(UnsupportedFormat):
        read_wav(bytes(wrong_rate))
    with pytest.raises(UnsupportedFormat):
        read_wav(good, max_frames=50)


def test_header_alone_gives_duration_before_any_sample_is_read() -> None:
    data = wav_bytes(np.zeros((16000, 2), dtype=np.int16), 8000, "ulaw")
    stream = io.BytesIO(data)
    info = read_wav_info(stream, len(data))
    assert (info.codec, info.channels, info.duration_s) == ("ulaw", 2, 2.0)
    assert stream.tell() == info.data_offset
