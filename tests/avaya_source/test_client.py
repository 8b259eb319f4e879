"""The client against the real mock recorder over HTTP (served on a thread here; a `ccas avaya-mock` subprocess where
the test measures this process's memory)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from audio import wav
from avaya_source.client import LAYOUT_CONTACTS, AvayaBadResponse, AvayaClient, AvayaRejected, AvayaUnavailable, Credentials
from tests.avaya_source.harness import MOCK_PASSWORD, MOCK_USER, free_port

HOUR = timedelta(hours=1)


def client(url: str, **kw: object) -> AvayaClient:
    return AvayaClient(url, Credentials(MOCK_USER, MOCK_PASSWORD), backoff_s=0.05, **kw)


@pytest.mark.parametrize("fmt", ["iso", "naive", "utc", "ddmmyy"])
def test_search_times_are_utc_whatever_the_recorder_writes(serve_mock, fmt: str) -> None:
    mock = serve_mock("--seed", "21", "--start", "-3000", "--count", "30", "--startedat-format", fmt, "--duration-max", "200")
    now = datetime.now(UTC)
    with client(mock.url) as c:
        page = c.search(now - HOUR, now)
    truth = {call["inum"]: call for call in mock.calls()}
    assert len(page.recordings) == len(truth) and not page.rejected
    for recording in page.recordings:
        expected = datetime.fromisoformat(truth[recording.call_id]["started_at"])
        precision = timedelta(seconds=1) if fmt == "ddmmyy" else timedelta(milliseconds=1)
        assert abs(recording.started_at - expected) < precision
        assert recording.started_at.tzinfo == UTC
        assert recording.raw_agent and "(" in recording.raw_agent


def test_contacts_layout_lists_the_inums_of_multi_inum_calls(serve_mock) -> None:
    mock = serve_mock("--seed", "22", "--start", "-3000", "--count", "40", "--multi-inum-ratio", "0.5")
    now = datetime.now(UTC)
    with client(mock.url) as c:
        contacts = c.search(now - HOUR, now, LAYOUT_CONTACTS).contacts
    multi = [contact for contact in contacts if len(contact.inums) > 1]
    assert multi and len(contacts) == 40
    by_inum = {call["inum"]: call for call in mock.calls()}
    for contact in multi:
        assert {by_inum[i]["switch_call_id"] for i in contact.inums} == {contact.switch_call_id}


def test_missing_or_wrong_credentials_are_a_permanent_rejection(serve_mock, caplog) -> None:
    mock = serve_mock("--count", "1")
    caplog.set_level(logging.DEBUG)
    bad = AvayaClient(mock.url, Credentials(MOCK_USER, "wrong-" + MOCK_PASSWORD), retries=3)
    with pytest.raises(AvayaRejected, match="401"):
        bad.search(datetime.now(UTC) - HOUR, datetime.now(UTC))
    assert mock.session.get(f"{mock.url}/searchapi", params={"command": "search"}, auth=None).status_code in (400, 401)
    assert "wrong-" not in caplog.text and MOCK_PASSWORD not in caplog.text
    assert "password=***" in repr(Credentials("u", "secret")) and "secret" not in repr(Credentials("u", "secret"))


def test_5xx_are_retried_with_backoff_then_given_up(serve_mock, caplog) -> None:
    mock = serve_mock("--count", "5", "--start", "-900", "--error-5xx-ratio", "0.5", "--fault-seed", "3")
    now = datetime.now(UTC)
    with client(mock.url, retries=8) as c:
        for _ in range(6):
            c.search(now - HOUR, now)
    assert mock.stats()["fault_5xx"] >= 1
    mock.configure(error_5xx_ratio=1.0)
    before = mock.stats()["fault_5xx"]
    with client(mock.url, retries=2) as c, pytest.raises(AvayaUnavailable, match="after 3 attempts: HTTP 503"):
        c.search(now - HOUR, now)
    assert mock.stats()["fault_5xx"] - before == 3
    assert MOCK_PASSWORD not in caplog.text


def test_connection_refused_and_read_timeout_are_unavailable(serve_mock) -> None:
    with client(f"http://127.0.0.1:{free_port()}", retries=1) as c, pytest.raises(AvayaUnavailable, match="ConnectionError"):
        c.search(datetime.now(UTC) - HOUR, datetime.now(UTC))
    mock = serve_mock("--count", "1", "--latency-ms", "1500")
    with client(mock.url, retries=1, read_timeout=0.3) as c, pytest.raises(AvayaUnavailable, match="Timeout"):
        c.search(datetime.now(UTC) - HOUR, datetime.now(UTC))


def test_truncated_bodies_are_detected(serve_mock) -> None:
    mock = serve_mock("--count", "3", "--start", "-900", "--truncate-ratio", "1.0")
    now = datetime.now(UTC)
    with client(mock.url) as c:
        with pytest.raises(AvayaBadResponse) as info:
            c.search(now - HOUR, now)
        assert info.value.reason == "truncated"
        inum = mock.calls()[0]["inum"]
        with pytest.raises(AvayaBadResponse, match="truncated"), c.replay(inum) as stream:
            for _ in stream:
                pass


def test_replay_is_mono_ulaw_8k_with_fact_chunk_by_default(serve_mock) -> None:
    mock = serve_mock("--seed", "23", "--start", "-900", "--count", "2", "--duration-max", "20")
    call = mock.calls()[0]
    with client(mock.url) as c, c.replay(call["inum"]) as stream:
        body = b"".join(stream)
    assert stream.content_type == "audio/wav" and len(body) == stream.content_length
    assert body[20:22] == b"\x07\x00" and body[38:42] == b"fact"  # format tag 7 (µ-law), 18-byte fmt, then fact
    info = wav.read_wav_info(io.BytesIO(body))
    assert (info.codec, info.channels, info.sample_rate) == ("ulaw", 1, 8000)
    assert abs(info.duration_s - call["duration"]) < 0.5
    pcm, rate, _ = wav.read_wav(body)
    assert rate == 8000 and int(abs(pcm.astype("int32")).max()) > 1000  # real speech, not silence
    truth = mock.session.get(f"{mock.url}/_mock/truth", params={"id": call["inum"]}, timeout=60).json()
    assert truth["inum"] == call["inum"] and truth["truth"]


def test_replay_stereo_pcm16_on_request(serve_mock) -> None:
    mock = serve_mock("--seed", "24", "--start", "-900", "--count", "1", "--duration-max", "15", "--stereo", "true",
                      "--codec", "pcm16")
    with client(mock.url) as c, c.replay(mock.calls()[0]["inum"]) as stream:
        info = wav.read_wav_info(io.BytesIO(b"".join(stream)))
    assert (info.codec, info.channels, info.sample_rate) == ("pcm16", 2, 8000)


def test_unknown_or_unsafe_inum(serve_mock) -> None:
    mock = serve_mock("--count", "1")
    with client(mock.url) as c:
        with pytest.raises(AvayaRejected, match="404"):
            c.replay("999999")
        with pytest.raises(ValueError, match="bad_call_id"):
            c.replay("../../etc/passwd")


def test_a_50_mb_replay_streams_with_flat_memory(start_mock) -> None:
    # 6,600 s of µ-law at 8 kHz = 52.8 MB: the call's audio looped by the mock, streamed in 64 KB chunks.
    mock = start_mock("--seed", "25", "--start", "-900", "--count", "1", "--duration-max", "30", "--replay-min-seconds", "6600")
    inum = mock.calls()[0]["inum"]
    process = psutil.Process(os.getpid())
    digest = hashlib.sha256()
    with client(mock.url) as c:
        with c.replay(inum) as warm:  # first replay renders the call in the mock; not what we measure
            next(iter(warm))
        rss_before = process.memory_info().rss
        peak = rss_before
        with c.replay(inum) as stream:
            for index, chunk in enumerate(stream):
                digest.update(chunk)
                if index % 64 == 0:
                    peak = max(peak, process.memory_info().rss)
        peak = max(peak, process.memory_info().rss)
    assert stream.bytes_read == stream.content_length > 50 * 1024 * 1024
    growth_mb = (peak - rss_before) / 1024 / 1024
    print(f"50 MB replay: {stream.bytes_read} bytes, RSS growth {growth_mb:.1f} MB")
    assert growth_mb < 20
