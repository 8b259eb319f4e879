#!/usr/bin/env bash
# `make test`: install (cached), start the real local stack, prepare it (schema, topics, bucket), lint, run every test.
# The stack is stopped at the end when this script started it, or always under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
bash scripts/setup.sh
CCAS=.venv/bin/ccas

was_running=true
$CCAS stack status >/dev/null 2>&1 || was_running=false
stop_stack() {
  $CCAS argv-watch stop >/dev/null 2>&1 || true
  if [[ "${CI:-}" == "true" || "$was_running" == "false" ]]; then
    $CCAS stack down || true
  fi
}
trap stop_stack EXIT

# Every process's arguments are watched for the stack's secrets from before `stack up` to the last test.
$CCAS argv-watch start
$CCAS stack up
$CCAS --local db migrate
$CCAS --local kafka bootstrap
$CCAS --local s3 bootstrap
set +e
echo "[test] lint: ruff"
.venv/bin/ruff check .
lint_status=$?
echo "[test] import rules: lint-imports (.importlinter)"
.venv/bin/lint-imports --no-cache
imports_status=$?
# Tests that need no service share the two cores; the integration tests (they share the stack, and the fault suite stops
# its services) run one at a time. Exit code 5 = nothing selected on that side (e.g. ARGS naming one file): not a failure.
echo "[test] pytest: tests that need no service (two workers)"
.venv/bin/pytest -p no:cacheprovider -ra -n 2 -m "not integration" "$@"
unit_status=$?
[[ $unit_status -eq 5 ]] && unit_status=0
echo "[test] pytest: integration tests on the stack"
.venv/bin/pytest -p no:cacheprovider -ra --durations=25 -m "integration" "$@"
status=$?
[[ $status -eq 5 ]] && status=0
$CCAS argv-watch stop
argv_status=$?
set -e
echo "[test] finished in $(( $(date +%s) - started )) s (ruff exit $lint_status, import rules exit $imports_status," \
  "pytest exit $unit_status without services, $status integration, argv-watch exit $argv_status)"
[[ $lint_status -eq 0 && $imports_status -eq 0 && $unit_status -eq 0 && $argv_status -eq 0 ]] || exit 1
exit $status
