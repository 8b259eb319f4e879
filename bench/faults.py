"""Run the fault suite (tests/faults/) N times and print one table: fault, runs, calls, lost, duplicates, dead letters, time to
recover (p50/max), supervisor restarts. With --kill-runs, also run the end-to-end kill -9 test that many times in a row and
print how many passed.

    .venv/bin/ccas stack up && .venv/bin/ccas --local db migrate && .venv/bin/ccas --local kafka bootstrap
    .venv/bin/python bench/faults.py --runs 3 [-k postgresql] [--kill-runs 20] [--markdown]

Needs the running local stack (the tests stop and start its services). A report, not a test: a failed run is counted and its
first error lines printed, and the table still covers every run that reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KILL_TEST = "tests/pipeline/test_end_to_end.py::test_kill_9_mid_run_then_restart_loses_nothing_and_duplicates_nothing"
COLUMNS = ("fault", "runs", "calls", "lost", "duplicates", "dead letters", "recover p50 s", "recover max s", "restarts")


def pytest(target: list[str], env: dict[str, str]) -> tuple[int, str]:
    command = [str(REPO / ".venv/bin/pytest"), "-p", "no:cacheprovider", "-q", "-W", "ignore", *target]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


def failures(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR", "E "))]
    return "\n".join("    " + line[:200] for line in lines[:8])


def table(rows: list[dict], markdown: bool) -> str:
    by_fault: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_fault[row["fault"]].append(row)
    lines = []
    for fault, runs in by_fault.items():
        recover = [run["recovered_s"] for run in runs]
        lines.append((fault, len(runs), sum(r["calls"] for r in runs), sum(r["lost"] for r in runs),
                      sum(r["duplicates"] for r in runs), sum(r["dead_letters"] for r in runs),
                      round(statistics.median(recover), 1), round(max(recover), 1), sum(r["restarts"] for r in runs)))
    if markdown:
        out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        out += ["| " + " | ".join(str(value) for value in line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(str(value)) for value in column) for column in zip(COLUMNS, *lines, strict=False)]
    return "\n".join("  ".join(str(value).ljust(width) for value, width in zip(line, widths, strict=True))
                     for line in [COLUMNS, *lines])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="how many times to run the fault suite")
    parser.add_argument("-k", default="", help="pytest -k expression to pick faults")
    parser.add_argument("--kill-runs", type=int, default=0, help="also run the end-to-end kill -9 test this many times")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs/reliability.md)")
    args = parser.parse_args()

    rows: list[dict] = []
    failed_runs = 0
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "faults.jsonl"
        env = {**os.environ, "CCAS_FAULT_REPORT": str(report)}
        for run in range(1, args.runs + 1):
            started = time.monotonic()
            code, output = pytest(["tests/faults", *(["-k", args.k] if args.k else [])], env)
            summary = next((line for line in reversed(output.splitlines())
                            if " in " in line and ("passed" in line or "failed" in line)), "")
            print(f"fault suite run {run}/{args.runs}: exit {code} in {time.monotonic() - started:.0f} s: {summary}",
                  flush=True)
            if code != 0:
                failed_runs += 1
                print(failures(output), flush=True)
        if report.exists():
            rows = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    if rows:
        print(table(rows, args.markdown))
    if args.kill_runs:
        passed = 0
        for run in range(1, args.kill_runs + 1):
            started = time.monotonic()
            code, output = pytest([KILL_TEST], dict(os.environ))
            passed += code == 0
            print(f"kill -9 test run {run}/{args.kill_runs}: {'passed' if code == 0 else 'FAILED'} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
            if code != 0:
                print(failures(output), flush=True)
        print(f"kill -9 test: {passed}/{args.kill_runs} consecutive runs passed")
        failed_runs += args.kill_runs - passed
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
