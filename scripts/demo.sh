#!/usr/bin/env bash
# `make demo`: the local stack up and ready (schema, topics, bucket), then its status.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CCAS=.venv/bin/ccas
$CCAS stack up
$CCAS db migrate
$CCAS kafka bootstrap
$CCAS s3 bootstrap
$CCAS stack status
echo
echo "The stack keeps running; stop it with: .venv/bin/ccas stack down"
