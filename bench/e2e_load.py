"""End-to-end load benchmark: the whole product at a constant arrival rate on the local stack, measured per stage and process.

The mock recorder plans calls at λ calls/s (uniform arrivals; log-normal durations, median ≈ 3 min, up to 30 min; 30 %
stereo; 15 % multi-inum contacts) whose audio comes from a pool rendered once before the run, so no speech is synthesised
on the measured cores. Its history starts when the run does, with calls already in progress, so call ends arrive at λ from
the first minute. The poller (interval 5 s, settle 5 s), the pipeline (DirectRunner on Prism; Java or Python Kafka reader)
and the scoring service run exactly as deployed, with their own principals, roles and TLS. After a warm-up, calls that end
in the measured window are followed to scoring.results; the run then drains, and the scoring service alone is given the
same calls' audio at the pipeline's concurrency (its isolated capacity in the same run). A report, not a test:

    .venv/bin/python bench/e2e_load.py --rates 1 --minutes 20                 # the goal's load, memory drift over 20 min
    .venv/bin/python bench/e2e_load.py --rates 1.5,2,2.5 --minutes 4          # the sweep that finds the knee
    .venv/bin/python bench/e2e_load.py --burst 200                            # 200 ended calls at once: drain throughput
    .venv/bin/python bench/e2e_load.py --report                               # tables + plots from the saved runs

Needs the local stack (`ccas stack up`, `ccas --local db migrate`, `kafka bootstrap`, `s3 bootstrap`). Each run writes
bench/results/e2e_load/<name>.json; --report reads them all and draws docs/images/performance-*.png/svg.
"""

from __future__ import annotations

import argparse
import fcntl
import io
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avaya_source.mock.audio import render_pool  # noqa: E402
from avaya_source.mock.schedule import skill_languages  # noqa: E402
from bench import load_probes as probes  # noqa: E402
from ccas import settings  # noqa: E402
from ccas.apps import App, ccas_command, free_port, pipeline_command, scoring_token, wait_http  # noqa: E402
from ccas.stack import tls  # noqa: E402
from ccas.stack.cli import services as stack_services  # noqa: E402
from ccas.stack.env import fill_from_local_stack  # noqa: E402
from pipeline.io.scoring_client import ScoringClient  # noqa: E402
from tests.pipeline.e2e import Services, commit_group, query, scratch_database  # noqa: E402

RESULTS = REPO / "bench" / "results" / "e2e_load"
LOGS = settings.stack_dir() / "bench-e2e-load"
MAX_CALL_S = 1800.0
MULTI_INUM_RATIO = 0.15  # the mock's default: 15 % of contacts are 2 or 3 recordings (hold, transfer)
RECORDINGS_PER_CONTACT = 1 + MULTI_INUM_RATIO * (2 * 1 + 2) / 3  # 2 parts twice as often as 3: 1.2 on average
SCORING_CONCURRENCY = 8  # the pipeline's default (CCAS_SCORING_CONCURRENCY): the isolated run asks with the same


def _pool() -> Path:
    folder = settings.cache_dir() / "bench" / "audio-pool"
    started = time.monotonic()
    paths = render_pool(folder, clips=6, seconds=300.0)
    print(f"audio pool: {len(paths)} recordings in {folder} ({time.monotonic() - started:.0f} s)", flush=True)
    return folder


def _mock_args(rate: float, burst: int, seed: int, pool: Path) -> list[str]:
    common = ["--seed", str(seed), "--arrivals", "uniform", "--duration-median", "180", "--duration-min", "8",
              "--duration-max", str(int(MAX_CALL_S)), "--audio-pool", str(pool), "--stereo-ratio", "0.3",
              "--list-in-progress", "true", "--multi-inum-ratio", str(MULTI_INUM_RATIO)]
    if burst:  # every call ended (and listed) before the poller starts: it publishes them all in its first windows
        return [*common, "--start", str(-MAX_CALL_S - 120), "--count", str(burst), "--calls-per-minute", str(burst * 6)]
    # Calls began half an hour ago but the recorder's history starts now: the ones in progress now are the first seen.
    # A call is a recording (an inum): λ calls/s is λ / 1.2 contacts/s.
    contacts_per_minute = rate * 60 / RECORDINGS_PER_CONTACT
    return [*common, "--start", str(-MAX_CALL_S - 60), "--history-from", "now", "--calls-per-minute", str(contacts_per_minute)]


