#!/usr/bin/env bash
# Determinism under load (issue #13): runs the whole release ctest suite N times (default 3)
# while one core is kept 100% busy by a spinning process, and fails on any failed test.
# A timing-dependent test (a timeout counting wall time instead of progress, a sleep that hopes)
# shows up here. Needs a built build/release (scripts/build.sh release).
#   scripts/test-loaded.sh [runs]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-3}
jobs=$(nproc)

# The load: one busy loop pinned to CPU 0 (where taskset exists), stopped by PID on exit.
if command -v taskset >/dev/null 2>&1; then
  taskset -c 0 bash -c 'while :; do :; done' &
else
  bash -c 'while :; do :; done' &
fi
spinner=$!
trap 'kill "$spinner" 2>/dev/null || true' EXIT

failed=0
for i in $(seq 1 "$runs"); do
  start=$SECONDS
  if ctest --test-dir build/release --output-on-failure -j "$jobs" --timeout 300 -LE contract \
      > "build/release/loaded-run-$i.log" 2>&1; then
    result="0 failures"
  else
    result="FAILED: $(grep -c '\*\*\*Failed\|\*\*\*Timeout' "build/release/loaded-run-$i.log" || true) test(s)"
    failed=1
    grep -E '\*\*\*Failed|\*\*\*Timeout' "build/release/loaded-run-$i.log" || true
  fi
  echo "loaded run $i/$runs: $(grep -E 'tests passed|tests failed' "build/release/loaded-run-$i.log" | tail -1) -- $result, $((SECONDS - start)) s"
done
exit "$failed"
