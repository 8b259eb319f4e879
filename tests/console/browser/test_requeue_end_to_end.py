"""Requeue from the console with the real pipeline running: the recorder refuses one call's replay, the pipeline dead-letters
it after its retries, the cause is fixed, an admin presses Requeue on Operations, and the same pipeline scores the call; the
console then shows it SCORED. Mock recorder, scoring service, poller and pipeline as in tests/ccas/ops/test_dlq_requeue.py."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.console.browser.conftest import Site, add_users, running_console
from tests.console.browser.helpers import screenshot, sign_in, wait_for
from tests.pipeline import e2e

pytestmark = pytest.mark.integration
CALLS = 3


@pytest.fixture(scope="module")
def failed_call(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    seed = random.randrange(10_000, 99_999)
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    services = e2e.start_services(seed, CALLS)
    pipeline = None
    try:
        inums = sorted(call["inum"] for call in services.recorder_calls())
        dead = random.Random(seed).choice(inums)
        services.configure_recorder({"replay_failures": {dead: -1}})
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            start = e2e.end_offsets(bootstrap, "calls.raw")
            group = f"ccas-pipeline-console-{uuid.uuid4().hex[:8]}"
            e2e.commit_group(bootstrap, group, "calls.raw", start)
            first = min(datetime.fromisoformat(call["started_at"]) for call in services.recorder_calls())
            e2e.poll_once(services, url, first - timedelta(minutes=1), datetime.now(UTC) - timedelta(seconds=5))
            pipeline = e2e.start_pipeline(services, url, group, "python", f"pipeline-{group}.log")

            def settled() -> bool:
                statuses = dict(e2e.query(url, "SELECT call_id, status FROM call"))
                return statuses.get(dead) == "ERROR" and sum(s == "SCORED" for s in statuses.values()) >= len(inums) - 1

            e2e.wait_until(settled, 300, "the good calls scored and one dead-lettered", [pipeline])
            services.configure_recorder({"replay_failures": {}})  # the cause is fixed
            tag = uuid.uuid4().hex[:6]
            users = add_users(url, tag)
            with running_console(stack_env, url, log_name="console-requeue") as site_url:
                yield {"site": Site(site_url, url, tag, users, "", "", [], {}, ""), "dead": dead, "pipeline": pipeline}
    finally:
        if pipeline is not None:
            pipeline.stop()
        services.stop()


def test_admin_requeues_a_dead_letter_and_the_pipeline_scores_it(browser, failed_call: dict[str, Any]) -> None:
    site, dead = failed_call["site"], failed_call["dead"]
    sign_in(browser, site, "admin", "/operations")
    row = browser.find_element(By.CSS_SELECTOR, f"tr.dead-letter[data-call-id='{dead}']")
    assert row.find_element(By.CSS_SELECTOR, "td.call-status").text == "ERROR"
    row.find_element(By.CSS_SELECTOR, "button.requeue").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "requeue-result"))
    assert f"{dead}:requeued" in browser.find_element(By.ID, "requeue-result").text
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        browser.get(f"{site.url}/operations")
        status = browser.find_element(By.CSS_SELECTOR, f"tr.dead-letter[data-call-id='{dead}'] td.call-status").text
        if status == "SCORED":
            break
        assert failed_call["pipeline"].alive(), failed_call["pipeline"].tail()
        time.sleep(3)
    assert status == "SCORED", f"the requeued call is {status} after 240 s"
    screenshot(browser, "operations_requeued_scored")
    browser.get(f"{site.url}/calls/{dead}")
    assert browser.find_element(By.ID, "call-status").text == "SCORED"
    assert browser.find_element(By.ID, "call-score").text not in ("", "Not scored yet")
