"""The one place that knows how Java transforms (Beam's ReadFromKafka) run on Prism.

The Java half is expanded by a Java expansion service (CCAS_EXPANSION_SERVICE) and runs as a PROCESS environment described by
that service. Name Prism explicitly (`--runner=PrismRunner`): Beam's DirectRunner sends a pipeline holding a cross-language
transform to its FnApiRunner, which cannot run it.
"""

from __future__ import annotations

# The boot program would otherwise look for the harness, its logging jars and the jamm agent under /opt/apache/beam (the
# Docker image's layout, absent outside it); with these it takes everything from the jars the expansion service staged.
PRISM_XLANG_EXPERIMENTS: tuple[str, ...] = (
    "use_staged_dataflow_worker_jar",
    "use_custom_logging_libraries",
    "disable_jamm_agent",
)


def prism_xlang_options() -> list[str]:
    """Pipeline flags a job with Java transforms needs on Prism, besides the runner and the job's own flags."""
    return [f"--experiments={experiment}" for experiment in PRISM_XLANG_EXPERIMENTS]
