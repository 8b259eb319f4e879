"""The real service (uvicorn in a subprocess on a free 127.0.0.1 port): typed errors, the service stays up, streaming uploads,
determinism, batch, scorecard, health and Prometheus metrics. Every /v1 request carries the service's bearer token."""

from __future__ import annotations

import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from audio.wav import iter_wav_bytes, wav_bytes, wav_header
from callgen import CallPlan, plan_call, render_call

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD_MB = 64
BOUNDARY = "ccas-test-boundary"
TOKEN = secrets.token_urlsafe(24)  # this module's service only
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    log = tmp_path_factory.mktemp("svc") / "service.log"
    env = {**os.environ, "CCAS_SCORING_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB), "CCAS_SCORING_WORKERS": "2",
           "CCAS_SCORING_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "ccas.cli", "scoring-service", "--port", str(port), "--log-level", "warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"service exited: {log.read_text()}"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail(f"service did not start: {log.read_text()}")
        yield url, proc
        assert proc.poll() is None, "the service must survive every request of this module"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def base_url(service: tuple[str, subprocess.Popen[bytes]]) -> str:
    return service[0]


@pytest.fixture(scope="module")
def mono_call() -> bytes:
    return wav_bytes(render_call(plan_call(301, duration_s=30, language="vi")), 8000, "ulaw")


@pytest.fixture(scope="module")
def stereo_plan() -> CallPlan:
    return plan_call(302, duration_s=45, language="en", stereo=True)


def _post(url: str, audio: bytes | None, **fields: str) -> httpx.Response:
    files = {"audio": ("call.wav", audio, "audio/wav")} if audio is not None else None
    return httpx.post(f"{url}/v1/score", files=files, data=fields or None, headers=AUTH, timeout=120)


def _multipart_stream(chunks: Iterator[bytes], **fields: str) -> Iterator[bytes]:
    for name, value in fields.items():
        yield f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    part = 'Content-Disposition: form-data; name="audio"; filename="a.wav"\r\nContent-Type: audio/wav'
    yield f"--{BOUNDARY}\r\n{part}\r\n\r\n".encode()
    yield from chunks
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_stream(url: str, chunks: Iterator[bytes], **fields: str) -> httpx.Response:
    headers = {**AUTH, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    return httpx.post(f"{url}/v1/score", content=_multipart_stream(chunks, **fields), headers=headers, timeout=120)


def _error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["status"] == status and body["detail"], body


def test_health_and_scorecard(base_url: str) -> None:
    health = httpx.get(f"{base_url}/healthz").json()
    assert health == {"status": "ok", "model_version": "sc1.1.0+fx1.1.0", "asr": "none"}
    assert httpx.get(f"{base_url}/v1/scorecard").status_code == 401  # the real process checks the token too
    card = httpx.get(f"{base_url}/v1/scorecard", headers=AUTH).json()
    assert card["model_version"] == health["model_version"] and len(card["model_version"]) <= 32
    ids = {c["id"] for c in card["scorecard"]["criteria"]}
    assert {"dead_air", "hold_time", "overtalk", "greeting", "prohibited_words", "customer_sentiment"} <= ids
    # Every phrase criterion's lists in both languages, how they are matched, and the engines that produce the words.
    assert card["scorecard"]["phrases"]["greeting"]["vi"] and card["scorecard"]["phrases"]["greeting"]["en"]
    assert card["scorecard"]["matching"] == {"fuzzy_threshold": 0.8, "prohibited_threshold": 0.9, "min_fuzzy_chars": 10}
    assert card["asr"]["engine"] == "none" and card["asr"]["languages"] == ["vi", "en"]
    assert card["asr"]["engines_available"] == ["none", "faster-whisper", "viet-asr", "pocketsphinx"]


def test_same_input_twice_gives_identical_response(base_url: str, mono_call: bytes) -> None:
    first = _post(base_url, mono_call, call_id="c-1", agent_id="Nguyễn Văn A (1234)")
    second = _post(base_url, mono_call, call_id="c-1")
    assert first.status_code == second.status_code == 200, first.text
    a, b = first.json(), second.json()
    assert a.pop("latency_ms") >= 0 and b.pop("latency_ms") >= 0
    assert a == b
    assert a["call_id"] == "c-1" and a["scorable"] and a["codec"] == "ulaw" and a["channel_layout"] == "mono"
    assert 0 <= a["score"] <= 100 and round(a["score"], 2) == a["score"]
    overtalk = next(c for c in a["breakdown"] if c["criterion"] == "overtalk")
    assert overtalk["applicable"] is False and "mono" in overtalk["reason"] and overtalk["value"] is None
    assert abs(sum(c["points"] for c in a["breakdown"]) - a["score"]) < 0.05 or a["score"] <= 40


def test_streamed_chunked_upload_scores_like_a_plain_one(base_url: str, mono_call: bytes) -> None:
    plain = _post(base_url, mono_call, call_id="s-1").json()
    chunks = (mono_call[i : i + 8192] for i in range(0, len(mono_call), 8192))
    streamed = _post_stream(base_url, chunks, call_id="s-1")
    assert streamed.status_code == 200, streamed.text
    body = streamed.json()
    body.pop("latency_ms"), plain.pop("latency_ms")
    assert body == plain


def test_stereo_with_transcript(base_url: str, stereo_plan: CallPlan) -> None:
    audio = wav_bytes(render_call(stereo_plan), 8000, "pcm16")
    transcript = [
        {"start_s": s["start_s"], "end_s": s["end_s"], "text": s["text"], "speaker": s["speaker"]}
        for s in stereo_plan.truth["segments"]
        if s["kind"] == "speech"
    ]
    response = _post(base_url, audio, call_id="st-1", channel_layout="agent_left", transcript=json.dumps(transcript))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["transcript_source"] == "request" and body["channels"] == 2
    by_id = {c["criterion"]: c for c in body["breakdown"]}
    assert by_id["overtalk"]["applicable"] and by_id["talk_listen_ratio"]["applicable"]
    assert by_id["greeting"]["applicable"] and by_id["greeting"]["passed"] == stereo_plan.truth["phrases"]["greeting"]
    assert abs(sum(c["max_points"] for c in body["breakdown"]) - 100) < 0.05  # N/A criteria dropped, weights renormalised
    swapped = _post(base_url, audio, channel_layout="agent_right").json()
    assert swapped["metrics"]["agent_talk_s"] == body["metrics"]["customer_talk_s"]


def test_unscorable_audio_is_answered_without_a_score(base_url: str) -> None:
    short = _post(base_url, wav_bytes(render_call(plan_call(5, duration_s=2.0)), 8000, "ulaw")).json()
    assert short["scorable"] is False and short["score"] is None and short["reason"].startswith("too_short")
    silent = _post(base_url, wav_bytes(np.zeros((8000 * 20, 1), dtype=np.int16), 8000, "ulaw")).json()
    assert silent["scorable"] is False and silent["score"] is None and silent["reason"].startswith("silent")


def test_typed_errors_and_the_service_stays_up(service: tuple[str, subprocess.Popen[bytes]], mono_call: bytes) -> None:
    base_url, proc = service
    good = mono_call
    _error(_post(base_url, b""), 422, "corrupt_wav")  # empty
    _error(_post(base_url, good[:30]), 422, "corrupt_wav")  # truncated header
    _error(_post(base_url, wav_header(0, 8000, 1, "ulaw")), 422, "empty_audio")  # 0 seconds
    _error(_post(base_url, b"ID3\x04\x00 definitely an mp3 " * 50), 415, "not_audio")
    _error(_post(base_url, b'{"json": "not audio"}'), 415, "not_audio")
    adpcm = bytearray(wav_bytes(np.zeros((800, 1), dtype=np.int16), 8000, "pcm16"))
    adpcm[20:22] = struct.pack("<H", 0x11)  # IMA ADPCM
    _error(_post(base_url, bytes(adpcm)), 415, "unsupported_codec")
    _error(httpx.post(f"{base_url}/v1/score", content=good, headers={**AUTH, "content-type": "audio/wav"}), 415,
           "not_multipart")
    only_fields = httpx.post(f"{base_url}/v1/score", files={"call_id": (None, "x")}, headers=AUTH)  # no audio part
    _error(only_fields, 400, "missing_audio")
    _error(_post(base_url, good, call_id="../../etc/passwd"), 400, "bad_call_id")
    _error(_post(base_url, good, channel_layout="left"), 400, "bad_channel_layout")
    _error(_post(base_url, good, channel_layout="agent_left"), 400, "channel_layout_mismatch")
    _error(_post(base_url, good, transcript="{not json"), 400, "bad_transcript")
    broken = httpx.post(f"{base_url}/v1/score", content=b"--x\r\nnonsense",
                        headers={**AUTH, "content-type": "multipart/form-data"})
    _error(broken, 400, "bad_request")  # multipart without a boundary

    rss_before = psutil.Process(proc.pid).memory_info().rss
    # A real 2-hour µ-law recording (57.6 MB, streamed): refused from its header, before decoding.
    frames = 2 * 3600 * 8000
    two_hours = iter(
        [wav_header(frames, 8000, 1, "ulaw")] + [b"\xff" * 1_000_000] * (frames // 1_000_000) + [b"\xff" * (frames % 1_000_000)]
    )
    _error(_post_stream(base_url, two_hours), 413, "audio_too_long")

    # Over the upload cap: with Content-Length (refused up front) and chunked (refused while streaming).
    big = b"\x00" * ((MAX_UPLOAD_MB + 1) * 1024 * 1024)
    _error(_post(base_url, big), 413, "payload_too_large")
    _error(_post_stream(base_url, iter([big[i : i + (1 << 20)] for i in range(0, len(big), 1 << 20)])), 413, "payload_too_large")

    # 187 MB went in; the upload was spooled to disk and never decoded, so the server did not grow with it.
    assert psutil.Process(proc.pid).memory_info().rss - rss_before < 40 * 1024 * 1024
    assert httpx.get(f"{base_url}/healthz").status_code == 200
    assert _post(base_url, good).status_code == 200
    metrics = httpx.get(f"{base_url}/metrics").text
    for kind in (
        "corrupt_wav",
        "empty_audio",
        "not_audio",
        "unsupported_codec",
        "bad_call_id",
        "audio_too_long",
        "payload_too_large",
    ):
        assert f'ccas_scoring_errors_total{{type="{kind}"}}' in metrics
    assert 'ccas_scoring_request_seconds_bucket{le="1.0",route="/v1/score",status="200"}' in metrics
    assert "ccas_scoring_audio_seconds_total" in metrics


def test_batch_scores_each_file_and_isolates_bad_ones(base_url: str, mono_call: bytes) -> None:
    other = wav_bytes(render_call(plan_call(303, duration_s=20, language="en")), 16000, "pcm16")
    files = [
        ("audio", ("a.wav", mono_call, "audio/wav")),
        ("audio", ("b.wav", b"RIFF\x00\x00", "audio/wav")),
        ("audio", ("c.wav", other, "audio/wav")),
    ]
    data = {"call_id": ["b-a", "b-b", "b-c"]}
    response = httpx.post(f"{base_url}/v1/score/batch", files=files, data=data, headers=AUTH, timeout=120)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert results[0]["result"]["call_id"] == "b-a" and results[0]["result"]["scorable"]
    assert results[1]["error"]["status"] == 422 and results[1]["result"] is None
    assert results[2]["result"]["call_id"] == "b-c" and results[2]["result"]["sample_rate"] == 16000
    single = _post(base_url, mono_call, call_id="b-a").json()
    batch_first = results[0]["result"]
    single.pop("latency_ms"), batch_first.pop("latency_ms")
    assert single == batch_first
    long_call = list(iter_wav_bytes(np.zeros((8000 * 200, 1), dtype=np.int16), 8000, "ulaw"))
    too_long = httpx.post(
        f"{base_url}/v1/score/batch", files=[("audio", ("l.wav", b"".join(long_call), "audio/wav"))], headers=AUTH, timeout=60
    )
    assert too_long.json()["results"][0]["error"]["error"] == "audio_too_long"  # batch is for short files
