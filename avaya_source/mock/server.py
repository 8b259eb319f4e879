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
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

from avaya_source.mock.audio import AudioConfig
from avaya_source.mock.recorder import Answer, Faults, MockRecorder, SearchParamsError
from avaya_source.mock.responses import HOSTILE_MODES, Rendering
from avaya_source.mock.schedule import REAL_MAX_S, REAL_MEDIAN_S, REAL_MIN_S, ScheduleConfig
from avaya_source.records import DEFAULT_TZ, check_call_id, parse_startedat

log = logging.getLogger(__name__)


class MockHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], recorder: MockRecorder, user: str, password: str) -> None:
        super().__init__(address, _Handler)
        self.recorder = recorder
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

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
        if urlsplit(self.path).path != "/_mock/config" or length > 65536:
            self._send_bytes(404, b"<error>not found</error>")
            return
        try:
            self._send_json(200, self.server.recorder.configure(json.loads(self.rfile.read(length) or b"{}")))
        except (ValueError, TypeError) as exc:
            self._send_json(400, {"error": str(exc)})

    def _search_api(self, recorder: MockRecorder, params: dict[str, str]) -> None:
        if recorder.faults.latency_ms > 0:
            time.sleep(recorder.faults.latency_ms / 1000)
        failure = recorder.pre_request()
        if failure is not None:
            self._send(failure)
            return
        command = params.get("command")
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


def _env(name: str, default: object) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else (None if default is None else str(default))


def _start(text: str) -> datetime:
    """An ISO time, `now`, or seconds relative to now (`-1800` = half an hour ago)."""
    if text == "now":
        return datetime.now(UTC)
    try:
        return datetime.now(UTC) + timedelta(seconds=float(text))
    except ValueError:
        return parse_startedat(text, ZoneInfo("UTC"))


def build_parser() -> argparse.ArgumentParser:
    from ccas.settings import ports

    p = argparse.ArgumentParser(prog="ccas avaya-mock", description=__doc__.splitlines()[0])
    e = "CCAS_AVAYA_MOCK_"

    def add(flag: str, env: str, default: object, kind: type = str, **kw: object) -> None:
        p.add_argument(flag, default=_env(e + env, default), type=kind, help=f"(env {e + env}, default {default})", **kw)

    add("--host", "HOST", "127.0.0.1")
    add("--port", "PORT", ports().avaya_mock, int)
    add("--seed", "SEED", 1, int)
    add("--start", "START", "now")  # ISO time, `now`, or seconds relative to now (-1800)
    add("--calls-per-minute", "CALLS_PER_MINUTE", 6.0, float)
    add("--count", "COUNT", None, int)
    add("--multi-inum-ratio", "MULTI_INUM_RATIO", 0.15, float)
    add("--availability-delay", "AVAILABILITY_DELAY", 5.0, float)
    add("--duration-median", "DURATION_MEDIAN", REAL_MEDIAN_S, float)
    add("--duration-min", "DURATION_MIN", REAL_MIN_S, float)
    add("--duration-max", "DURATION_MAX", REAL_MAX_S, float)
    add("--english-ratio", "ENGLISH_RATIO", 0.3, float)
    add("--startedat-format", "STARTEDAT_FORMAT", "iso", choices=("iso", "naive", "utc", "ddmmyy"))
    add("--max-results", "MAX_RESULTS", 1000, int)
    add("--stereo", "STEREO", "false", choices=("true", "false"))
    add("--codec", "CODEC", "ulaw", choices=("ulaw", "alaw", "pcm16"))
    add("--replay-min-seconds", "REPLAY_MIN_SECONDS", 0.0, float)
    add("--list-in-progress", "LIST_IN_PROGRESS", "false", choices=("true", "false"))
    add("--error-5xx-ratio", "ERROR_5XX_RATIO", 0.0, float)
    add("--latency-ms", "LATENCY_MS", 0.0, float)
    add("--truncate-ratio", "TRUNCATE_RATIO", 0.0, float)
    add("--malformed-xml-ratio", "MALFORMED_XML_RATIO", 0.0, float)
    add("--duplicate-ratio", "DUPLICATE_RATIO", 0.0, float)
    add("--corrupt-ratio", "CORRUPT_RATIO", 0.0, float)
    add("--hostile", "HOSTILE", None, choices=HOSTILE_MODES)
    add("--hostile-count", "HOSTILE_COUNT", -1, int)
    add("--fault-seed", "FAULT_SEED", 0, int)
    p.add_argument("--tz", default=_env("CCAS_AVAYA_TZ", DEFAULT_TZ), help="recorder time zone (env CCAS_AVAYA_TZ)")
    p.add_argument("--log-level", default=_env("CCAS_LOG_LEVEL", "INFO"))
    return p


def recorder_from_args(args: argparse.Namespace) -> MockRecorder:
    tz = ZoneInfo(args.tz)
    schedule = ScheduleConfig(
        seed=args.seed,
        start=_start(args.start),
        calls_per_minute=args.calls_per_minute,
        count=args.count,
        multi_inum_ratio=args.multi_inum_ratio,
        availability_delay_s=args.availability_delay,
        duration_median_s=args.duration_median,
        duration_min_s=args.duration_min,
        duration_max_s=args.duration_max,
        english_ratio=args.english_ratio,
    )
    audio = AudioConfig(stereo=args.stereo == "true", codec=args.codec, min_seconds=args.replay_min_seconds)
    rendering = Rendering(tz=tz, startedat_format=args.startedat_format, corrupt_ratio=args.corrupt_ratio, corrupt_seed=args.seed)
    faults = Faults(
        error_5xx_ratio=args.error_5xx_ratio,
        latency_ms=args.latency_ms,
        truncate_ratio=args.truncate_ratio,
        malformed_xml_ratio=args.malformed_xml_ratio,
        duplicate_ratio=args.duplicate_ratio,
        hostile=args.hostile,
        hostile_count=args.hostile_count,
        max_results=args.max_results,
        list_in_progress=args.list_in_progress == "true",
    )
    return MockRecorder(schedule, audio, rendering, faults, fault_seed=args.fault_seed)


def main(argv: list[str]) -> int:
    from ccas.settings import setting

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    recorder = recorder_from_args(args)
    server = serve(recorder, args.host, args.port, setting("CCAS_AVAYA_USER"), setting("CCAS_AVAYA_PASSWORD"))
    log.info(
        "avaya-mock listening on http://%s:%d (seed=%d start=%s %.2f calls/min)",
        args.host,
        server.server_address[1],
        args.seed,
        recorder.schedule.config.start.isoformat(),
        args.calls_per_minute,
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