class Run:
    """One measured run: its processes, samplers and scratch database."""

    def __init__(self, args: argparse.Namespace, rate: float, name: str) -> None:
        self.args, self.rate, self.name = args, rate, name
        self.bootstrap = os.environ["CCAS_KAFKA_BOOTSTRAP"]
        self.apps: dict[str, App] = {}
        self.token = scoring_token()
        self.ports = {"mock": free_port(), "scoring": free_port(), "metrics": free_port()}
        self.recorder_url = f"http://127.0.0.1:{self.ports['mock']}"
        self.scoring_url = f"https://127.0.0.1:{self.ports['scoring']}"

    def _auth(self) -> tuple[str, str]:
        return os.environ["CCAS_AVAYA_USER"], os.environ["CCAS_AVAYA_PASSWORD"]

    def start(self, database_url: str, group: str, pool: Path) -> None:
        a = self.args
        self.apps["avaya-mock"] = App("avaya-mock", ccas_command(
            "avaya-mock", "--port", str(self.ports["mock"]), *_mock_args(self.rate, a.burst, a.seed, pool)),
            LOGS / f"{self.name}-mock.log").start()
        self.apps["scoring-service"] = App("scoring-service", ccas_command(
            "scoring-service", "--port", str(self.ports["scoring"]), "--log-level", "warning"),
            LOGS / f"{self.name}-scoring.log", env={"CCAS_SCORING_TOKEN": self.token, "CCAS_SCORING_WORKERS": str(a.workers),
                                                     **tls.scoring_service_env()}).start()
        wait_http(f"{self.recorder_url}/_mock/health", 60, self.apps["avaya-mock"])
        wait_http(f"{self.scoring_url}/healthz", 120, self.apps["scoring-service"], str(tls.ca_file()))
        self.apps["poller"] = App("poller", ccas_command(
            "poller", "--interval", "5", "--settle", "5", "--lookback", "120", "--start", str(-MAX_CALL_S - 180),
            "--metrics-port", "0", "--transactional-id", f"ccas-poller-bench-{uuid.uuid4().hex[:8]}"),
            LOGS / f"{self.name}-poller.log",
            env={"CCAS_AVAYA_URL": self.recorder_url, **settings.component_env("poller", database_url)}).start()
        self.apps["pipeline"] = App("pipeline", pipeline_command(
            "--runner=DirectRunner", f"--kafka_io={a.reader}", f"--consumer_group={group}",
            f"--avaya_url={self.recorder_url}", f"--scoring_url={self.scoring_url}",
            f"--metrics_port={self.ports['metrics']}", f"--skill_languages={skill_languages()}", *a.pipeline_arg),
            LOGS / f"{self.name}-pipeline.log",
            env={"CCAS_SCORING_TOKEN": self.token, "CCAS_SCORING_CA_FILE": str(tls.ca_file()),
                 **settings.component_env("pipeline", database_url)}).start()

    def leaders(self) -> dict[str, int]:
        leaders = {name: app.pid for name, app in self.apps.items() if app.pid}
        leaders.update({f"stack:{s.name}": s.pid() for s in stack_services() if s.pid()})
        leaders["bench"] = os.getpid()
        return leaders

    def check_alive(self) -> None:
        for app in self.apps.values():
            if not app.alive():
                raise RuntimeError(f"{app.name} exited during the run:\n{app.tail(40)}")

    def replay(self, inum: str) -> bytes:
        answer = requests.get(f"{self.recorder_url}/searchapi", params={"command": "replay", "id": inum},
                              auth=self._auth(), timeout=120)
        answer.raise_for_status()
        return answer.content

    def stop(self, names: tuple[str, ...] | None = None) -> None:
        for name in reversed(list(self.apps)):
            if names is None or name in names:
                self.apps[name].stop()


