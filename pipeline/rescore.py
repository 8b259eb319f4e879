"""Re-score stored calls with the scoring service's current model_version: `ccas rescore` and
`run_pipeline.py --mode=rescore`.

The scoring service is asked for its model_version (the target); the scored calls of the filters whose current version
(call.model_version) is not the target are re-scored from their S3 audio, in chunks of `--chunk` calls, each chunk one bounded
Beam pipeline (pipeline/transforms/rescore.py) on Beam's in-process FnApiRunner, paced to `--rate` calls/s. A chunk's results
are written when it ends; a progress line follows each chunk. Resumable: a call re-scored is no longer selected, so a second run
(or one after an interruption) does only what is left. `--follow` re-scores the look-back on each model.version.updated event
(pipeline/rescore_events.py), for a streaming job run with CCAS_RESCORE_ON_EVENTS=false (by default the job does it itself).

Exit codes: 0 done (dead letters included: they are on scoring.results.dlq and counted); 1 the scoring service or PostgreSQL
could not be reached, or a chunk failed (what earlier chunks wrote stays); 2 invalid configuration; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from pipeline.clients import StageClients
from pipeline.options import ConfigError, JobConfig, settings_of, validate_options
from pipeline.settings import PipelineSettings
from pipeline.supervisor import EXIT_CONFIG
from pipeline.transforms.rescore import build_rescore_pipeline

log = logging.getLogger("ccas.rescore")


@dataclass(frozen=True)
class Selection:
    """Which scored calls a re-score considers: started in [since, until), of one agent (None: no bound)."""

    since: datetime | None = None
    until: datetime | None = None
    agent_id: str | None = None

    def describe(self) -> str:
        parts = [f"since {self.since.isoformat()}" if self.since else "", f"until {self.until.isoformat()}" if self.until else "",
                 f"agent {self.agent_id}" if self.agent_id else ""]
        return ", ".join(filter(None, parts)) or "every scored call"


@dataclass
class Progress:
    """What a re-score did so far; `line()` is its progress output."""

    total: int
    target: str
    started: float
    written: int = 0
    dead_lettered: int = 0
    skipped: int = 0

    @property
    def done(self) -> int:
        return self.written + self.dead_lettered + self.skipped

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = (self.written + self.dead_lettered) / elapsed
        left = self.total - self.done
        eta = f", ~{left / rate:.0f} s left" if rate > 0 and left > 0 else ""
        return (f"rescore {self.target}: {self.done}/{self.total} done ({self.written} re-scored, {self.dead_lettered} "
                f"dead-lettered to scoring.results.dlq, {self.skipped} done meanwhile), {rate:.2f} calls/s{eta}")


def parse_moment(text: str, now: datetime) -> datetime:
    """ISO time (naive = UTC) or seconds relative to now (-86400: a day ago)."""
    try:
        return now + timedelta(seconds=float(text))
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[start:start + size]) for start in range(0, len(items), size)]


def _counter(result: beam.runners.runner.PipelineResult, name: str) -> int:
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return int(sum(metric.committed or 0 for metric in found))


def run_chunk(call_ids: Sequence[str], target: str, rate: float, config: JobConfig, clients: StageClients) -> tuple[int, int]:
    """One bounded pipeline over `call_ids`; (results written, dead letters written)."""
    pipeline = beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions([]))
    build_rescore_pipeline(pipeline, call_ids, target, rate, config, clients)
    result = pipeline.run()
    result.wait_until_finish()
    return _counter(result, "results_written"), _counter(result, "dead_letters")


def say_now(line: str) -> None:
    print(line, flush=True)  # progress must show while the run goes on, also when stdout is a file


def rescore(config: JobConfig, selection: Selection, rate: float, chunk_size: int, clients: StageClients | None = None,
            say: Callable[[str], None] = say_now) -> Progress:
    """Re-score the selected calls whose current model_version is not the scoring service's; returns what was done."""
    clients = clients or StageClients(config)
    target = clients.scoring_model_version()
    database = clients.database()
    try:
        candidates = database.rescore_candidates(target, selection.since, selection.until, selection.agent_id)
    finally:
        database.close()
    progress = Progress(total=len(candidates), target=target, started=time.monotonic())
    say(f"rescore: the scoring service scores with {target}; {len(candidates)} scored calls ({selection.describe()}) have "
        f"another version; {rate:g} calls/s, chunks of {chunk_size}")
    for call_ids in chunks(candidates, chunk_size):
        written, dead = run_chunk(call_ids, target, rate, config, clients)
        progress.written += written
        progress.dead_lettered += dead
        progress.skipped += len(call_ids) - written - dead
        say(progress.line(time.monotonic()))
    if not candidates:
        say(f"rescore {target}: nothing to do")
    return progress


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        prog="ccas rescore", description="Re-score stored calls with the scoring service's current model_version (from their "
        "S3 audio, never the recorder). Every pipeline setting (flags such as --scoring_url, or CCAS_* variables) applies.")
    cli.add_argument("--since", help="calls started at or after: ISO time (naive = UTC) or seconds relative to now (-86400)")
    cli.add_argument("--until", help="calls started before: ISO time or seconds relative to now")
    cli.add_argument("--agent", help="only this agent's calls")
    cli.add_argument("--rate", type=float, help="most calls scored per second (default CCAS_RESCORE_RATE)")
    cli.add_argument("--chunk", type=int, help="calls per bounded run (default CCAS_RESCORE_CHUNK)")
    cli.add_argument("--follow", action="store_true", help="run until stopped: re-score the look-back "
                     "(CCAS_RESCORE_LOOKBACK_S) on each model.version.updated event (for a streaming job run with "
                     "CCAS_RESCORE_ON_EVENTS=false, which otherwise does it itself)")
    cli.add_argument("--group", default=None, help="consumer group of --follow (default ccas-pipeline-rescore; it must start "
                     "with ccas-pipeline, the pipeline principal's groups)")
    cli.add_argument("--announce", action="store_true", help="publish the scoring service's model_version on "
                     "model.version.updated (what a deployment does after rolling out a new scorecard) and exit")
    return cli


