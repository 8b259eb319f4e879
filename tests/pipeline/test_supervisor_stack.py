"""`run_pipeline.py --restart=on-failure` on the stack: the job's child process is killed with SIGKILL, the supervisor stops
everything the child left (Prism, the Java harness), starts it again, counts the restart, and the new child runs the job."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator

import pytest
import requests

from ccas.apps import free_port
from pipeline.metrics import PORT_SPAN
from pipeline.supervisor import ProcessTree
from tests.pipeline import e2e, supervision

pytestmark = pytest.mark.integration


@pytest.fixture
def database(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        yield url


def _ports() -> tuple[int, int]:
    workers = free_port()
    supervisor = free_port()
    while workers <= supervisor < workers + PORT_SPAN:
        supervisor = free_port()
    return workers, supervisor


def _tree(pid: int) -> dict[int, int]:
    tree = ProcessTree(pid)
    tree.scan()
    return dict(tree.known)


def test_a_child_killed_with_sigkill_is_cleaned_up_restarted_and_counted(stack_env: dict[str, str], database: str) -> None:
    group = f"ccas-pipeline-supervised-{uuid.uuid4().hex[:8]}"
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    e2e.commit_group(bootstrap, group, "calls.raw", e2e.end_offsets(bootstrap, "calls.raw"))
    services = e2e.Services(stack_env["CCAS_AVAYA_URL"], stack_env["CCAS_SCORING_URL"])
    workers_port, supervisor_port = _ports()
    app = e2e.start_pipeline(services, database, group, "java", f"supervisor-{group}.log", extra=[
        "--restart=on-failure", f"--metrics_port={workers_port}", f"--supervisor_metrics_port={supervisor_port}",
        "--restart_backoff_s=1"])
    trees: list[dict[int, int]] = []
    try:
        first = e2e.wait_until(lambda: supervision.child_pids(app.log_file)[:1], 120, "the first child", [app])[0]
        supervision.wait_for_holder(database, group, first, [app])
        supervision.wait_committed_past(bootstrap, group, supervision.publish_bad_message(bootstrap), [app])
        trees.append(_tree(first))
        prism = [pid for pid in trees[0] if "prism" in supervision.cmdline(pid).lower()]
        assert prism, f"no Prism process in the child's tree {trees[0]}"
        assert len(trees[0]) > 2, "the running job has Prism and the Java harness beside the child"

        os.kill(first, signal.SIGKILL)
        second = e2e.wait_until(lambda: supervision.child_pids(app.log_file)[1:2], 120, "the restarted child", [app])[0]
        log = app.log_file.read_text(errors="replace")
        assert f"restart 1: child {first} ended (killed by signal SIGKILL)" in log
        metrics = requests.get(f"http://127.0.0.1:{supervisor_port}/metrics", timeout=10).text
        assert "pipeline_restarts_total 1.0" in metrics.splitlines()
        # The supervisor stops the old tree before it starts the new child.
        assert supervision.still_alive({pid: trees[0][pid] for pid in prism}) == [], "Prism of the killed child survived"
        assert supervision.still_alive(trees[0]) == [], "processes of the killed child survived"

        supervision.wait_for_holder(database, group, second, [app])
        supervision.wait_committed_past(bootstrap, group, supervision.publish_bad_message(bootstrap), [app])
        trees.append(_tree(second))
        assert app.stop(180) == 0, "SIGTERM: forwarded to the child, no restart, exit 0"
        assert "supervisor: restart 2" not in app.log_file.read_text(errors="replace")
        assert supervision.still_alive(trees[1]) == [], "processes of the stopped child survived"
    finally:
        app.stop()
        for tree in trees:  # never leave a job running behind a failed assertion
            for pid in supervision.still_alive(tree):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
