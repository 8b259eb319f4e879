"""The QA console in headless Chromium against the real stack (PostgreSQL, S3 over HTTPS with SSE, Kafka), seeded by
conftest.py: sign-in, filters, call detail with playback and seeking, the agent page, Operations with requeue, access rules,
CSRF, and axe-core on the four pages. Each test leaves a screenshot in .artefacts/console/."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from core.kafka import producer
from tests.console.browser.conftest import AGENT_DAYS, ZONE, Site
from tests.console.browser.helpers import axe_violations, csrf_token, http_session, screenshot, sign_in, wait_for
from tests.pipeline import e2e

pytestmark = pytest.mark.integration


def _row_ids(driver) -> list[str]:
    return [row.get_attribute("data-call-id") for row in driver.find_elements(By.CSS_SELECTOR, "tr.call-row")]


def test_sign_in_then_filter_calls_by_agent_and_score_range(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "viewer")
    assert browser.find_element(By.CSS_SELECTOR, ".who strong").text == console_site.users["viewer"]
    ours = {call.call_id: console_site.latest_scores[call.call_id] for call in console_site.calls}
    low, high = sorted(ours.values())[0], sorted(ours.values())[-2]  # every score but the highest, when they differ
    expected = sorted(call_id for call_id, score in ours.items() if low <= score <= high)
    Select(browser.find_element(By.ID, "f-agent")).select_by_value(console_site.agent)
    browser.find_element(By.ID, "f-min").send_keys(str(low))
    browser.find_element(By.ID, "f-max").send_keys(str(high))
    browser.find_element(By.ID, "apply-filters").click()
    wait_for(browser, lambda d: "score_max" in d.current_url)
    assert sorted(_row_ids(browser)) == expected
    assert browser.find_element(By.CSS_SELECTOR, "#calls-total strong").text == str(len(expected))
    scores = [float(row.get_attribute("data-score")) for row in browser.find_elements(By.CSS_SELECTOR, "tr.call-row")]
    assert all(low <= score <= high for score in scores)
    screenshot(browser, "calls_filtered")


def test_call_detail_plays_audio_and_an_evidence_marker_seeks_it(browser, console_site: Site) -> None:
    call = console_site.calls[1]
    sign_in(browser, console_site, "viewer", f"/calls/{call.call_id}")
    assert browser.find_element(By.ID, "call-score").text == f"{console_site.latest_scores[call.call_id]:.2f}"
    failed = [row.get_attribute("data-criterion") for row in browser.find_elements(By.CSS_SELECTOR, "tr.criterion.failed")]
    assert failed == [row["criterion"] for row in call.details["breakdown"] if row["passed"] is False]
    wait_for(browser, lambda d: d.find_element(By.ID, "waveform").get_attribute("data-loaded") == "2")  # stereo: 2 lanes
    browser.execute_script("document.getElementById('player').play()")
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('player').currentTime") > 1.0, 20)
    markers = browser.find_elements(By.CSS_SELECTOR, ".evidence-marker")
    assert markers, "no evidence marker on the waveform"
    target = max(markers, key=lambda m: float(m.get_attribute("data-start")))  # the latest: far from where playback is
    start = float(target.get_attribute("data-start"))
    assert start > 3
    browser.execute_script("document.getElementById('player').pause()")
    target.click()
    wait_for(browser, lambda d: abs(d.execute_script("return document.getElementById('player').currentTime") - start) < 1.0)
    word = browser.find_elements(By.CSS_SELECTOR, "#transcript button.word")[5]
    word.click()
    word_start = float(word.get_attribute("data-start"))
    wait_for(browser, lambda d: abs(d.execute_script("return document.getElementById('player').currentTime") - word_start)
             < 1.0)
    versions = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#versions thead th")][1:]
    assert len(versions) == 1
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "call_detail")
    actor = f"console:{console_site.users['viewer']}"
    audited = dict(e2e.query(console_site.database_url, "SELECT action, count(*) FROM audit_log WHERE actor = %s"
                             " AND object_id = %s GROUP BY action", (actor, call.call_id)))
    assert audited.get("view_breakdown", 0) >= 1 and audited.get("play_recording", 0) >= 1


def test_rescored_call_shows_both_versions_side_by_side(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "qa_lead",
            f"/calls/{console_site.rescored}")
    versions = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#versions thead th")][1:]
    assert versions == ["sc9.9.9-test", console_site.calls[0].details["model_version"]]
    assert browser.find_element(By.ID, "model-version").text == "sc9.9.9-test"


def test_agent_page_has_one_trend_point_per_day_and_the_team_ranks_fairly(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "viewer", f"/agents/{console_site.agent}?days=30&by=day")
    points = browser.find_elements(By.CSS_SELECTOR, "#trend-chart circle.trend-point")
    assert len(points) == len(AGENT_DAYS)
    assert browser.find_element(By.ID, "agent-n").text == str(len(AGENT_DAYS))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#worst-calls tbody tr")) == len(AGENT_DAYS)
    screenshot(browser, "agent_page")
    browser.get(f"{console_site.url}/agents/{console_site.agent}?days=30&by=week")
    zone = ZoneInfo(ZONE)
    weeks = {(call.started_at.astimezone(zone).date() - timedelta(days=call.started_at.astimezone(zone).weekday()))
             for call in console_site.calls}  # PostgreSQL's weeks start on Monday
    weekly = browser.find_elements(By.CSS_SELECTOR, "#trend-chart circle.trend-point")
    assert sorted(point.get_attribute("data-period") for point in weekly) == sorted(str(week) for week in weeks)
    browser.get(f"{console_site.url}/agents?days=30")
    ranked = [row.get_attribute("data-agent") for row in browser.find_elements(By.CSS_SELECTOR, "tr.ranked")]
    assert console_site.other_agent in ranked  # 12 calls: ranked
    assert console_site.agent not in ranked  # 4 calls, under the 5 a fair ranking needs: listed apart with its n
    assert f"n = {len(AGENT_DAYS)}" in browser.find_element(By.ID, "unranked").text


def test_admin_requeue_is_recorded_and_the_row_shows_the_calls_state(browser, console_site: Site,
                                                                       stack_env: dict[str, str]) -> None:
    from tests.ccas.ops.test_dlq_listing import _raw_value, _score

    call_id = f"r{console_site.tag}{uuid.uuid4().hex[:4]}"
    letter = {"call_id": call_id, "stage": "download", "source_topic": "calls.raw", "source_partition": 0, "source_offset": 0,
              "error_type": "ConsoleTest", "error": "synthetic download failure", "stack": "", "retries": 5,
              "failed_at": datetime.now(UTC).isoformat(), "payload": _raw_value(call_id)}
    send = producer(stack_env["CCAS_KAFKA_BOOTSTRAP"])
    send.send("audio.ready.dlq", key=call_id.encode(), value=json.dumps(letter).encode()).get(timeout=30)
    send.close()
    sign_in(browser, console_site, "admin", "/operations")
    row = _dead_letter_row(browser, console_site, call_id)
    row.find_element(By.CSS_SELECTOR, "button.requeue").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "requeue-result"))
    assert f"{call_id}:requeued" in browser.find_element(By.ID, "requeue-result").text
    requeued = e2e.query(console_site.database_url, "SELECT requested_by, target_topic FROM dlq_requeue WHERE call_id = %s",
                         (call_id,))
    assert requeued == [(f"console:{console_site.users['admin']}", "calls.raw")]
    # What a pipeline run of the requeued message writes, by the pipeline's own writer (test_requeue_end_to_end.py runs
    # the pipeline itself).
    from pipeline.io.database import Database

    _score(Database(console_site.database_url), call_id)
    browser.get(f"{console_site.url}/operations")
    row = _dead_letter_row(browser, console_site, call_id)
    assert row.find_element(By.CSS_SELECTOR, "td.call-status").text == "SCORED"
    screenshot(browser, "operations")


def _dead_letter_row(browser, site: Site, call_id: str, within_s: float = 20.0):
    """The row of `call_id` on Operations, reloading while the page's short cache of Kafka records (5 s) predates it."""
    deadline = time.monotonic() + within_s
    while True:
        rows = browser.find_elements(By.CSS_SELECTOR, f"tr.dead-letter[data-call-id='{call_id}']")
        if rows or time.monotonic() > deadline:
            assert rows, f"{call_id} not listed on Operations within {within_s:.0f} s"
            return rows[0]
        time.sleep(1)
        browser.get(f"{site.url}/operations")


