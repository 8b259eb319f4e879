"""Start the streaming pipeline on the runner asked for; SIGINT/SIGTERM cancel the job and exit cleanly.

`--runner=DirectRunner` (the default) runs the job on Prism, Beam's portable local runner: Beam's DirectRunner would hand a
pipeline holding ReadFromKafka to its FnApiRunner, which cannot run it. This is said in one log line, never done silently.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipeline.build import build_pipeline
from pipeline.options import ConfigError, JobConfig, validate_options

log = logging.getLogger("ccas.pipeline")

LOCAL_RUNNERS = {"directrunner", "prismrunner", "direct", "prism"}
STREAM_TIMEOUT_S = 10 * 365 * 24 * 3600


def _runner_flags(argv: list[str], config: JobConfig) -> list[str]:
    """Extra flags for the local runner: Prism's binary (built at the pinned Beam version) and the cross-language experiments."""
    from pipeline import xlang

    options = PipelineOptions(argv)
    runner = (options.view_as(StandardOptions).runner or "DirectRunner").lower()
    from pipeline.runners import FLINK_RUNNERS, flink_runner_flags
    if runner in FLINK_RUNNERS:
        return flink_runner_flags(argv)
    if runner in PORTABLE_RUNNERS:
        return _portable_flags(options, config)
    if runner not in LOCAL_RUNNERS:
        return []
    if runner.startswith("direct"):
        log.info("--runner=DirectRunner: running the streaming job on Prism (Beam's portable local runner); Beam's own "
                 "DirectRunner cannot run the cross-language ReadFromKafka")
    extra = ["--runner=PrismRunner"]
    if "--prism_location" not in " ".join(argv):
        extra.append(f"--prism_location={xlang.prism_location()}")
    if config.kafka_io == "java":
        extra += xlang.prism_xlang_options()
    return extra


# --- PortableRunner: submission through Beam's Job API (`ccas jobserver up` starts a standalone Prism + worker pool) -------
PORTABLE_RUNNERS = {"portablerunner", "portable"}


def _portable_flags(options: PipelineOptions, config: JobConfig) -> list[str]:
    """The local job service and SDK environment when not given, and the cross-language experiments as on Prism."""
    from ccas.stack.jobserver import WorkerPool, job_endpoint, worker_pool_endpoint
    from pipeline import xlang

    portable = options.view_as(PortableOptions)
    extra: list[str] = []
    if not portable.job_endpoint:
        # Without an endpoint Beam would start a job server from a jar or an image, neither of which exists here.
        extra.append(f"--job_endpoint={job_endpoint()}")
    if not portable.environment_type:
        if WorkerPool().pid() is not None:
            extra += ["--environment_type=EXTERNAL", f"--environment_config={worker_pool_endpoint()}"]
            log.info("--runner=PortableRunner: SDK workers from the local worker pool (EXTERNAL, %s)", worker_pool_endpoint())
        else:
            extra.append("--environment_type=LOOPBACK")
            log.info("--runner=PortableRunner: no local worker pool running, SDK worker in this process (LOOPBACK)")
    if config.kafka_io == "java":
        extra += xlang.prism_xlang_options()
    return extra


def build_options(argv: list[str]) -> tuple[PipelineOptions, JobConfig]:
    """Parse and validate; raises ConfigError before anything is submitted."""
    config = validate_options(PipelineOptions(argv))
    options = PipelineOptions([*argv, *_runner_flags(argv, config)])
    options.view_as(StandardOptions).streaming = True
    if not any(arg.startswith(("--job_server_timeout", "--job-server-timeout")) for arg in argv):
        # Beam puts this timeout (default 300 s) on the job's state and message streams too: an unbounded job's client
        # would lose its job after five minutes (seen here: DEADLINE_EXCEEDED, the LOOPBACK worker gone with it).
        options.view_as(PortableOptions).job_server_timeout = STREAM_TIMEOUT_S
    if not options.view_as(PortableOptions).environment_type and \
            options.view_as(StandardOptions).runner.lower().startswith("prism"):
        options.view_as(PortableOptions).environment_type = "LOOPBACK"
    return options, config


def run(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Beam logs every type-hint conversion, every staged jar and the Java consumer's whole config at INFO.
    for noisy in ("kafka", "botocore", "urllib3", "apache_beam.runners.portability", "apache_beam.runners.worker",
                  "apache_beam.typehints", "PrismRunner", "PrismJobServer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        options, config = build_options(argv)
    except ConfigError as error:
        print(f"run_pipeline: {error}", file=sys.stderr)
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
