"""`--runner=FlinkRunner`: Beam's portable Flink runner against a Flink 1.20 session cluster (docs/flink.md).

Beam submits through its Flink job server, a Java jar (`beam-runners-flink-1.20-job-server`). It is resolved before anything
starts, in this order: `CCAS_FLINK_JOB_SERVER_JAR`, Beam's own jar cache, Beam's normal download from Maven Central. When none
works, `FlinkJobServerJarMissing` carries one message naming the artifact and the variable, and run_pipeline.py exits 2 with
nothing half-started — instead of Beam failing deep inside `pipeline.run()` with a stack trace.
"""

from __future__ import annotations

import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions, PortableOptions, StandardOptions
from apache_beam.utils.subprocess_server import JavaJarServer
from apache_beam.version import __version__ as BEAM_VERSION

from pipeline.options import ConfigError
from pipeline.settings import PipelineSettings

log = logging.getLogger("ccas.pipeline")

FLINK_RUNNERS = {"flinkrunner", "flink"}
FLINK_VERSION = "1.20"
JOB_SERVER_ARTIFACT = f"beam-runners-flink-{FLINK_VERSION}-job-server"
JAR_ENV = "CCAS_FLINK_JOB_SERVER_JAR"
DEFAULT_CHECKPOINTING_INTERVAL_MS = 30_000
# Beam treats these as "start an embedded Flink"; LOOPBACK is only sound when the TaskManager runs on this machine.
LOCAL_MASTERS = {"[local]", "[auto]", "localhost", "127.0.0.1"}


class FlinkJobServerJarMissing(ConfigError):
    """Beam's Flink job-server jar cannot be found or downloaded; the message says what to provide.

    A ConfigError, so run_pipeline.py reports it like any start-up configuration problem: one message, exit code 2.
    """

    def __init__(self, tried: list[str]) -> None:
        super().__init__(
            f"--runner=FlinkRunner needs Beam's Flink job-server jar {jar_name()} (Maven artifact "
            f"org.apache.beam:{JOB_SERVER_ARTIFACT}:{BEAM_VERSION}) and none is available: {'; '.join(tried)}. "
            f"Set {JAR_ENV}=/path/to/{jar_name()} (from a connected machine or the apache/beam_flink{FLINK_VERSION}_job_server "
            "image), or submit with --runner=PortableRunner --job_endpoint=<Flink job server>. Nothing was started.")


def jar_name() -> str:
    return f"{JOB_SERVER_ARTIFACT}-{BEAM_VERSION}.jar"


def maven_url() -> str:
    return f"{JavaJarServer.MAVEN_CENTRAL_REPOSITORY}/org/apache/beam/{JOB_SERVER_ARTIFACT}/{BEAM_VERSION}/{jar_name()}"


def beam_cached_jar() -> Path:
    # Computed from HOME now, not from Beam's JAR_CACHE constant (fixed when Beam was imported).
    return Path(os.path.expanduser("~/.apache_beam/cache/jars")) / jar_name()


def _downloadable(url: str, timeout_s: float = 10.0) -> str | None:
    """None when url answers a HEAD with 2xx, else why not (the status or the network error)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout_s):
            return None
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"unreachable ({getattr(error, 'reason', error)})"


def resolve_job_server_jar(configured: str = "") -> str | None:
    """The jar path to hand Beam, or None when Beam's own download will work; raises FlinkJobServerJarMissing otherwise."""
    tried: list[str] = []
    if configured:
        if Path(configured).is_file():
            return configured
        tried.append(f"{JAR_ENV}={configured} does not exist")
    else:
        tried.append(f"{JAR_ENV} is not set")
    cached = beam_cached_jar()
    if cached.is_file():
        return str(cached)
    tried.append(f"not in Beam's jar cache ({cached})")
    # Beam tries Maven Central, then Google's mirror of it: the jar is obtainable when either serves it.
    for label, url in (("Maven Central", maven_url()),
                       ("Google's Maven mirror", maven_url().replace(JavaJarServer.MAVEN_CENTRAL_REPOSITORY,
                                                                      JavaJarServer.GOOGLE_MAVEN_MIRROR))):
        problem = _downloadable(url)
        if problem is None:
            return None  # Beam downloads it into its cache when the job starts
        tried.append(f"{label} answers {problem} for {url}")
    raise FlinkJobServerJarMissing(tried)