def test_a_viewer_gets_403_on_operations(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "viewer", "/operations")
    assert browser.find_element(By.TAG_NAME, "h1").text == "403"
    assert not browser.find_elements(By.CSS_SELECTOR, "header nav a[href='/operations']")
    assert http_session(console_site, "viewer").get(f"{console_site.url}/operations", timeout=10).status_code == 403


def test_signed_out_client_gets_no_audio_and_no_breakdown(console_site: Site) -> None:
    session = http_session(console_site, None)
    call_id = console_site.calls[0].call_id
    audio = session.get(f"{console_site.url}/calls/{call_id}/audio", headers={"Range": "bytes=0-"}, timeout=10)
    assert audio.status_code == 401 and b"RIFF" not in audio.content
    page = session.get(f"{console_site.url}/calls/{call_id}", timeout=10, allow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")
    assert session.get(f"{console_site.url}/calls/{call_id}/waveform", timeout=10).status_code == 401


def test_audio_is_streamed_with_range_support(console_site: Site) -> None:
    session = http_session(console_site, "viewer")
    call = console_site.calls[0]
    part = session.get(f"{console_site.url}/calls/{call.call_id}/audio", headers={"Range": "bytes=100-1123"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1123/{len(call.wav)}"
    assert part.content == call.wav[100:1124]
    whole = session.get(f"{console_site.url}/calls/{call.call_id}/audio", timeout=10)
    assert whole.status_code == 200 and whole.content == call.wav and whole.headers["accept-ranges"] == "bytes"
    beyond = session.get(f"{console_site.url}/calls/{call.call_id}/audio", headers={"Range": f"bytes={len(call.wav)}-"},
                         timeout=10)
    assert beyond.status_code == 416


def test_a_post_without_the_csrf_token_is_refused(console_site: Site) -> None:
    session = http_session(console_site, "admin")
    refused = session.post(f"{console_site.url}/operations/requeue", data={"call_id": "nothing"}, timeout=10,
                           allow_redirects=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = session.post(f"{console_site.url}/operations/requeue", data={"call_id": "nothing", "csrf_token": "forged"},
                         timeout=10, allow_redirects=False)
    assert wrong.status_code == 403
    signed_out = http_session(console_site, None)
    assert signed_out.post(f"{console_site.url}/signin", data={"name": "x", "password": "y"}, timeout=10).status_code == 403


def test_language_switch_shows_vietnamese(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "viewer", "/calls")
    Select(browser.find_element(By.ID, "lang-switch")).select_by_value("vi")
    browser.find_element(By.CSS_SELECTOR, "form[action='/language'] button").click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "vi")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Cuộc gọi"
    screenshot(browser, "calls_vietnamese")


def test_no_critical_accessibility_violations_on_the_four_pages(browser, console_site: Site) -> None:
    sign_in(browser, console_site, "admin", "/calls")
    found = {}
    for page in ("/calls", f"/calls/{console_site.calls[1].call_id}", f"/agents/{console_site.agent}", "/operations"):
        browser.get(f"{console_site.url}{page}")
        time.sleep(0.5)  # the waveform is drawn after load
        found[page] = [(v["id"], v["impact"], len(v.get("nodes", []))) for v in axe_violations(browser)]
    print("axe-core violations per page:", found)
    critical = {page: [v for v in items if v[1] == "critical"] for page, items in found.items()}
    assert critical == {page: [] for page in found}


def test_sign_in_form_refuses_a_wrong_password(console_site: Site) -> None:
    session = http_session(console_site, None)
    form = session.get(f"{console_site.url}/signin", timeout=10)
    answer = session.post(f"{console_site.url}/signin", data={"name": console_site.users["admin"], "password": "wrong-one",
                                                              "csrf_token": csrf_token(form.text)}, timeout=20,
                          allow_redirects=False)
    assert answer.status_code == 401 and "ccas_session" not in answer.cookies


def test_date_range_filter_uses_the_consoles_time_zone(console_site: Site) -> None:
    import re

    zone = ZoneInfo(ZONE)
    session = http_session(console_site, "viewer")
    since = (datetime.now(zone) - timedelta(days=1)).date()
    page = session.get(f"{console_site.url}/calls", params={"agent": console_site.agent, "date_from": str(since)}, timeout=20)
    listed = sorted(re.findall(r'class="call-row" data-call-id="([^"]+)"', page.text))
    expected = sorted(call.call_id for call in console_site.calls if call.started_at.astimezone(zone).date() >= since)
    assert listed == expected and len(expected) == sum(days <= 1 for days in AGENT_DAYS)
