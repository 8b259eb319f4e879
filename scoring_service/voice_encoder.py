"""Speaker embeddings in numpy: Resemblyzer 0.1.4's GE2E voice encoder (40-band mel → 3×256 LSTM → 256-d unit vector).

torch and librosa are not runtime dependencies, so both halves are re-implemented here: the mel spectrogram is librosa's
(`melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40)`: centred frames with zero padding, periodic Hann window,
power spectrum, Slaney mel scale and area normalisation), and the LSTM is torch's `nn.LSTM` gate for gate (i, f, g, o). The
weights come from Resemblyzer's `pretrained.pt`, a torch pickle read with `pickle` alone (see `load_torch_state`).

Resemblyzer trims long silences with webrtcvad before embedding; here the caller passes speech only (the VAD segments), so that
step has no counterpart.
"""

from __future__ import annotations

import contextlib
import functools
import io
import pickle
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from audio import dsp

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # an optional speed-up (installed with scikit-learn), not a dependency
    ThreadpoolController = None

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # Resemblyzer's partial utterance: 1.6 s
HIDDEN = 256
LAYERS = 3
TARGET_DBFS = -30.0  # Resemblyzer's audio_norm_target_dBFS
EMBED_RATE = 1.3  # partials per second in `embed`, as Resemblyzer's embed_utterance
MIN_COVERAGE = 0.75
MODEL_HINT = "`bash scripts/models.sh` extracts it from the Resemblyzer 0.1.4 wheel"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# ----------------------------------------------------------------------------------------------------------------- weights
class _Storage:
    """A torch storage before its bytes are read: the legacy format puts every storage's data after the pickle."""

    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype, self.numel = np.dtype(dtype), numel
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any) -> Any:
    # Tensors are views into storages, which are only filled once the whole pickle is read: resolve lazily.
    return ("tensor", storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a torch checkpoint into plain objects; only the few torch globals a state dict uses are allowed."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage], reader: Any = None) -> None:
        super().__init__(file)
        self.storages, self.reader = storages, reader

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, *rest = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {kind!r}")
        dtype, key, _location, numel = rest[:4]
        if key not in self.storages:
            self.storages[key] = _Storage(dtype, int(numel))
            if self.reader is not None:  # zip format: each storage is its own archive member
                self.storages[key].data = np.frombuffer(self.reader(key), dtype=self.storages[key].dtype)
        return self.storages[key]


def _resolve(obj: Any) -> Any:
    if isinstance(obj, tuple) and len(obj) == 5 and obj[0] == "tensor":
        _tag, storage, offset, size, stride = obj
        assert storage.data is not None
        item = storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage.data[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
        )
        return np.array(view)  # own the memory: cuDNN packed all LSTM weights into one storage
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    return obj


def load_torch_state(path: Path | str) -> dict[str, Any]:
    """A torch checkpoint (legacy ≤ 1.5 stream or ≥ 1.6 zip) → the same nesting with tensors as numpy arrays. No torch needed."""
    storages: dict[str, _Storage] = {}
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            prefix = next(n for n in names if n.endswith("data.pkl"))[: -len("data.pkl")]
            with z.open(prefix + "data.pkl") as f:
                result = _TorchUnpickler(f, storages, lambda key: z.read(f"{prefix}data/{key}")).load()  # type: ignore[arg-type]
        return _resolve(result)
    with open(path, "rb") as f:
        if pickle.load(f) != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a torch checkpoint")
        pickle.load(f)  # protocol version
        sys_info = pickle.load(f)
        if not sys_info.get("little_endian", True):
            raise ValueError(f"{path} was saved big-endian")
        result = _TorchUnpickler(f, storages).load()  # type: ignore[arg-type]
        for key in pickle.load(f):
            storage = storages[key]
            numel = int(np.frombuffer(f.read(8), dtype="<i8")[0])
            storage.data = np.frombuffer(f.read(numel * storage.dtype.itemsize), dtype=storage.dtype)
            if storage.data.size != numel:
                raise ValueError(f"{path} is truncated")
    return _resolve(result)


# ----------------------------------------------------------------------------------------------------------------- mel
def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale (librosa's default, htk=False): linear to 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) triangles as `librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels)` builds them."""
    fft_hz = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2))
    ramps = mel_hz[:, None] - fft_hz[None, :]
    fdiff = np.diff(mel_hz)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]  # equal area per band
    return weights.astype(np.float32)


_MEL_BASIS = mel_filterbank()
_MEL_CHUNK = 4096
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann, as scipy's fftbins


