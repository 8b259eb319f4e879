"""Start the streaming pipeline on the runner asked for; SIGINT/SIGTERM cancel the job and exit cleanly.

The console script `ccas-pipeline` and the clone's `run_pipeline.py` both end here; with `--mode=rescore` they run the bounded
re-score instead (pipeline/rescore.py). Settings come from flags and `CCAS_*`
variables only (pipeline/settings.py). `--runner=DirectRunner` (the default) runs the job on Prism, Beam's portable local
runner: Beam's DirectRunner would hand a pipeline holding ReadFromKafka to its FnApiRunner, which cannot run it. This is said
in one log line, never done silently.

Before the job is submitted the process takes the consumer group's lock (pipeline/fencing.py): a second pipeline on the same
group exits 3 naming the holder, or waits with --standby. With --restart=on-failure this process does not run the job
itself: it supervises a child process that does (pipeline/supervisor.py). Exit codes: 0 stopped by a signal or the job
ended; 1 the job failed (or PostgreSQL stayed unreachable at start); 2 invalid configuration; 3 the consumer group is held
by another pipeline; 4 the lock was lost and another pipeline took the group while this one ran.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipeline import xlang
from pipeline.build import build_pipeline
from pipeline.fencing import EXIT_GROUP_HELD, EXIT_GROUP_LOST, DatabaseUnavailable, GroupHeld, GroupLock, LockWatch
from pipeline.loopback import bind_loopback_workers_locally
from pipeline.metrics import PORT_SPAN
from pipeline.options import ConfigError, JobConfig, settings_of, validate_options
from pipeline.runners import FLINK_RUNNERS, flink_runner_flags, given
from pipeline.settings import PipelineSettings
from pipeline.supervisor import EXIT_CONFIG, Backoff, Supervisor

log = logging.getLogger("ccas.pipeline")

LOCAL_RUNNERS = {"directrunner", "prismrunner", "direct", "prism"}
PORTABLE_RUNNERS = {"portablerunner", "portable"}
STREAM_TIMEOUT_S = 10 * 365 * 24 * 3600
SWITCHES = ("--standby",)
BOOLEAN_WORDS = ("true", "false", "1", "0", "yes", "no", "on", "off")


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


class _Job:
    """The submitted job as the signal handlers and the fencing watch see it."""

    def __init__(self) -> None:
        self.result: Any = None
        self.fenced: str | None = None

    def cancel(self) -> None:
        if self.result is None:
            return  # not submitted yet: cancelled as soon as pipeline.run() returns
        try:
            self.result.cancel()
        except Exception as error:  # noqa: BLE001 - the job may already be gone; exiting is what matters
            log.warning("cancel failed: %s", error)

    def fence(self, message: str) -> None:
        self.fenced = message
        log.error("%s", message)
        self.cancel()


def run_job(options: PipelineOptions, config: JobConfig, settings: PipelineSettings) -> int:
    """Take the consumer group's lock, run the job until it ends or a signal cancels it; the process's exit code."""
    stopping = threading.Event()
    job = _Job()

    def stop(signum: int, _frame: Any) -> None:
        if stopping.is_set():
            return
        stopping.set()
        log.info("signal %s: cancelling the job", signal.Signals(signum).name)
        job.cancel()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    lock = GroupLock(config.database_url, config.consumer_group)
    try:
        try:
            if not lock.acquire(standby=settings.pipeline_standby, connect_timeout_s=settings.fencing_connect_timeout_s,
                                check_interval_s=settings.fencing_check_interval_s, stopping=stopping):
                log.info("stopped before the job started")
                return 0
        except GroupHeld as error:
            print(f"ccas-pipeline: {error}", file=sys.stderr)
            return EXIT_GROUP_HELD
        except DatabaseUnavailable as error:
            print(f"ccas-pipeline: {error}", file=sys.stderr)
            return 1
        log.info("starting CCAS pipeline: %r, runner %s", config, options.view_as(StandardOptions).runner)
        bind_loopback_workers_locally()  # Beam would serve the LOOPBACK SDK workers on every interface
        pipeline = beam.Pipeline(options=options)
        build_pipeline(pipeline, config)
        job.result = pipeline.run()
        if stopping.is_set():
            job.cancel()
        watch = LockWatch(lock, settings.fencing_check_interval_s, job.fence)
        watch.start()
        try:
            job.result.wait_until_finish()
        except Exception as error:  # noqa: BLE001
            if not stopping.is_set() and job.fenced is None:
                log.error("pipeline failed: %s", error)
                return 1
        finally:
            watch.stop()
        if job.fenced is not None:
            print(f"ccas-pipeline: {job.fenced}", file=sys.stderr)
            return EXIT_GROUP_LOST
        state = str(job.result.state)
        log.info("pipeline ended: %s", state)
        return 0 if stopping.is_set() or state in ("DONE", "CANCELLED") else 1
    finally:
        if job.result is None:
            lock.close()
        # Once a job was submitted the lock stays until the process exits: worker threads of a cancelled job may still
        # be finishing, and no other pipeline may start on the group before they are gone.


def with_switch_values(argv: list[str]) -> list[str]:
    """`--standby` given as a bare switch becomes `--standby=true` (its settings field is a boolean flag taking a value)."""
    out: list[str] = []
    for index, arg in enumerate(argv):
        following = argv[index + 1].lower() if index + 1 < len(argv) else ""
        if arg in SWITCHES and following not in BOOLEAN_WORDS:
            arg += "=true"
        out.append(arg)
    return out


def child_command(argv: list[str], standby: bool) -> list[str]:
    """The supervised child: this module with the same flags, unsupervised itself (flags given later win)."""
    return [sys.executable, "-m", "pipeline.main", *argv, "--restart=no", *(["--standby=true"] if standby else [])]


def supervise(argv: list[str], settings: PipelineSettings) -> int:
    validate_options(PipelineOptions(argv), settings)  # configuration problems stop the supervisor, not each child
    runner = (PipelineOptions(argv).view_as(StandardOptions).runner or "DirectRunner").lower()
    if runner not in LOCAL_RUNNERS:
        # A job on a job service or cluster outlives its client: a restarted client would submit a second job.
        raise ConfigError(f"--restart=on-failure supervises a job that runs inside its process (DirectRunner/PrismRunner), "
                          f"not --runner={runner}: there the cluster restarts the job (docs/operations.md)")
    port, workers = settings.supervisor_metrics_port, settings.pipeline_metrics_port
    if port and workers and workers <= port < workers + PORT_SPAN:
        raise ConfigError(f"--supervisor_metrics_port {port} lies in the workers' metrics ports {workers}-"
                          f"{workers + PORT_SPAN - 1} (--metrics_port): choose another")
    package_root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))
    return Supervisor(
        command_for=lambda standby: child_command(argv, standby),
        backoff=Backoff(settings.pipeline_restart_backoff_s, settings.pipeline_restart_backoff_max_s,
                        settings.pipeline_restart_reset_s),
        standby=settings.pipeline_standby, metrics_host=settings.pipeline_metrics_host, metrics_port=port,
        env={"PYTHONPATH": python_path},
    ).run()


def without_rescore_mode(argv: list[str]) -> list[str] | None:
    """argv less `--mode=rescore` (or `--mode rescore`) when it asks for the re-score, else None: the streaming job."""
    for index, arg in enumerate(argv):
        if arg == "--mode=rescore":
            return argv[:index] + argv[index + 1:]
        if arg == "--mode" and argv[index + 1:index + 2] == ["rescore"]:
            return argv[:index] + argv[index + 2:]
    return None


def run(argv: list[str]) -> int:
    rescore_argv = without_rescore_mode(argv)
    if rescore_argv is not None:
        from pipeline import rescore  # the bounded re-score job: docs/analytics.md, Re-scoring

        return rescore.run(rescore_argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    argv = with_switch_values(argv)
    try:
        settings = settings_of(PipelineOptions(argv))
        if settings.pipeline_restart == "on-failure":
            return supervise(argv, settings)
        options, config = build_options(argv)
    except ConfigError as error:
        print(f"ccas-pipeline: {error}", file=sys.stderr)
        return EXIT_CONFIG
    return run_job(options, config, settings)


def main(argv: list[str] | None = None) -> int:
    """Console script `ccas-pipeline`."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