def isolated_capacity(run: Run, inums: list[str], sampler: probes.ProcessSampler) -> dict[str, Any]:
    """The scoring service alone, given the run's own calls at the pipeline's concurrency: calls/s and audio-s/s."""
    bodies = [run.replay(inum) for inum in inums]
    client = ScoringClient(run.scoring_url, token=run.token, ca_file=str(tls.ca_file()), pool_size=SCORING_CONCURRENCY,
                           read_timeout=600)

    def score(item: tuple[str, bytes]) -> float:
        inum, body = item
        answer = client.score(call_id=f"iso{inum}", agent_id=None, audio=io.BytesIO(body), size=len(body))
        return float(answer.get("duration_s") or 0.0)

    sampler.sample()
    started = time.time()
    with ThreadPoolExecutor(SCORING_CONCURRENCY) as pool:
        audio_s = sum(pool.map(score, zip(inums, bodies, strict=True)))
    ended = time.time()
    sampler.sample()
    usage = sampler.between(started, ended).get("scoring-service", {})
    wall = ended - started
    return {"calls": len(inums), "wall_s": wall, "calls_per_s": len(inums) / wall, "audio_s_per_s": audio_s / wall,
            "scoring_cores": usage.get("cores"), "cpu_s_per_call": (usage.get("cpu_s") or 0) / len(inums)}


def _progress(run: Run, database_url: str, lag: probes.LagSampler, sampler: probes.ProcessSampler, started: float) -> str:
    scored = query(database_url, "SELECT count(*) FROM scoring_result")[0][0]
    last_lag = lag.samples[-1][1] if lag.samples else "?"
    usage = sampler.between(time.time() - 30, time.time())
    cores = " ".join(f"{g}={u['cores']:.2f}" for g, u in sorted(usage.items(), key=lambda kv: -kv[1]["cores"])
                     if u["cores"] >= 0.05)
    return f"  {time.time() - started:6.0f} s: {scored} scored, lag {last_lag}; cores {cores}"


def measure(args: argparse.Namespace, rate: float, pool: Path) -> dict[str, Any]:
    name = args.name or (f"burst{args.burst}-{args.reader}" if args.burst else f"rate{rate:g}-{args.reader}")
    run = Run(args, rate, name)
    group = f"ccas-pipeline-bench-{uuid.uuid4().hex[:8]}"  # the pipeline principal's groups (ACL prefix)
    offsets = probes.end_offsets(run.bootstrap, probes.STAGE_TOPICS + probes.DEAD_LETTER_TOPICS)
    commit_group(run.bootstrap, group, "calls.raw", offsets["calls.raw"])
    with scratch_database(os.environ["CCAS_DATABASE_URL"]) as database_url:
        sampler, lag = None, probes.LagSampler(run.bootstrap, group)
        try:
            run.start(database_url, group, pool)
            began = time.time()
            sampler = probes.ProcessSampler(run.leaders())
            sampler.start()
            lag.start()
            warm_end = began + (0 if args.burst else args.warmup * 60)
            window_end = warm_end + (0 if args.burst else args.minutes * 60)
            print(f"{name}: running (warm-up until +{warm_end - began:.0f} s, window until +{window_end - began:.0f} s)",
                  flush=True)
            while time.time() < window_end:
                time.sleep(min(30.0, max(1.0, window_end - time.time())))
                run.check_alive()
                print(_progress(run, database_url, lag, sampler, began), flush=True)
            # Every recording started by now: the window's calls all ended, so all started, before this.
            planned = [c for c in Services(run.recorder_url, run.scoring_url).recorder_calls() if not c["corrupt"]]
            due = {c["inum"] for c in planned
                   if warm_end <= datetime.fromisoformat(c["ended_at"]).timestamp() < window_end or args.burst}
            deadline = time.time() + args.drain * 60
            missing = due
            while time.time() < deadline:
                done = {row[0] for row in query(database_url, "SELECT call_id FROM scoring_result WHERE call_id = ANY(%s)",
                                                (sorted(due),))}
                missing = due - done
                if not missing:
                    break
                run.check_alive()
                print(_progress(run, database_url, lag, sampler, began) + f"; draining, {len(missing)} of the window's "
                      f"{len(due)} calls not scored yet", flush=True)
                time.sleep(15)
            drained = time.time()
            run.stop(("pipeline", "poller"))
            sample = sorted(due)[: args.isolated_calls]
            print(f"{name}: isolated scoring capacity with {len(sample)} of the run's calls …", flush=True)
            isolated = isolated_capacity(run, sample, sampler)
        finally:
            lag.stopping.set()
            if sampler:
                sampler.stopping.set()
            run.stop()
        calls = probes.call_times(run.bootstrap, offsets)
        window = [c for c in calls.values() if c.call_id in due]
        if args.burst:
            warm_end = min((c.raw for c in window if c.raw), default=began)
            window_end = max((c.scored for c in window if c.scored), default=drained)
        result = summarise(name, args, rate, window, due, missing, calls, (began, warm_end, window_end, drained),
                           sampler, lag, probes.dead_letters(run.bootstrap, offsets), isolated)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    return result