def checkpoint_timeout_ms(outage_budget_s: float) -> int:
    """The budget plus five minutes for the checkpoint itself, never below Flink's own default of ten minutes."""
    return int(max(600.0, outage_budget_s + 300.0) * 1000)


def given(argv: list[str], flag: str) -> bool:
    """Whether argv sets `flag` (as `--flag value` or `--flag=value`)."""
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def _worker_pool(settings: PipelineSettings) -> str:
    if not settings.worker_pool:
        raise ConfigError("--runner=FlinkRunner runs the Python SDK workers in a worker pool beside each TaskManager: set "
                          "--worker_pool / CCAS_WORKER_POOL (host:port), or --environment_type=LOOPBACK on a local cluster")
    return settings.worker_pool


def flink_runner_flags(argv: list[str], settings: PipelineSettings) -> list[str]:
    """Flags Beam's FlinkRunner needs beyond what argv already says; [] for other runners.

    Raises ConfigError for an unsound combination and FlinkJobServerJarMissing when the job server cannot be obtained,
    both before any job server, worker or job is started.
    """
    options = PipelineOptions(argv)
    if (options.view_as(StandardOptions).runner or "").lower() not in FLINK_RUNNERS:
        return []
    flink, portable = options.view_as(FlinkRunnerOptions), options.view_as(PortableOptions)
    extra: list[str] = []
    if given(argv, "--flink_master"):
        master = flink.flink_master
    elif settings.flink_master:
        master = settings.flink_master
        extra.append(f"--flink_master={master}")
    else:
        raise ConfigError("--runner=FlinkRunner needs --flink_master / CCAS_FLINK_MASTER (host:port of the JobManager)")
    if not given(argv, "--flink_version"):
        extra.append(f"--flink_version={FLINK_VERSION}")
    elif flink.flink_version != FLINK_VERSION:
        raise ConfigError(f"--flink_version={flink.flink_version}: this deployment runs Flink {FLINK_VERSION} (pass "
                          f"--flink_version={FLINK_VERSION})")
    host = master.split("://")[-1].rsplit(":", 1)[0]
    if portable.environment_type:
        if portable.environment_type.upper() == "LOOPBACK" and host not in LOCAL_MASTERS:
            raise ConfigError(f"--environment_type=LOOPBACK needs a Flink cluster on this machine, not {master}: the "
                              "TaskManagers would have to call back into this process. Use the worker pool (EXTERNAL).")
        if portable.environment_type.upper() == "EXTERNAL" and not portable.environment_config:
            extra.append(f"--environment_config={_worker_pool(settings)}")
    else:
        # On a cluster the Python SDK workers are a worker-pool sidecar per TaskManager; LOOPBACK only when asked for.
        extra += ["--environment_type=EXTERNAL", f"--environment_config={_worker_pool(settings)}"]
    if not given(argv, "--checkpointing_interval"):
        # A Beam pipeline option of the Java runner (milliseconds), accepted through the job server's option list.
        extra.append(f"--checkpointing_interval={DEFAULT_CHECKPOINTING_INTERVAL_MS}")
    if not given(argv, "--checkpoint_timeout_millis"):
        # A stage holding calls through an outage keeps its bundle (and so the checkpoint barrier) open for up to the
        # outage budget; Flink's default timeout (10 min) would fail that checkpoint, and with it the job, first.
        extra.append(f"--checkpoint_timeout_millis={checkpoint_timeout_ms(settings.outage_budget_s)}")
    if not given(argv, "--flink_job_server_jar"):
        jar = resolve_job_server_jar(settings.flink_job_server_jar)
        if jar:
            extra.append(f"--flink_job_server_jar={jar}")
    log.info("--runner=FlinkRunner: Flink %s at %s, SDK environment %s", FLINK_VERSION, master,
             portable.environment_type or "EXTERNAL")
    return extra
