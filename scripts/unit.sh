#!/usr/bin/env bash
# `make unit`: the quick loop — install (cached), ruff, the import rules and every test that needs no running service and is
# not marked slow (two accuracy/ASR tests that take minutes run in `make test`).
# A convenience beside `make test` (which runs everything against the real local stack); nothing is started here.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh >/dev/null
set +e
.venv/bin/ruff check .
lint_status=$?
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
imports_status=$?
# Two workers: one per core of these machines (pytest-xdist).
.venv/bin/pytest -p no:cacheprovider -q -m "not integration and not slow" -n 2 "$@"
status=$?
set -e
echo "[unit] finished in $(( $(date +%s) - started )) s (ruff exit $lint_status, import rules exit $imports_status, pytest exit $status)"
[[ $lint_status -eq 0 && $imports_status -eq 0 ]] || exit 1
exit $status
