"""The pipeline end to end on the real stack: 40 recorded calls with duplicates, flaky and dead replays, a corrupt recording and
a schema-invalid message; then a kill -9 in the middle of a run; then the same input through the other Kafka reader. The
scoring service transcribes every call (Whisper base), so the transcript criteria are scored from what was said.

Input is published once (real poller → calls.raw, plus the injected messages); each pipeline run reads it with its own consumer
group and writes its own database, so the runs can be compared row by row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

import schemas
from ccas import settings
from ccas.security import log_scan
from core.s3 import s3_client
from tests.pipeline import e2e, scorecard_sql

pytestmark = pytest.mark.integration

CALLS = 40


@pytest.fixture(scope="module")
def scenario(stack_env: dict[str, str]) -> Iterator[dict]:
    """Mock recorder + scoring service, the faults, and the published input (offsets where it starts and ends)."""
    with e2e.publish_scenario(stack_env, CALLS, asr=True) as published:
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


def test_each_scored_call_has_a_transcript_in_s3_a_row_and_phrase_criteria(scenario: dict, java_run: tuple[dict, dict]) -> None:
    result, state = java_run
    url, env = state["url"], scenario["env"]
    scorable = dict(e2e.query(url, "SELECT r.call_id, c.skill FROM scoring_result r JOIN call c USING (call_id)"
                                   " WHERE r.scorable"))
    assert len(scorable) >= 20, "most generated calls are long enough to score"
    transcripts = {row[0]: row for row in e2e.query(
        url, "SELECT call_id, asr_model, language, s3_key, word_count, confidence FROM transcript")}
    assert sorted(transcripts) == sorted(scorable), "one transcript row per scored call"
    s3 = s3_client(env["CCAS_S3_ENDPOINT"], env["CCAS_S3_ACCESS_KEY"], env["CCAS_S3_SECRET_KEY"],
                   ca_file=env["CCAS_S3_CA_FILE"])
    messages = {v["call_id"]: v for v in result["outputs"]["scoring.results"]}
    for call_id, (_, asr_model, language, key, word_count, confidence) in transcripts.items():
        # The language is the one configured for the call's skill (1xx Vietnamese, 2xx English), sent as metadata; the
        # service's defaults hear Vietnamese with viet-asr and English with Whisper base.
        assert language == ("vi" if scorable[call_id].strip().startswith("1") else "en")
        assert asr_model == {"vi": "viet-asr", "en": "whisper-base"}[language]
        assert re.fullmatch(rf"transcripts/\d{{4}}/\d{{2}}/\d{{2}}/{call_id}_{asr_model}\.json", key)
        head = s3.head_object(Bucket=env["CCAS_S3_BUCKET"], Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["ContentType"] == "application/json"
        tags = dict(parse_qsl("&".join(f"{t['Key']}={t['Value']}" for t in s3.get_object_tagging(
            Bucket=env["CCAS_S3_BUCKET"], Key=key)["TagSet"])))
        assert tags["call_id"] == call_id and tags["kind"] == "transcript" and tags["asr_model"] == asr_model
        document = json.loads(s3.get_object(Bucket=env["CCAS_S3_BUCKET"], Key=key)["Body"].read())
        words = [w for segment in document["segments"] for w in segment["words"]]
        assert document["call_id"] == call_id and len(words) == word_count
        assert all(0 <= w["start_s"] <= w["end_s"] <= document["segments"][-1]["end_s"] + 0.01 for w in words)
        assert confidence is None or 0 <= confidence <= 1
        assert messages[call_id]["transcript_s3_key"] == key
    details = [row[0] for row in e2e.query(url, "SELECT details FROM scoring_result WHERE scorable")]
    for answer in details:
        by_id = {c["criterion"]: c for c in answer["breakdown"]}
        assert by_id["greeting"]["applicable"] and by_id["prohibited_words"]["applicable"], "phrase criteria are scored"
        assert answer["transcript"]["s3_key"] and "segments" not in answer["transcript"], "the words live in S3 only"
    for language in ("en", "vi"):
        heard = [t for t in transcripts.values() if t[2] == language]
        assert heard and sum(t[4] for t in heard) >= 3 * len(heard), f"{language} calls are heard, not just present"


def test_every_agent_of_the_run_has_scorecards_equal_to_sql_and_valid_messages(scenario: dict,
                                                                             java_run: tuple[dict, dict]) -> None:
    result, state = java_run
    url = state["url"]
    # run_to_completion waited for this; asserted here so a failure names each difference.
    assert scorecard_sql.mismatches(url, e2e.SCORECARD_TIME_ZONE) == []
    agents = {row[0] for row in e2e.query(url, "SELECT DISTINCT c.agent_id FROM call c JOIN scoring_result USING (call_id)")}
    written = e2e.query(url, "SELECT DISTINCT dimension_key FROM agent_scorecard WHERE dimension = 'agent' AND "
                             "granularity = %s", ("day",))
    assert agents and {row[0] for row in written} == agents
    mine = [value for value in result["scorecards"] if value["dimension"] == "agent" and value["dimension_key"] in agents]
    assert {value["dimension_key"] for value in mine} == agents
    for value in mine:
        schemas.validate("agent.scorecards", value)
    # The highest pane of each window on the topic is the row in the table.
    last: dict[tuple[str, str, str], dict] = {}
    for value in mine:
        key = (value["dimension_key"], value["granularity"], value["window_start"])
        if key not in last or last[key]["pane_index"] < value["pane_index"]:
            last[key] = value
    for (agent, granularity, start), value in last.items():
        stored = e2e.query(url, "SELECT calls, pane_index FROM agent_scorecard WHERE dimension = 'agent' AND dimension_key = %s"
                                " AND granularity = %s AND window_start = %s", (agent, granularity, start))
        assert stored == [(value["calls"], value["pane_index"])], (agent, granularity, start)


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


def test_no_log_holds_a_customer_number_or_a_secret(scenario: dict, java_run: tuple[dict, dict]) -> None:
    """After a whole run (poller, pipeline, scoring service, stack services): the numbers the recorder handed out and the
    values of the secrets file appear in no log line."""
    numbers, secrets = scenario["customer_numbers"], settings.load_secrets()
    assert len(numbers) >= CALLS // 2 and secrets, "the check must have something to look for"
    files = e2e.stack_logs()
    assert any(path.name.startswith("pipeline-") for path in files) and any("postgres" in path.name for path in files)
    found = log_scan.scan(files, secrets, numbers)
    assert not found, "\n".join(map(str, found[:20]))
