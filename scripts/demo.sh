#!/usr/bin/env bash
# `make demo`: install (cached), then the whole system on the local stack (`ccas demo --help` for options).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The demo's processes are watched for the stack's secrets in their arguments; a finding fails the demo.
.venv/bin/ccas argv-watch start >/dev/null
trap '.venv/bin/ccas argv-watch stop >/dev/null 2>&1 || true' EXIT
set +e
.venv/bin/ccas demo "$@"
demo_status=$?
set -e
trap - EXIT
.venv/bin/ccas argv-watch stop || exit 1
exit $demo_status
