"""`ccas avaya-mock`: an ACR-compatible Search/Replay HTTP server over a seeded call schedule, with fault injection.

Threaded http.server (not an ASGI app) because the truncation fault needs to drop a connection mid-body, and replays are written
chunk by chunk from a generator so a long recording is never built in memory.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from avaya_source.mock.audio import AudioConfig
from avaya_source.mock.recorder import Answer, Faults, MockRecorder, SearchParamsError
from avaya_source.mock.responses import Rendering
from avaya_source.mock.schedule import ScheduleConfig
from avaya_source.mock.settings import AvayaMockSettings
from avaya_source.records import check_call_id, parse_startedat
from core.config import add_flags, load

log = logging.getLogger(__name__)

# Mock-only runtime outages (docs/avaya.md); /mock/faults is the same endpoint under the name fault suites first used.
FAULTS_PATHS = ("/_mock/faults", "/mock/faults")


class MockHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], recorder: MockRecorder, user: str, password: str) -> None:
        super().__init__(address, _Handler)
        self.recorder = recorder
        self.stopping = False  # releases requests held by a "timeout" outage
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def shutdown(self) -> None:
        self.stopping = True
        super().shutdown()

    def authorized(self, header: str | None) -> bool:
        return hmac.compare_digest((header or "").encode(), self._auth.encode())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects
    server: MockHTTPServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        log.debug("%s " + format, self.client_address[0], *args)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(answer.length))
        self.end_headers()
        sent = 0
        try:
            for chunk in answer.chunks:
                if answer.cut_at is not None and sent + len(chunk) >= answer.cut_at:
                    self.wfile.write(chunk[: answer.cut_at - sent])
                    self.wfile.flush()
                    self.close_connection = True  # the truncation fault: promised length, then hang up
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_bytes(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        self._send(Answer(status, content_type, len(body), iter([body])))

    def _send_json(self, status: int, payload: object) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query))
        if url.path == "/_mock/health":
            self._send_json(200, {"ok": True, "now": datetime.now(UTC).isoformat()})
            return
        if not self.server.authorized(self.headers.get("Authorization")):
            body = b"<error>authentication required</error>"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="ACR"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        recorder = self.server.recorder
        if url.path == "/searchapi":
            self._search_api(recorder, params)
        elif url.path == "/_mock/config":
            self._send_json(200, recorder.configure({}))
        elif url.path in FAULTS_PATHS:
            self._send_json(200, recorder.outages({}))
        elif url.path == "/_mock/stats":
            self._send_json(200, dict(recorder.stats))
        elif url.path == "/_mock/calls":
            until = parse_startedat(params["until"], ZoneInfo("UTC")) if "until" in params else datetime.now(UTC)
            self._send_json(200, recorder.calls(until))
        elif url.path == "/_mock/truth":
            segment = recorder.schedule.segment(params.get("id", ""))
            if segment is None:
                self._send_json(404, {"error": "unknown inum"})
            else:
                self._send_json(200, recorder.audio.truth(segment))
        else:
            self._send_bytes(404, b"<error>not found</error>")

    def do_POST(self) -> None:  # noqa: N802
        if not self.server.authorized(self.headers.get("Authorization")):
            self._send_bytes(401, b"<error>authentication required</error>")
            return
        length = int(self.headers.get("Content-Length") or 0)
        path = urlsplit(self.path).path
        if path not in ("/_mock/config", *FAULTS_PATHS) or length > 65536:
            self._send_bytes(404, b"<error>not found</error>")
            return
        recorder = self.server.recorder
        try:
            values = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(values, dict):
                raise ValueError("expected a JSON object")
            self._send_json(200, recorder.configure(values) if path == "/_mock/config" else recorder.outages(values))
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    def _search_api(self, recorder: MockRecorder, params: dict[str, str]) -> None:
        if recorder.faults.latency_ms > 0:
            time.sleep(recorder.faults.latency_ms / 1000)
        command = params.get("command")
        failure = recorder.outage(command, lambda: self.server.stopping) or recorder.pre_request()
        if failure is not None:
            self._send(failure)
            return
        try:
            if command == "search":
                self._send(recorder.search(params))
            elif command == "replay":
                answer = recorder.replay(check_call_id(params.get("id")))
                if answer is None:
                    self._send_bytes(404, b"<error>no such recording</error>")
                else:
                    self._send(answer)
            else:
                self._send_bytes(400, b"<error>unknown command</error>")
        except (SearchParamsError, ValueError) as exc:
            self._send_bytes(400, f"<error>{type(exc).__name__}</error>".encode())


def serve(recorder: MockRecorder, host: str, port: int, user: str, password: str) -> MockHTTPServer:
    """Start the server on a background thread; returns it (call shutdown() to stop)."""
    server = MockHTTPServer((host, port), recorder, user, password)
    threading.Thread(target=server.serve_forever, name="avaya-mock", daemon=True).start()
    return server


def _start(text: str) -> datetime:
    """An ISO time, `now`, or seconds relative to now (`-1800` = half an hour ago)."""
    if text == "now":
        return datetime.now(UTC)
    try:
        return datetime.now(UTC) + timedelta(seconds=float(text))
    except ValueError:
        return parse_startedat(text, ZoneInfo("UTC"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas avaya-mock", description=__doc__.splitlines()[0])
    add_flags(parser, AvayaMockSettings)
    return parser


def recorder_from_settings(settings: AvayaMockSettings) -> MockRecorder:
    s = settings
    schedule = ScheduleConfig(
        seed=s.avaya_mock_seed,
        start=_start(s.avaya_mock_start),
        calls_per_minute=s.avaya_mock_calls_per_minute,
        count=s.avaya_mock_count,
        multi_inum_ratio=s.avaya_mock_multi_inum_ratio,
        availability_delay_s=s.avaya_mock_availability_delay,
        duration_median_s=s.avaya_mock_duration_median,
        duration_min_s=s.avaya_mock_duration_min,
        duration_max_s=s.avaya_mock_duration_max,
        english_ratio=s.avaya_mock_english_ratio,
        arrivals=s.avaya_mock_arrivals,
        history_from=_start(s.avaya_mock_history_from) if s.avaya_mock_history_from else None,
    )
    audio = AudioConfig(stereo=s.avaya_mock_stereo, codec=s.avaya_mock_codec, min_seconds=s.avaya_mock_replay_min_seconds,
                        stereo_ratio=s.avaya_mock_stereo_ratio,
                        pool_dir=Path(s.avaya_mock_audio_pool) if s.avaya_mock_audio_pool else None)
    rendering = Rendering(tz=ZoneInfo(s.avaya_tz), startedat_format=s.avaya_mock_startedat_format,
                          corrupt_ratio=s.avaya_mock_corrupt_ratio, corrupt_seed=s.avaya_mock_seed,
                          field_case=s.avaya_mock_field_case)
    faults = Faults(
        error_5xx_ratio=s.avaya_mock_error_5xx_ratio,
        latency_ms=s.avaya_mock_latency_ms,
        truncate_ratio=s.avaya_mock_truncate_ratio,
        malformed_xml_ratio=s.avaya_mock_malformed_xml_ratio,
        duplicate_ratio=s.avaya_mock_duplicate_ratio,
        hostile=s.avaya_mock_hostile,
        hostile_count=s.avaya_mock_hostile_count,
        max_results=s.avaya_mock_max_results,
        list_in_progress=s.avaya_mock_list_in_progress,
    )
    return MockRecorder(schedule, audio, rendering, faults, fault_seed=s.avaya_mock_fault_seed)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(AvayaMockSettings, args)
        credentials = settings.credentials()
        recorder = recorder_from_settings(settings)
    except (ValueError, OSError, ZoneInfoNotFoundError) as error:
        print(f"ccas avaya-mock: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = serve(recorder, settings.avaya_mock_host, settings.avaya_mock_port, credentials.user, credentials.password)
    log.info(
        "avaya-mock listening on http://%s:%d (seed=%d start=%s %.2f calls/min)",
        settings.avaya_mock_host,
        server.server_address[1],
        settings.avaya_mock_seed,
        recorder.schedule.config.start.isoformat(),
        settings.avaya_mock_calls_per_minute,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()
    log.info("avaya-mock stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
