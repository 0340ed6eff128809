#!/usr/bin/env bash
# clang-tidy (.clang-tidy) over core/ and config/ — the pure layers, whose checks all pass today —
# with the Release build's compile_commands.json. Every finding is an error.
#   scripts/tidy.sh [files…]   (default: every core/ and config/ .cpp)
# proxy/ and tests/ are not run: Asio/Beast templates make clang-tidy slow there and its
# bugprone/performance checks report mostly inside Boost's headers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
db=build/release
if [ ! -f "$db/compile_commands.json" ]; then
  echo "tidy: $db/compile_commands.json missing (run scripts/build.sh release first)" >&2
  exit 1
fi
if [ $# -gt 0 ]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files -- 'core/*.cpp' 'config/*.cpp')
fi
# GCC-only warning flags in the database are not clang's business.
rc=0
out=$(printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 1 clang-tidy -p "$db" --quiet \
  --extra-arg=-Wno-unknown-warning-option 2>&1) || rc=$?
if [ "${rc:-0}" != 0 ] || grep -qE 'warning:|error:' <<<"$out"; then
  grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$' <<<"$out" >&2 || true
  echo "tidy: findings above" >&2
  exit 1
fi
echo "tidy: ${#files[@]} files clean"
