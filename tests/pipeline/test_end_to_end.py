"""The pipeline end to end on the real stack: 40 recorded calls with duplicates, flaky and dead replays, a corrupt recording and
a schema-invalid message; then a kill -9 in the middle of a run; then the same input through the other Kafka reader.

Input is published once (real poller → calls.raw, plus the injected messages); each pipeline run reads it with its own consumer
group and writes its own database, so the runs can be compared row by row.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pipeline import e2e

pytestmark = pytest.mark.integration

CALLS = 40


@pytest.fixture(scope="module")
def scenario(stack_env: dict[str, str]) -> Iterator[dict]:
    """Mock recorder + scoring service, the faults, and the published input (offsets where it starts and ends)."""
    with e2e.publish_scenario(stack_env, CALLS) as published:
        yield published


_run_to_completion = e2e.run_to_completion
_rows = e2e.rows
_dead_letters = e2e.dead_letters
_check_final_state = e2e.check_final_state


@pytest.fixture(scope="module")
def java_run(scenario: dict) -> Iterator[tuple[dict, dict]]:
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "java", url)
        yield result, {"rows": _rows(url), "url": url}


def test_java_reader_end_to_end(scenario: dict, java_run: tuple[dict, dict]) -> None:
    result, state = java_run
    _check_final_state(scenario, state["url"], result)
    assert len(_dead_letters(result["outputs"])) == 3, "only the three broken inputs are dead letters"
    assert result["exit_code"] == 0, "SIGTERM cancels the job and exits cleanly"


def test_python_reader_gives_the_same_rows(scenario: dict, java_run: tuple[dict, dict]) -> None:
    java_result, java_state = java_run
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "python", url)
        _check_final_state(scenario, url, result)
        assert _rows(url) == java_state["rows"]
    assert _dead_letters(result["outputs"]) == _dead_letters(java_result["outputs"])


def test_kill_9_mid_run_then_restart_loses_nothing_and_duplicates_nothing(scenario: dict) -> None:
    with e2e.scratch_database(scenario["env"]["CCAS_DATABASE_URL"]) as url:
        result = _run_to_completion(scenario, "python", url, kill_after_scored=12)
        _check_final_state(scenario, url, result, exactly_once_outputs=False)
        counts = e2e.query(url, "SELECT call_id, count(*) FROM scoring_result GROUP BY call_id HAVING count(*) > 1")
        assert counts == []
        # run_to_completion already required the group committed past the last data record of every partition.