def resolve(argv: list[str]) -> tuple[argparse.Namespace, PipelineSettings, JobConfig]:
    args, rest = parser().parse_known_args(argv)
    rest = [arg for arg in rest if not arg.startswith("--mode")]
    options = PipelineOptions(rest)
    settings = settings_of(options)
    if args.rate is not None and args.rate <= 0:
        raise ConfigError(f"--rate must be > 0 calls/s, got {args.rate}")
    if args.chunk is not None and args.chunk < 1:
        raise ConfigError(f"--chunk must be >= 1, got {args.chunk}")
    return args, settings, validate_options(options, settings)


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apache_beam", "kafka", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        args, settings, config = resolve(argv)
        now = datetime.now(UTC)
        selection = Selection(since=parse_moment(args.since, now) if args.since else None,
                              until=parse_moment(args.until, now) if args.until else None, agent_id=args.agent or None)
    except (ConfigError, ValueError) as error:
        print(f"ccas rescore: {error}", file=sys.stderr)
        return EXIT_CONFIG
    rate = args.rate or settings.rescore_rate
    chunk_size = args.chunk or settings.rescore_chunk
    from pipeline import rescore_events  # the Kafka side, only when asked for

    try:
        if args.announce:
            say_now(f"rescore: announced {rescore_events.announce(config)} on {rescore_events.TOPIC}")
            return 0
        if args.follow:
            return rescore_events.follow(config, settings.rescore_lookback_s, lambda selection: rescore(
                config, selection, rate, chunk_size), group=args.group or rescore_events.FOLLOW_GROUP)
        rescore(config, selection, rate, chunk_size)
    except KeyboardInterrupt:
        print("rescore: interrupted; what was written stays, run again to finish", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a dependency unreachable at the start, or a chunk failed: the next run resumes
        print(f"ccas rescore: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`ccas rescore`."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