def summarise(name: str, args: argparse.Namespace, rate: float, window: list[probes.CallTimes], due: set[str],
              missing: set[str], calls: dict[str, probes.CallTimes], moments: tuple[float, float, float, float],
              sampler: probes.ProcessSampler, lag: probes.LagSampler, dead: dict[str, int],
              isolated: dict[str, Any]) -> dict[str, Any]:
    began, warm_end, window_end, drained = moments
    span = max(1.0, window_end - warm_end)
    scored_in_window = [c for c in calls.values() if c.scored and warm_end <= c.scored < window_end]
    stages = {
        "end_to_raw": [c.span("ended", "raw") for c in window],
        "raw_to_enriched": [c.span("raw", "enriched") for c in window],
        "enriched_to_stored": [c.span("enriched", "stored") for c in window],
        "stored_to_scored": [c.span("stored", "scored") for c in window],
        "scoring_request": [c.scoring_s for c in window],
        "pipeline_own": [c.pipeline_own_s for c in window],
        "end_to_scored": [c.span("ended", "scored") for c in window],
    }
    usage = sampler.between(warm_end, window_end)
    throughput = len(scored_in_window) / span
    audio = sum(c.audio_s or 0 for c in scored_in_window) / span
    result = {
        "name": name, "reader": args.reader, "rate": rate, "burst": args.burst, "warmup_min": args.warmup,
        "window_s": span, "calls_due": len(due), "calls_unscored": sorted(missing), "dead_letters": dead,
        "throughput_calls_per_s": throughput, "throughput_audio_s_per_s": audio,
        "offered_calls_per_s": len(window) / span if not args.burst else None,
        "stages": {stage: probes.percentiles(values) for stage, values in stages.items()},
        "processes": {group: {**u, "cpu_s_per_call": u["cpu_s"] / max(1, len(scored_in_window))} for group, u in usage.items()
                      if "/" not in group or u["cores"] >= 0.01},  # a group's parts (programs) only where they count
        "lag": [(t - began, v) for t, v in lag.samples],
        "lag_slope_per_min": probes.slope_per_min(lag.samples, warm_end, window_end),
        "rss": [(t - began, {g: r / 2**20 for g, r in rss.items()}) for t, _, rss in sampler.samples],
        "isolated_scoring": isolated,
        "e2e_over_isolated": throughput / isolated["calls_per_s"] if isolated.get("calls_per_s") else None,
        "e2e_over_isolated_audio": audio / isolated["audio_s_per_s"] if isolated.get("audio_s_per_s") else None,
        "moments": {"began": began, "warm_end": warm_end, "window_end": window_end, "drained": drained},
        "settings": {"workers": args.workers, "pipeline_args": args.pipeline_arg, "cpus": os.cpu_count()},
    }
    print_summary(result)
    return result


