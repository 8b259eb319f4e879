from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from avaya_source.poller import _with_contacts, main
from avaya_source.records import Contact, Recording
from avaya_source.settings import PollerSettings, parse_moment
from core.config import load
from core.recorder import Credentials

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
    assert abs((parse_moment("-60") - (datetime.now(UTC) - timedelta(seconds=60))).total_seconds()) < 5
    assert parse_moment("2026-11-25T10:00:00+07:00") == T0
    assert parse_moment("2026-11-25T03:00:00") == T0  # naive operator input is UTC


def test_from_without_to_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--once", "--from", "2026-11-25T03:00:00Z"]) == 2
    assert "--from and --to go together" in capsys.readouterr().err


def test_credentials_from_the_settings_or_a_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "avaya-password"
    secret.write_text("from-file-pw\n")
    for name, value in {"CCAS_AVAYA_URL": "http://recorder", "CCAS_KAFKA_BOOTSTRAP": "kafka:9092",
                        "CCAS_DATABASE_URL": "postgresql://ccas@db/ccas", "CCAS_AVAYA_USER": "recorder-user",
                        "CCAS_AVAYA_PASSWORD": "from-env-pw"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CCAS_AVAYA_PASSWORD_FILE", raising=False)
    assert load(PollerSettings).credentials() == Credentials("recorder-user", "from-env-pw")
    monkeypatch.setenv("CCAS_AVAYA_PASSWORD_FILE", str(secret))
    assert load(PollerSettings).credentials() == Credentials("recorder-user", "from-file-pw")
