"""Start the streaming pipeline on the runner asked for; SIGINT/SIGTERM cancel the job and exit cleanly.

The console script `ccas-pipeline` and the clone's `run_pipeline.py` both end here. Settings come from flags and `CCAS_*`
variables only (pipeline/settings.py). `--runner=DirectRunner` (the default) runs the job on Prism, Beam's portable local
runner: Beam's DirectRunner would hand a pipeline holding ReadFromKafka to its FnApiRunner, which cannot run it. This is said
in one log line, never done silently.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipeline import xlang
from pipeline.build import build_pipeline
from pipeline.options import ConfigError, JobConfig, settings_of, validate_options
from pipeline.runners import FLINK_RUNNERS, flink_runner_flags, given
from pipeline.settings import PipelineSettings

log = logging.getLogger("ccas.pipeline")

LOCAL_RUNNERS = {"directrunner", "prismrunner", "direct", "prism"}
PORTABLE_RUNNERS = {"portablerunner", "portable"}
STREAM_TIMEOUT_S = 10 * 365 * 24 * 3600


def runner_flags(argv: list[str], settings: PipelineSettings) -> list[str]:
    """Flags the chosen runner needs beyond argv, from the settings: Prism's binary, the job endpoint, the SDK environment."""
    options = PipelineOptions(argv)
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").lower()
    if runner in FLINK_RUNNERS:
        return flink_runner_flags(argv, settings)
    if runner in PORTABLE_RUNNERS:
        return portable_flags(argv, settings)
    if runner not in LOCAL_RUNNERS:
        return []
    if runner.startswith("direct"):
        log.info("--runner=DirectRunner: running the streaming job on Prism (Beam's portable local runner); Beam's own "
                 "DirectRunner cannot run the cross-language ReadFromKafka")
    extra = ["--runner=PrismRunner"]
    if settings.prism_location and not given(argv, "--prism_location"):
        extra.append(f"--prism_location={settings.prism_location}")
    if settings.kafka_io == "java":
        extra += xlang.prism_xlang_options()
    return extra


def portable_flags(argv: list[str], settings: PipelineSettings) -> list[str]:
    """Job endpoint and SDK environment from the settings when argv does not give them; the cross-language experiments."""
    extra: list[str] = []
    if not given(argv, "--job_endpoint"):
        if not settings.job_endpoint:
            # Without an endpoint Beam would start a job server from a jar or a container image.
            raise ConfigError("--runner=PortableRunner needs --job_endpoint / CCAS_JOB_ENDPOINT (host:port of a Beam Job API)")
        extra.append(f"--job_endpoint={settings.job_endpoint}")
    if not given(argv, "--environment_type"):
        if settings.worker_pool:
            extra += ["--environment_type=EXTERNAL", f"--environment_config={settings.worker_pool}"]
            log.info("--runner=PortableRunner: SDK workers from the worker pool (EXTERNAL, %s)", settings.worker_pool)
        else:
            extra.append("--environment_type=LOOPBACK")
            log.info("--runner=PortableRunner: no worker pool configured (CCAS_WORKER_POOL), SDK worker in this process "
                     "(LOOPBACK)")
    if settings.kafka_io == "java":
        extra += xlang.prism_xlang_options()
    return extra


def build_options(argv: list[str]) -> tuple[PipelineOptions, JobConfig]:
    """Parse and validate; raises ConfigError before anything is submitted."""
    given_options = PipelineOptions(argv)
    settings = settings_of(given_options)
    config = validate_options(given_options, settings)
    options = PipelineOptions([*argv, *runner_flags(argv, settings)])
    options.view_as(StandardOptions).streaming = True
    if not any(arg.startswith(("--job_server_timeout", "--job-server-timeout")) for arg in argv):
        # Beam puts this timeout (default 300 s) on the job's state and message streams too: an unbounded job's client
        # would lose its job after five minutes (seen here: DEADLINE_EXCEEDED, the LOOPBACK worker gone with it).
        options.view_as(PortableOptions).job_server_timeout = STREAM_TIMEOUT_S
    if not options.view_as(PortableOptions).environment_type and \
            options.view_as(StandardOptions).runner.lower().startswith("prism"):
        options.view_as(PortableOptions).environment_type = "LOOPBACK"
    return options, config


def _quiet_libraries() -> None:
    # Beam logs every type-hint conversion, every staged jar and the Java consumer's whole config at INFO.
    for noisy in ("kafka", "botocore", "urllib3", "apache_beam.runners.portability", "apache_beam.runners.worker",
                  "apache_beam.typehints", "PrismRunner", "PrismJobServer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    try:
        options, config = build_options(argv)
    except ConfigError as error:
        print(f"ccas-pipeline: {error}", file=sys.stderr)
        return 2
    log.info("starting CCAS pipeline: %r, runner %s", config, options.view_as(StandardOptions).runner)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    result = pipeline.run()
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("signal %s: cancelling the job", signal.Signals(signum).name)
        try:
            result.cancel()
        except Exception as error:  # noqa: BLE001 - the job may already be gone; exiting is what matters
            log.warning("cancel failed: %s", error)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        result.wait_until_finish()
    except Exception as error:  # noqa: BLE001
        if not stopping.is_set():
            log.error("pipeline failed: %s", error)
            return 1
    state = str(result.state)
    log.info("pipeline ended: %s", state)
    return 0 if stopping.is_set() or state in ("DONE", "CANCELLED") else 1


def main(argv: list[str] | None = None) -> int:
    """Console script `ccas-pipeline`."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
