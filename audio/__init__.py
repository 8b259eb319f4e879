"""Audio primitives of the project: a leaf package that depends only on numpy and the standard library.

- `audio.wav`: WAV reading (header first, typed errors) and writing, streamed; PCM16 and G.711, mono or stereo, 8–48 kHz.
- `audio.g711`: G.711 µ-law / A-law encode and decode, bit-exact to the ITU-T tables.
- `audio.dsp`: resampling, int16 ↔ float conversion, overall and per-frame levels.
- `audio.intervals`: (start, end) interval arithmetic: merge, intersect, complement, total, longest.

The runtime (scoring service, pipeline, recorder mock) and the synthetic call generator both build on it; it imports neither.
"""
