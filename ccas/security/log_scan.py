"""Logs checked for what must never be in them: a customer's number or a value of the secrets file.

The demo runs it over its own logs at the end (numbers from the mock recorder, secrets from `.stack/secrets.env`), and the
end-to-end test over the logs of its run. A finding names the file, the line and what kind of value leaked — never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ccas.security.argv_watch import MIN_SECRET_LENGTH


@dataclass(frozen=True)
class Exposure:
    file: Path
    line: int
    what: str  # "customer number" or the secret's variable name

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.what}"


def _number_pattern(numbers: Iterable[str]) -> re.Pattern[str] | None:
    # A number counts only as a whole digit run: 0901234567 inside a 15-digit call id is not that customer.
    digits = sorted({n for n in numbers if n}, key=len, reverse=True)
    return re.compile(r"(?<!\d)(?:" + "|".join(map(re.escape, digits)) + r")(?!\d)") if digits else None


def scan(files: Iterable[Path], secrets: dict[str, str], numbers: Iterable[str]) -> list[Exposure]:
    """Every line of `files` holding a customer number of `numbers` or a value of `secrets` (short values are skipped)."""
    watched = {name: value for name, value in secrets.items() if len(value) >= MIN_SECRET_LENGTH}
    pattern = _number_pattern(numbers)
    found = []
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as text:
            for number, line in enumerate(text, 1):
                if pattern is not None and pattern.search(line):
                    found.append(Exposure(path, number, "customer number"))
                found += [Exposure(path, number, name) for name, value in watched.items() if value in line]
    return found


def log_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.log") if path.is_file())
