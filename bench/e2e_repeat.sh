#!/usr/bin/env bash
# Runs the end-to-end test module N times in a row (default 5) on the running local stack and prints one line per run:
# each run covers the Java reader once and the Python reader twice (parity, kill -9). Beam notes that cross-language
# transforms on Prism are not yet proven "at volume": this is how we look for intermittent failures. A report, not a test.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
for run in $(seq 1 "$runs"); do
  started=$(date +%s)
  output=$(.venv/bin/pytest -p no:cacheprovider -q -W ignore tests/pipeline/test_end_to_end.py 2>&1)
  code=$?
  summary=$(printf '%s\n' "$output" | grep -E "passed|failed|error" | tail -1)
  printf 'run %d: exit %d in %ds: %s\n' "$run" "$code" "$(( $(date +%s) - started ))" "$summary"
  if [[ $code -ne 0 ]]; then
    printf '%s\n' "$output" | grep -E "^(FAILED|ERROR)|^E " | head -10 | sed 's/^/    /'
  fi
done
