"""G.711 µ-law and A-law companding with numpy, bit-exact to the ITU-T G.711 segment tables.

Implemented here because `audioop` is deprecated and gone in Python 3.13; the tests check every sample and code against it while
the interpreter still ships it.
"""

from __future__ import annotations

import numpy as np


def ulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 → µ-law bytes (uint8), ITU-T G.711 on 14-bit magnitudes with the 0x21 bias and inverted bits."""
    v = pcm.astype(np.int32) >> 2
    sign = np.where(v < 0, 0x80, 0x00)
    mag = np.minimum(np.where(v < 0, -v, v), 8158) + 0x21  # 8158: the top code, not a ninth segment
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 5
    mantissa = (mag >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _ulaw_decode_codes(data: np.ndarray) -> np.ndarray:
    u = (~data.astype(np.int32)) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def alaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 → A-law bytes (uint8), ITU-T G.711 with even-bit inversion (0x55)."""
    x = pcm.astype(np.int32) >> 3  # A-law works on 13-bit magnitudes
    sign = np.where(x >= 0, 0x80, 0x00)
    mag = np.where(x >= 0, x, -x - 1)
    mag = np.minimum(mag, 0xFFF)
    exponent = np.where(mag < 32, 0, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 4)
    mantissa = np.where(exponent == 0, mag >> 1, mag >> exponent) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def _alaw_decode_codes(data: np.ndarray) -> np.ndarray:
    a = data.astype(np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    mag = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, mag, -mag).astype(np.int16)


# Decoding is a lookup of 256 codes: one gather per sample instead of eight array passes (a 5-minute stereo call decodes in
# ~0.03 s instead of ~0.3 s, a tenth of what scoring it costs).
_ULAW_TO_PCM = _ulaw_decode_codes(np.arange(256, dtype=np.uint8))
_ALAW_TO_PCM = _alaw_decode_codes(np.arange(256, dtype=np.uint8))


def ulaw_decode(data: np.ndarray) -> np.ndarray:
    """µ-law bytes → int16."""
    return _ULAW_TO_PCM[np.asarray(data, dtype=np.uint8)]


def alaw_decode(data: np.ndarray) -> np.ndarray:
    """A-law bytes → int16."""
    return _ALAW_TO_PCM[np.asarray(data, dtype=np.uint8)]
