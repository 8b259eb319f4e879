"""SDK worker processes in one container each get a /metrics endpoint of their own, inside the span Prometheus scrapes."""

from __future__ import annotations

import multiprocessing
import re
import socket
from pathlib import Path

import requests
import yaml

from pipeline import metrics

SCRAPE_CONFIG = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "prometheus.compose.yml"
COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.flink.yml"


def _worker(host: str, port: int, taken: multiprocessing.Queue, release: multiprocessing.Event) -> None:
    """One SDK worker process: starts its endpoint the way a DoFn setup does (twice: the second call must be a no-op)."""
    first = metrics.ensure_metrics_server(host, port)
    again = metrics.ensure_metrics_server(host, port)
    metrics.CALLS_PROCESSED.labels(stage="download").inc()
    taken.put((first, again))
    release.wait(30)


def _free_run(length: int) -> int:
    """A port whose next `length - 1` ports are free too (so the test does not depend on what else runs here)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + length > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + length):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise AssertionError("no run of free ports found")


def test_two_worker_processes_get_two_ports_and_both_answer() -> None:
    base = _free_run(3)
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as the worker pool starts them
    taken, release = context.Queue(), context.Event()
    workers = [context.Process(target=_worker, args=("127.0.0.1", base, taken, release), daemon=True) for _ in range(2)]
    try:
        for worker in workers:
            worker.start()
        answers = [taken.get(timeout=60) for _ in workers]
        ports = sorted(first for first, _ in answers)
        assert all(first == again for first, again in answers), "a second DoFn setup in the same process keeps its port"
        assert ports == [base, base + 1], f"the two workers took {ports}, expected {base} and {base + 1}"
        for port in ports:
            answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert answer.status_code == 200
            assert 'pipeline_calls_total{stage="download"} 1.0' in answer.text
    finally:
        release.set()
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()


def test_port_zero_is_off_and_a_full_span_is_not_fatal() -> None:
    assert metrics.ensure_metrics_server("127.0.0.1", 0) is None
    base = _free_run(2)
    with socket.socket() as first, socket.socket() as second:
        first.bind(("127.0.0.1", base))
        first.listen()
        second.bind(("127.0.0.1", base + 1))
        second.listen()
        context = multiprocessing.get_context("spawn")
        taken = context.Queue()
        worker = context.Process(target=_span_of_two, args=(base, taken), daemon=True)
        worker.start()
        assert taken.get(timeout=60) is None
        worker.join(10)


def _span_of_two(port: int, taken: multiprocessing.Queue) -> None:
    taken.put(metrics.ensure_metrics_server("127.0.0.1", port, span=2))


def test_compose_scrapes_the_whole_span_the_workers_bind() -> None:
    """The job submitter's metrics port and host, and Prometheus's targets on the worker pool's network, agree."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    submit = services["job-submitter"]
    flags = dict(arg.split("=", 1) for arg in submit["command"] if "=" in arg)
    environment = submit["environment"] if isinstance(submit["environment"], dict) else {}
    first_port = int(flags.get("--metrics_port") or environment["CCAS_PIPELINE_METRICS_PORT"])
    host = flags.get("--metrics_host") or environment.get("CCAS_PIPELINE_METRICS_HOST")
    assert host == "0.0.0.0", "workers must bind all interfaces of their container for Prometheus to reach them"
    assert services["beam-worker-pool"]["network_mode"] == "service:flink-taskmanager"

    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "ccas-pipeline")
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    ports = sorted(int(re.fullmatch(r"flink-taskmanager:(\d+)", target).group(1)) for target in targets)
    assert ports == list(range(first_port, first_port + metrics.PORT_SPAN))
    labels = {group["labels"]["expected"] for group in job["static_configs"]}
    first_group = next(group for group in job["static_configs"] if f"flink-taskmanager:{first_port}" in group["targets"])
    assert first_group["labels"]["expected"] == "while_running", "the first worker's endpoint is watched by the alert rules"
    assert labels <= {"while_running", "optional"}
