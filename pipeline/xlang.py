"""The one place that knows how Java transforms (Beam's ReadFromKafka) run on Prism.

The Java half is expanded by the expansion service `ccas stack up` starts (ccas/stack/expansion.py) and runs as a PROCESS
environment: Beam's Java boot program, wrapped by ccas/stack/java_worker.sh. Name Prism explicitly (`--runner=PrismRunner`):
Beam's DirectRunner sends a pipeline holding a cross-language transform to its FnApiRunner, which cannot run it.
"""

from __future__ import annotations

from ccas.settings import setting

# The boot program would otherwise look for the harness, its logging jars and the jamm agent under /opt/apache/beam (the
# Docker image's layout, absent here); with these it takes everything from the jars the expansion service staged.
PRISM_XLANG_EXPERIMENTS: tuple[str, ...] = (
    "use_staged_dataflow_worker_jar",
    "use_custom_logging_libraries",
    "disable_jamm_agent",
)


def expansion_service_address() -> str:
    """host:port of the Java expansion service (CCAS_EXPANSION_SERVICE, else the local stack's)."""
    return setting("CCAS_EXPANSION_SERVICE")


def prism_location() -> str:
    """Path of the Prism binary built at the pinned Beam version (without it Beam tries to download Prism, which fails here)."""
    from ccas.stack.tools import go_binary

    return str(go_binary("prism"))


def prism_xlang_options() -> list[str]:
    """Pipeline flags a job with Java transforms needs on Prism, besides the runner and the job's own flags."""
    return [f"--experiments={experiment}" for experiment in PRISM_XLANG_EXPERIMENTS]


def prism_runner_options() -> list[str]:
    """`--runner=PrismRunner` with the cached Prism binary and the cross-language flags."""
    return ["--runner=PrismRunner", f"--prism_location={prism_location()}", *prism_xlang_options()]
