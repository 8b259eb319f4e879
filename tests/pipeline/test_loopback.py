"""The LOOPBACK environment's SDK worker pool listens on 127.0.0.1 only once the pipeline installed its replacement."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from apache_beam.runners.worker import worker_pool_main

from ccas.stack import process
from pipeline.loopback import bind_loopback_workers_locally


@pytest.fixture
def beams_own_start() -> Iterator[None]:
    original = worker_pool_main.BeamFnExternalWorkerPoolServicer.__dict__["start"]
    try:
        yield
    finally:
        worker_pool_main.BeamFnExternalWorkerPoolServicer.start = original


def _listeners_on(port: int) -> list[str]:
    return [address for _, address, bound in process.listening_sockets({os.getpid()}) if bound == port]


def test_beams_own_pool_listens_on_every_interface(beams_own_start: None) -> None:
    address, server = worker_pool_main.BeamFnExternalWorkerPoolServicer.start()
    try:
        listeners = _listeners_on(int(address.rsplit(":", 1)[1]))
        assert listeners and not all(process.is_loopback(a) for a in listeners), listeners  # why the replacement exists
    finally:
        server.stop(0)


def test_the_replacement_listens_on_loopback_only(beams_own_start: None) -> None:
    bind_loopback_workers_locally()
    address, server = worker_pool_main.BeamFnExternalWorkerPoolServicer.start(state_cache_size=0)
    try:
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1"
        listeners = _listeners_on(int(port))
        assert listeners and all(process.is_loopback(a) for a in listeners), listeners
    finally:
        server.stop(0)
