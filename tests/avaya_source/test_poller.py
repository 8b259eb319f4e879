from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from avaya_source.poller import _moment, _with_contacts, main
from avaya_source.records import Contact, Recording

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def rec(inum: str, offset: int, switch: str, duration: float | None = 10.0) -> Recording:
    return Recording(inum, T0 + timedelta(seconds=offset), duration, switch_call_id=switch)


def test_contact_from_searchlayout60_wins_and_switchcallid_grouping_is_the_fallback() -> None:
    listed = [rec("a2", 30, "S1"), rec("a1", 0, "S1"), rec("b1", 5, "S2", None), rec("c1", 7, "")]
    ended = [r for r in listed if r.ended]
    contacts = [Contact("C9", "S1", ("a1", "a2", "a3"))]
    out = {r.call_id: r for r in _with_contacts(ended, listed, contacts)}
    assert out["a1"].contact_id == "C9" and out["a1"].inums == ("a1", "a2", "a3")
    without = {r.call_id: r for r in _with_contacts(ended, listed, [])}
    assert without["a2"].contact_id is None and without["a2"].inums == ("a1", "a2")  # ordered by start
    assert without["c1"].inums == ("c1",)
    assert "b1" not in without  # in progress: not emitted


def test_moment_accepts_relative_seconds_and_iso() -> None:
    assert abs((_moment("-60") - (datetime.now(UTC) - timedelta(seconds=60))).total_seconds()) < 5
    assert _moment("2026-11-25T10:00:00+07:00") == T0
    assert _moment("2026-11-25T03:00:00") == T0  # naive operator input is UTC


def test_from_without_to_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--once", "--from", "2026-11-25T03:00:00Z"]) == 2
    assert "--from and --to go together" in capsys.readouterr().err
