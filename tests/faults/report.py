"""Fault-suite results as JSON lines, for bench/faults.py: one line per fault test run (CCAS_FAULT_REPORT names the file)."""

from __future__ import annotations

import json
import os
from typing import Any


def record(fault: str, verdict: Any) -> None:
    path = os.environ.get("CCAS_FAULT_REPORT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(verdict.row(fault)) + "\n")
