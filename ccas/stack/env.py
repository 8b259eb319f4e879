"""Handing the local stack's settings to a process explicitly: `ccas env`, `ccas --local`, `run_pipeline.py --local`."""

from __future__ import annotations

from collections.abc import MutableMapping

from ccas import settings
from ccas.stack.jobserver import WorkerPool, worker_pool_endpoint


def local_env() -> dict[str, str]:
    """The local stack's CCAS_* values, with the worker pool only while `ccas jobserver up` runs one (else LOOPBACK)."""
    from ccas.stack.flink import flink_master

    env = settings.local_stack_env()
    env["CCAS_FLINK_MASTER"] = flink_master()
    if WorkerPool().pid() is not None:
        env["CCAS_WORKER_POOL"] = worker_pool_endpoint()
    return env


def fill_from_local_stack(environ: MutableMapping[str, str]) -> list[str]:
    """Set every local-stack variable that `environ` lacks (a value already set always wins); returns the names filled."""
    filled = []
    for key, value in local_env().items():
        if not environ.get(key):
            environ[key] = value
            filled.append(key)
    return filled