def mel_spectrogram(wav16k: np.ndarray) -> np.ndarray:
    """(frames, 40) float32 power mel of a 16 kHz float signal; frame i is centred on sample i * 160."""
    y = np.asarray(wav16k, dtype=np.float32)
    padded = np.pad(y, N_FFT // 2)  # librosa ≥ 0.10 centres frames with zero padding
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    if n_frames <= 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(n_frames, N_FFT), strides=(padded.strides[0] * HOP, padded.strides[0]), writeable=False
    )
    out = np.empty((n_frames, N_MELS), dtype=np.float32)
    for k in range(0, n_frames, _MEL_CHUNK):  # in blocks: a 10-minute call's whole spectrum would be ~100 MB at once
        spectrum = np.fft.rfft(frames[k : k + _MEL_CHUNK] * _WINDOW, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        out[k : k + _MEL_CHUNK] = power @ _MEL_BASIS.T
    return out


# ----------------------------------------------------------------------------------------------------------------- model
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


@functools.cache
def _controller() -> Any:
    return ThreadpoolController()  # scans the loaded libraries: once


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """The LSTM's per-step matmuls are small: a second BLAS thread mostly spins (several times the CPU, no faster), and the
    service already runs one call per core. Reference-counted, so concurrent callers never restore the limit under each other."""
    global _blas_users, _blas_limit
    if ThreadpoolController is None:
        yield
        return
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = _controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0 and _blas_limit is not None:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings, unlike 1 / (1 + exp(-x))


class VoiceEncoder:
    """Resemblyzer's voice encoder. Immutable after loading, so one instance serves any number of threads."""

    def __init__(self, weights: Path | str) -> None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"voice encoder weights not found at {path}: {MODEL_HINT}")
        state = load_torch_state(path)["model_state"]
        self.path = path
        # Per layer: input weights (in, 4H) and recurrent weights (H, 4H) transposed for row-vector matmuls, one summed bias.
        self._layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(LAYERS):
            # torch stacks the gates (i, f, g, o); reordered to (i, f, o, g) so the three sigmoids are one contiguous slice.
            order = np.r_[0 : 2 * HIDDEN, 3 * HIDDEN : 4 * HIDDEN, 2 * HIDDEN : 3 * HIDDEN]
            w_ih = np.ascontiguousarray(state[f"lstm.weight_ih_l{k}"][order].T, dtype=np.float32)
            w_hh = np.ascontiguousarray(state[f"lstm.weight_hh_l{k}"][order].T, dtype=np.float32)
            bias = (state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"])[order].astype(np.float32)
            if w_hh.shape != (HIDDEN, 4 * HIDDEN):
                raise ValueError(f"{path}: unexpected LSTM layer {k} shape {w_hh.shape}")
            for a in (w_ih, w_hh, bias):
                a.flags.writeable = False
            self._layers.append((w_ih, w_hh, bias))
        self._linear_w = np.ascontiguousarray(state["linear.weight"].T, dtype=np.float32)
        self._linear_b = state["linear.bias"].astype(np.float32)

    def forward(self, mels: np.ndarray, lengths: Sequence[int] | None = None) -> np.ndarray:
        """(batch, frames, 40) mel → (batch, 256) unit embeddings, from the last layer's hidden state at each sequence's end.

        `lengths` lets sequences of different lengths share one batch: steps past a sequence's end are computed but unread,
        which changes nothing because the LSTM is causal.
        """
        x = np.asarray(mels, dtype=np.float32)
        batch, steps, _ = x.shape
        ends = np.full(batch, steps - 1) if lengths is None else np.asarray(lengths, dtype=np.int64) - 1
        if batch == 0:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        if np.any(ends < 0) or np.any(ends >= steps):
            raise ValueError("every sequence needs 1..frames steps")
        with _single_threaded_blas():
            final = self._run(x, ends)
        raw = np.maximum(final @ self._linear_w + self._linear_b, 0.0)
        norm = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norm, 1e-12)

    def _run(self, x: np.ndarray, ends: np.ndarray) -> np.ndarray:
        batch, steps, _ = x.shape
        final = np.zeros((batch, HIDDEN), dtype=np.float32)
        for layer, (w_ih, w_hh, bias) in enumerate(self._layers):
            last = layer == LAYERS - 1
            # Input projections of all steps in one matmul; only the recurrent half is sequential.
            gates_in = (x.reshape(batch * steps, -1) @ w_ih + bias).reshape(batch, steps, 4 * HIDDEN)
            h = np.zeros((batch, HIDDEN), dtype=np.float32)
            c = np.zeros((batch, HIDDEN), dtype=np.float32)
            out = None if last else np.empty((batch, steps, HIDDEN), dtype=np.float32)
            for t in range(steps):
                g = gates_in[:, t] + h @ w_hh
                sig = _sigmoid(g[:, : 3 * HIDDEN])
                c = sig[:, HIDDEN : 2 * HIDDEN] * c + sig[:, :HIDDEN] * np.tanh(g[:, 3 * HIDDEN :])
                h = sig[:, 2 * HIDDEN :] * np.tanh(c)
                if out is not None:
                    out[:, t] = h
                else:
                    done = ends == t
                    if done.any():
                        final[done] = h[done]
            if out is not None:
                x = out
        return final

    @staticmethod
    def prepare(signal: np.ndarray, sample_rate: int) -> np.ndarray:
        """Float audio at any rate → 16 kHz, raised to -30 dBFS when quieter (Resemblyzer's `normalize_volume(increase_only)`)."""
        wav = dsp.resample(np.asarray(signal, dtype=np.float32), sample_rate, SAMPLE_RATE)
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
        target = 10 ** (TARGET_DBFS / 20)
        if 0 < rms < target:
            wav = wav * np.float32(target / rms)
        return wav

    def embed(self, signal: np.ndarray, sample_rate: int) -> np.ndarray:
        """One utterance (speech only) → (256,) unit vector: mean of 1.6 s partials at 1.3/s, as `embed_utterance`."""
        wav = self.prepare(signal, sample_rate)
        if not len(wav):
            raise ValueError("cannot embed an empty signal")
        n_frames = int(np.ceil((len(wav) + 1) / HOP))
        frame_step = int(np.round((SAMPLE_RATE / EMBED_RATE) / HOP))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + frame_step + 1), frame_step))
        coverage = (len(wav) - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
        if coverage < MIN_COVERAGE and len(starts) > 1:
            starts.pop()
        wav = np.pad(wav, (0, max(0, (starts[-1] + PARTIAL_FRAMES) * HOP - len(wav))))
        mel = mel_spectrogram(wav)
        partials = self.forward(np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts]))
        mean = partials.mean(axis=0)
        return mean / np.linalg.norm(mean)

    def embed_windows(
        self, signal: np.ndarray, sample_rate: int, windows: Sequence[tuple[float, float]], batch_size: int = 64
    ) -> np.ndarray:
        """(n, 256): one embedding per (start_s, end_s) window of `signal`, each window one LSTM sequence.

        The mel is computed once for the whole signal and sliced; each window is brought to -30 dBFS by scaling its slice
        (power mel scales with the square of the gain), so a loud and a quiet party are compared by voice, not by level.
        """
        if not windows:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        wav = dsp.resample(np.asarray(signal, dtype=np.float32), sample_rate, SAMPLE_RATE)
        mel = mel_spectrogram(wav)
        power = np.square(wav, dtype=np.float32)
        target = 10 ** (TARGET_DBFS / 10)
        spans, gains = [], []
        for start_s, end_s in windows:
            a = min(max(0, int(round(start_s * SAMPLE_RATE / HOP))), len(mel) - 1)
            b = min(max(a + 1, int(round(end_s * SAMPLE_RATE / HOP))), len(mel))
            ms = float(np.mean(power[a * HOP : max(b * HOP, a * HOP + 1)]))
            spans.append((a, b))
            gains.append(target / ms if ms > 1e-12 else 1.0)
        out = np.empty((len(windows), HIDDEN), dtype=np.float32)
        order = np.argsort([b - a for a, b in spans], kind="stable")
        # Batches of similar length waste few padded steps.
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            lengths = [spans[i][1] - spans[i][0] for i in idx]
            batch = np.zeros((len(idx), max(lengths), N_MELS), dtype=np.float32)
            for row, i in enumerate(idx):
                a, b = spans[i]
                batch[row, : b - a] = mel[a:b] * np.float32(gains[i])
            out[idx] = self.forward(batch, lengths)
        return out


_shared: dict[Path, VoiceEncoder] = {}
_shared_lock = threading.Lock()


def shared_encoder(weights: Path | str) -> VoiceEncoder:
    """The process's one encoder for these weights: loaded on first use (17 MB, ~0.1 s), then reused by every thread."""
    path = Path(weights)
    with _shared_lock:
        if path not in _shared:
            _shared[path] = VoiceEncoder(path)
        return _shared[path]
