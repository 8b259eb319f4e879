#!/usr/bin/env bash
# `make demo`: install (cached), then the whole system on the local stack (`ccas demo --help` for options).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ccas demo "$@"
