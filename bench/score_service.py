"""Scoring service throughput: calls/s and server CPU-seconds per audio-minute for 3-minute calls at concurrency 1 and 2.

Starts the real service (uvicorn, `ccas scoring-service`) on a free 127.0.0.1 port, posts generated mono µ-law calls over HTTP
and reads the server process's CPU time with psutil. With `--asr` the service transcribes every call (language sent as the
recording's metadata); `--asr-only` instead measures the engine alone in this process: CPU-seconds per second of speech it
heard (VAD-filtered) and WER, per beam width. A report, not a test:

    .venv/bin/python bench/score_service.py [--calls 8] [--duration 180] [--stereo] [--asr faster-whisper --language en]
    .venv/bin/python bench/score_service.py --asr-only --asr faster-whisper --language vi --beams 1,5
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from audio.wav import wav_bytes  # noqa: E402
from callgen import plan_call, render_call  # noqa: E402
from ccas.settings import whisper_model_dir  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MODEL_DIR = whisper_model_dir()
# The service started here requires a bearer token on /v1; a throwaway one, never the local stack's.
TOKEN = secrets.token_urlsafe(24)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _start(port: int, workers: int, asr: str = "none", beam: int = 1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CCAS_SCORING_WORKERS": str(workers),
        "CCAS_SCORING_ASR_ENGINE": asr,
        "CCAS_SCORING_ASR_MODEL_DIR": str(MODEL_DIR),
        "CCAS_SCORING_ASR_BEAM_SIZE": str(beam),
        "CCAS_SCORING_TOKEN": TOKEN,
    }
    cmd = [sys.executable, "-m", "ccas.cli", "scoring-service", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("scoring service did not start")


def _cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _run(
    url: str, calls: list[bytes], concurrency: int, server: psutil.Process, language: str | None = None
) -> dict[str, float]:
    def post(index_and_body: tuple[int, bytes]) -> float:
        index, body = index_and_body
        data = {"call_id": f"b{index}", **({"language": language} if language else {})}
        response = httpx.post(f"{url}/v1/score", files={"audio": ("c.wav", body, "audio/wav")}, data=data, headers=AUTH,
                              timeout=600)
        response.raise_for_status()
        return float(response.json()["duration_s"])

    cpu0, t0 = _cpu(server), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        audio_s = sum(pool.map(post, enumerate(calls)))
    wall, cpu = time.perf_counter() - t0, _cpu(server) - cpu0
    return {
        "calls": len(calls),
        "wall_s": wall,
        "calls_per_s": len(calls) / wall,
        "audio_min": audio_s / 60,
        "cpu_s_per_audio_min": cpu / (audio_s / 60),
        "realtime_factor": audio_s / wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8, help="calls per concurrency level")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds per call")
    parser.add_argument("--stereo", action="store_true", help="stereo PCM16 instead of mono µ-law")
    parser.add_argument("--asr", default="none", help="ASR engine of the service (none, faster-whisper, viet-asr)")
    parser.add_argument("--language", choices=("en", "vi"), help="language of the calls, sent as metadata (default: drawn)")
    parser.add_argument("--beam", type=int, default=1, help="ASR beam width")
    parser.add_argument("--asr-only", action="store_true", help="measure the ASR engine alone, in process")
    parser.add_argument("--beams", default="1,5", help="beam widths for --asr-only")
    args = parser.parse_args(argv)
    print(f"generating {args.calls} × {args.duration:.0f} s {'stereo pcm16' if args.stereo else 'mono µ-law'} calls ...")
    plans = [plan_call(9000 + i, duration_s=args.duration, stereo=args.stereo, language=args.language) for i in range(args.calls)]
    if args.asr_only:
        from bench.asr_cost import report

        return report(plans, args.asr, [int(b) for b in args.beams.split(",")], MODEL_DIR)
    calls = [wav_bytes(render_call(plan), 8000, "pcm16" if args.stereo else "ulaw") for plan in plans]
    port = _free_port()
    proc = _start(port, workers=2, asr=args.asr, beam=args.beam)
    try:
        server = psutil.Process(proc.pid)
        url = f"http://127.0.0.1:{port}"
        print(f"service: asr={args.asr} beam={args.beam} language={args.language or 'drawn, not sent'}")
        _run(url, calls[:1], 1, server, args.language)  # warm-up: model load, first allocations
        print(f"{'concurrency':>11} {'calls':>6} {'wall s':>8} {'calls/s':>8} {'x realtime':>10} {'CPU s / audio min':>18}")
        for concurrency in (1, 2):
            r = _run(url, calls, concurrency, server, args.language)
            print(
                f"{concurrency:>11} {r['calls']:>6} {r['wall_s']:>8.2f} {r['calls_per_s']:>8.3f} {r['realtime_factor']:>10.1f} "
                f"{r['cpu_s_per_audio_min']:>18.3f}"
            )
        print(f"machine: {os.cpu_count()} CPUs; server CPU from psutil (user+system) of pid {proc.pid}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
