"""Re-score on the real local stack (issue 15's acceptance): 30 calls scored live with version A, the scoring service redeployed
with a changed scorecard (version B), `ccas rescore --rate 3` → 30 rows of B next to the 30 of A, call.model_version B, no replay
asked of the recorder, at most rate+1 calls scored in any second, a live call published during the run still SCORED, and a
second run that does nothing. Then version C announced with `ccas rescore --announce`: the running streaming job itself
re-scores every call to C (no `--follow` process), while another live call is scored."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ccas import settings
from ccas.apps import App, ccas_command, wait_http
from ccas.stack import tls
from pipeline.pacing import most_in_any_window
from scoring_service.scorecard import DEFAULT_SCORECARD
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

INITIAL_CALLS = 30
LIVE_CALLS = 2  # one published during the bounded re-score, one during the streaming job's
RATE = 3.0
ONE_SECOND = timedelta(seconds=1)
SCORED_COUNTER = re.compile(r"^ccas_scoring_calls_total\{[^}]*\} ([0-9.e+]+)$", re.M)
ARRIVALS_COUNTER = re.compile(r"^ccas_scoring_score_requests_received_total ([0-9.e+]+)$", re.M)


def scoring_counter(scoring_url: str, counter: re.Pattern[str]) -> float:
    text = requests.get(f"{scoring_url}/metrics", timeout=5, verify=str(tls.ca_file())).text
    return sum(float(value) for value in counter.findall(text))


def scoring_calls_total(scoring_url: str) -> float:
    """Calls the scoring service has scored since it started (its Prometheus counter)."""
    return scoring_counter(scoring_url, SCORED_COUNTER)


class ArrivalWatch(threading.Thread):
    """Samples the service's POST /v1/score arrival counter every 50 ms; `moments()` gives one wall-clock time per request
    (the sample that first saw it)."""

    def __init__(self, scoring_url: str) -> None:
        super().__init__(daemon=True)
        self.scoring_url = scoring_url
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.samples.append((time.time(), scoring_counter(self.scoring_url, ARRIVALS_COUNTER)))
            time.sleep(0.05)

    def moments(self) -> list[float]:
        out: list[float] = []
        for (_, before), (moment, after) in zip(self.samples, self.samples[1:], strict=False):
            out += [moment] * int(after - before)
        return out


def without_nearest(moments: list[float], moment: float) -> list[float]:
    """`moments` less the one closest to `moment`."""
    nearest = min(range(len(moments)), key=lambda index: abs(moments[index] - moment))
    return moments[:nearest] + moments[nearest + 1:]


def redeploy_scoring(services: e2e.Services, scorecard: Path) -> str:
    """Stop the scoring service and start it again on the same port with `scorecard`; its model_version."""
    port = urlsplit(services.scoring_url).port
    old = next(app for app in services.apps if app.name == "scoring-service")
    old.stop()
    new = App("scoring-service", ccas_command("scoring-service", "--port", str(port), "--scorecard", str(scorecard)),
              e2e.log_path(f"scoring-{scorecard.stem}.log"),
              env={"CCAS_SCORING_TOKEN": services.scoring_token, **tls.scoring_service_env()}).start()
    services.apps[services.apps.index(old)] = new
    wait_http(f"{services.scoring_url}/healthz", 120, new, str(tls.ca_file()))
    return requests.get(f"{services.scoring_url}/healthz", timeout=5, verify=str(tls.ca_file())).json()["model_version"]


def last_second(earlier: dict, later: dict) -> datetime:
    """The last second a poll window may include to hold `earlier` but not `later`: the recorder's search bounds are
    inclusive whole seconds (a window ending at 12:00:05 holds a call started at 12:00:05.8), so the second `earlier`
    started in; the next window starts one second later. The two calls must start in different seconds."""
    edge = datetime.fromisoformat(earlier["started_at"]).replace(microsecond=0)
    assert edge < datetime.fromisoformat(later["started_at"]).replace(microsecond=0), \
        f"calls {earlier['inum']} and {later['inum']} start in the same second: no poll window can tell them apart"
    return edge


def rescore_command(services: e2e.Services, database_url: str, log_name: str, *args: str) -> App:
    return App("rescore", ccas_command("rescore", "--rate", str(RATE), "--chunk", "12", *(args or ("--since", "-86400")),
                                       f"--scoring_url={services.scoring_url}", f"--avaya_url={services.recorder_url}",
                                       "--kafka_io=python"),
               e2e.log_path(log_name), env={**services.scoring_env, **settings.component_env("pipeline", database_url)})


@pytest.fixture(scope="module")
def live(stack_env: dict[str, str]) -> Iterator[dict]:
    """Mock recorder (31 single-recording calls), scoring service A, the live pipeline; the first 30 calls scored with A."""
    services = e2e.start_services(seed=uuid.uuid4().int % 90_000 + 10_000, count=INITIAL_CALLS + LIVE_CALLS,
                                  calls_per_minute=2, extra_mock_args=["--multi-inum-ratio", "0"])
    try:
        planned = sorted(services.recorder_calls(), key=lambda call: call["started_at"])
        assert len(planned) == INITIAL_CALLS + LIVE_CALLS
        last_initial, late, later = planned[-3:]
        # Poll windows are inclusive whole seconds (see last_second()); calls 30 s apart on average rarely share a second.
        before_late = last_second(last_initial, late)
        between = last_second(late, later)
        bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url, \
                e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as poller_db:
            group = f"ccas-pipeline-e2e-rescore-{uuid.uuid4().hex[:8]}"
            e2e.commit_group(bootstrap, group, "calls.raw", e2e.end_offsets(bootstrap, "calls.raw"))
            first = datetime.fromisoformat(planned[0]["started_at"]) - timedelta(minutes=1)
            e2e.poll_once(services, poller_db, first, before_late)
            pipeline = e2e.start_pipeline(services, url, group, "python", f"pipeline-{group}.log")
            try:
                e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM call WHERE status = 'SCORED'")[0][0]
                               >= INITIAL_CALLS, 420, f"{INITIAL_CALLS} calls scored with version A", [pipeline])
                yield {"services": services, "url": url, "poller_db": poller_db, "pipeline": pipeline, "late": late,
                       "later": later, "before_late": before_late, "between": between, "bootstrap": bootstrap}
            finally:
                pipeline.stop()
    finally:
        services.stop()


def test_rescore_adds_version_b_next_to_a_paced_without_the_recorder_while_live_calls_go_on(live: dict,
                                                                                           tmp_path: Path) -> None:
    services, url, late = live["services"], live["url"], live["late"]
    (version_a,) = {row[0] for row in e2e.query(url, "SELECT model_version FROM scoring_result")}
    assert e2e.query(url, "SELECT count(*) FROM call WHERE status = 'SCORED' AND model_version = %s", (version_a,))[0][0] \
        == INITIAL_CALLS, "the live writer records the current version on the call"

    scorecard_b = tmp_path / "scorecard_b.yaml"
    text = DEFAULT_SCORECARD.read_text()
    scorecard_b.write_text(re.sub(r'^version: "[^"]+"', f'version: "9.{uuid.uuid4().int % 1000}.0"', text, count=1, flags=re.M))
    version_b = redeploy_scoring(services, scorecard_b)
    assert version_b != version_a

    replays_before = services.recorder_stats().get("replay", 0)
    results_start = e2e.end_offsets(live["bootstrap"], "scoring.results")
    watch = ArrivalWatch(services.scoring_url)
    watch.start()
    started = time.monotonic()
    rescore = rescore_command(services, url, "rescore-first.log").start()
    try:
        # A live call while the re-score runs: polled now, scored by the running pipeline (with B, the service's version).
        e2e.wait_until(lambda: len(watch.moments()) >= 3, 120, "the re-score's first calls", [rescore])
        e2e.poll_once(services, live["poller_db"], live["before_late"] + ONE_SECOND, live["between"])
        e2e.wait_until(lambda: e2e.query(url, "SELECT status FROM call WHERE call_id = %s", (late["inum"],))
                       == [("SCORED",)], 300, "the live call SCORED during the re-score", [live["pipeline"]])
        live_scored_during_rescore = rescore.alive()
        assert rescore.popen.wait(300) == 0, rescore.tail()
    finally:
        rescore.stop()
        watch.stopping.set()
        watch.join()
    elapsed = time.monotonic() - started

    rows = e2e.query(url, "SELECT call_id, model_version, end_to_end_ms FROM scoring_result")
    initial = {call_id for call_id, version, _ in rows if version == version_a}
    assert len(initial) == INITIAL_CALLS
    assert {call_id for call_id, version, _ in rows if version == version_b} == initial | {late["inum"]}, \
        "a row of B next to every row of A, and the live call's"
    assert {version for (version,) in e2e.query(url, "SELECT model_version FROM call")} == {version_b}
    assert {status for (status,) in e2e.query(url, "SELECT status FROM call")} == {"SCORED"}
    assert live_scored_during_rescore, "the live call was scored while the re-score was still running"
    assert services.recorder_stats().get("replay", 0) - replays_before == 1, "only the live call's replay"

    moments = watch.moments()
    assert len(moments) == INITIAL_CALLS + 1, "one request per re-scored call, and the live call's"
    # The live call's request is not the re-score's: the arrival nearest to its scoring (written after its round trip).
    ((written_at, latency_ms),) = e2e.query(url, "SELECT extract(epoch FROM created_at), latency_ms FROM scoring_result "
                                                  "WHERE call_id = %s", (late["inum"],))
    rescore_moments = without_nearest(moments, float(written_at) - latency_ms / 1000)
    busiest = most_in_any_window(rescore_moments)
    print(f"re-score of {INITIAL_CALLS} calls at --rate {RATE:g}: {elapsed:.1f} s; most re-score requests in one second "
          f"{busiest}, most requests of any kind in one second {most_in_any_window(moments)}")
    assert busiest <= RATE + 1, f"{busiest} re-score requests in one second"
    assert max(rescore_moments) - min(rescore_moments) >= (INITIAL_CALLS - 1) / RATE - 1, "the re-score was paced"

    published = [v for v in e2e.read_since(live["bootstrap"], "scoring.results", results_start)
                 if v["call_id"] in initial and v["model_version"] == version_b]
    assert sorted(v["call_id"] for v in published) == sorted(initial)
    assert all(v["end_to_end_ms"] is None for v in published), "a re-score has no end-to-end latency"

    scored_before = scoring_calls_total(services.scoring_url)
    again = rescore_command(services, url, "rescore-second.log").start()
    assert again.popen.wait(120) == 0, again.tail()
    assert "0 scored calls" in again.tail(10) and "nothing to do" in again.tail(10), again.tail(10)
    assert scoring_calls_total(services.scoring_url) == scored_before
    assert len(e2e.query(url, "SELECT 1 FROM scoring_result")) == 2 * INITIAL_CALLS + 1
    assert json.dumps(e2e.query(url, "SELECT count(*) FROM scoring_result WHERE model_version = %s", (version_b,))) == \
        json.dumps([[INITIAL_CALLS + 1]])


def test_an_announced_model_version_is_rescored_by_the_running_streaming_job(live: dict, tmp_path: Path) -> None:
    services, url, later = live["services"], live["url"], live["later"]
    scorecard_c = tmp_path / "scorecard_c.yaml"
    scorecard_c.write_text(re.sub(r'^version: "[^"]+"', f'version: "8.{uuid.uuid4().int % 1000}.0"',
                                  DEFAULT_SCORECARD.read_text(), count=1, flags=re.M))
    version_c = redeploy_scoring(services, scorecard_c)
    stored = e2e.query(url, "SELECT count(*) FROM call")[0][0]
    assert e2e.query(url, "SELECT count(*) FROM call WHERE model_version = %s", (version_c,)) == [(0,)]
    started_at = time.monotonic()
    announce = rescore_command(services, url, "rescore-announce.log", "--announce").start()
    assert announce.popen.wait(120) == 0, announce.tail()
    assert f"announced {version_c} on model.version.updated" in announce.tail(5)
    # A live call while the streaming job re-scores: polled now, scored by the same job with C.
    e2e.poll_once(services, live["poller_db"], live["between"] + ONE_SECOND, datetime.now(UTC) - timedelta(seconds=5))
    e2e.wait_until(lambda: e2e.query(url, "SELECT status, model_version FROM call WHERE call_id = %s", (later["inum"],))
                   == [("SCORED", version_c)], 300, "the live call SCORED with C", [live["pipeline"]])
    e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM call WHERE model_version = %s", (version_c,))[0][0]
                   == stored + 1, 300, f"every call at {version_c}: re-scored by the streaming job", [live["pipeline"]])
    elapsed = time.monotonic() - started_at
    print(f"the streaming job moved {stored} stored calls to {version_c} ({stored + 1} with the live one) in {elapsed:.1f} s "
          "after the announcement")
    assert live["pipeline"].alive(), live["pipeline"].tail()
    assert {status for (status,) in e2e.query(url, "SELECT status FROM call")} == {"SCORED"}
    assert e2e.query(url, "SELECT count(*) FROM scoring_result WHERE model_version = %s", (version_c,)) == [(stored + 1,)]
    job_log = live["pipeline"].log_file.read_text(errors="replace")
    assert f"the scoring service scores with {version_c}; {stored} calls started in the last" in job_log, job_log[-3000:]