def print_summary(r: dict[str, Any]) -> None:
    print(f"\n== {r['name']}: {r['calls_due']} calls in a {r['window_s']:.0f} s window; scored {r['throughput_calls_per_s']:.2f} "
          f"calls/s ({r['throughput_audio_s_per_s']:.0f} audio-s/s); unscored {len(r['calls_unscored'])}; dead letters "
          f"{sum(r['dead_letters'].values())}; lag slope {r['lag_slope_per_min']} msg/min")
    for stage, p in r["stages"].items():
        print(f"   {stage:<20} " + "  ".join(f"{k} {v:7.2f} s" if v is not None else f"{k}    -   " for k, v in p.items()))
    for group, u in sorted(r["processes"].items(), key=lambda kv: -kv[1]["cores"]):
        print(f"   {group:<22} {u['cores']:5.2f} cores  {u['cpu_s_per_call']:6.3f} CPU-s/call  "
              f"peak RSS {u['rss_peak_mb']:7.0f} MB"
              f"  (first min {u['rss_first_min_mb']:.0f} → last min {u['rss_last_min_mb']:.0f} MB)")
    iso = r["isolated_scoring"]
    print(f"   isolated scoring: {iso['calls_per_s']:.2f} calls/s, {iso['audio_s_per_s']:.0f} audio-s/s "
          f"({iso['calls']} calls); e2e/isolated = {r['e2e_over_isolated']:.2f} (calls), {r['e2e_over_isolated_audio']:.2f} "
          "(audio)\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1", help="arrival rates to run, calls/s, comma-separated")
    parser.add_argument("--burst", type=int, default=0, help="instead: this many already-ended calls at once")
    parser.add_argument("--minutes", type=float, default=5.0, help="measured window per rate")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before the window")
    parser.add_argument("--drain", type=float, default=6.0, help="minutes to wait for the window's last calls")
    parser.add_argument("--reader", choices=("java", "python"), default="java", help="the pipeline's Kafka reader")
    parser.add_argument("--workers", type=int, default=2, help="the scoring service's concurrent scorings")
    parser.add_argument("--isolated-calls", type=int, default=60, help="calls the scoring service is given alone")
    parser.add_argument("--pipeline-arg", action="append", default=[], help="extra run_pipeline.py flag (repeatable)")
    parser.add_argument("--name", help="result name (default rate<λ>-<reader>)")
    parser.add_argument("--seed", type=int, help="the mock's schedule seed (default: a new one per run — a repeated seed "
                        "repeats the inums, which the poller rightly skips as already published)")
    parser.add_argument("--report", action="store_true", help="tables and plots from bench/results/e2e_load/*.json")
    args = parser.parse_args(argv)
    if args.report:
        from bench import load_report

        return load_report.main(RESULTS)
    fill_from_local_stack(os.environ)
    down = [service.name for service in stack_services() if service.pid() is None]
    if down:
        print(f"the local stack is not running ({', '.join(down)} down): `ccas stack up` first", file=sys.stderr)
        return 2
    LOGS.mkdir(parents=True, exist_ok=True)
    lock = (LOGS / "running.lock").open("w")
    try:  # two runs at once share calls.raw: each pipeline would also get the other's calls (and their 404s)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another bench/e2e_load.py run holds {LOGS / 'running.lock'}: one run at a time", file=sys.stderr)
        return 2
    pool = _pool()
    rates = [0.0] if args.burst else [float(r) for r in args.rates.split(",")]
    for rate in rates:
        measure(argparse.Namespace(**{**vars(args), "seed": args.seed or random.randrange(1, 1_000_000)}), rate, pool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
