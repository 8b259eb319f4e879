"""The log check finds a customer number as a whole digit run and any secret value, and names neither."""

from __future__ import annotations

from pathlib import Path

from ccas.security import log_scan

SECRET = "db-password-0123456789"


def test_numbers_and_secrets_are_found_by_file_and_line(tmp_path: Path) -> None:
    clean = tmp_path / "clean.log"
    clean.write_text("call 100234567890123 scored\ncustomer hk1:0123456789abcdef0123456789abcdef\n")
    leaky = tmp_path / "sub" / "leaky.log"
    leaky.parent.mkdir()
    leaky.write_text(f"ok\nother party 0901234567 rejected\nurl postgresql://ccas:{SECRET}@host/db\n")
    files = log_scan.log_files(tmp_path)
    assert files == [clean, leaky]
    found = log_scan.scan(files, {"CCAS_DB_PASSWORD": SECRET, "CCAS_AVAYA_USER": "ccas"}, {"0901234567"})
    assert [(f.file.name, f.line, f.what) for f in found] == [
        ("leaky.log", 2, "customer number"), ("leaky.log", 3, "CCAS_DB_PASSWORD")]
    assert SECRET not in str(found[1]) and "0901234567" not in str(found[0])


def test_a_number_inside_a_longer_digit_run_is_not_that_customer(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("inum 1000901234567123 and 20901234567\n")
    assert log_scan.scan([log], {}, {"0901234567"}) == []
    assert log_scan.scan([log], {}, set()) == []
