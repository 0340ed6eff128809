#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, checks style and layering,
# builds, and runs every test with ctest — normal build first, then under ASan+UBSan, then the
# concurrency-heavy tests under TSan (scripts/test-tsan.sh), then the fuzz targets.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

echo "== install dependencies"
scripts/install-deps.sh build test

echo "== layering: core/ and config/ never include Asio/Beast"
if grep -rnE '#include *[<"]boost/(asio|beast)' core config; then
  echo "layering violation: core/ and config/ must stay free of Asio/Beast" >&2
  exit 1
fi

echo "== format (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.cpp' '*.hpp' | grep -E '^(core|config|proxy|tests)/')
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi

echo "== build (release)"
scripts/build.sh release
echo "== test (release)"
ctest --test-dir build/release --output-on-failure -j "$jobs" --timeout 300

if [ "${CLERK_SKIP_SANITIZERS:-0}" != 1 ]; then
  echo "== build (asan+ubsan)"
  scripts/build.sh asan
  echo "== test (asan+ubsan)"
  # The fault suite runs 1,000 iterations per fault here (10,000 in the release pass above).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CLERK_FAULT_ITERATIONS=${CLERK_FAULT_ITERATIONS_ASAN:-1000} \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" --timeout 600 -LE contract
fi
if [ "${CLERK_SKIP_SANITIZERS:-0}" != 1 ]; then
  scripts/test-tsan.sh
fi

if [ "${CLERK_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz (libFuzzer, clang, ASan+UBSan; ${CLERK_FUZZ_SECONDS:-60} s per target)"
  scripts/install-deps.sh fuzz
  scripts/build.sh fuzz fuzz_path_route fuzz_bearer fuzz_header_rules fuzz_decision \
    fuzz_config fuzz_clerk_response fuzz_jwt fuzz_request
  cmake -B build/fuzz -DCLERK_FUZZ_SECONDS="${CLERK_FUZZ_SECONDS:-60}" >/dev/null
  ctest --test-dir build/fuzz --output-on-failure -j "$jobs" -L fuzz
fi
echo "== all tests passed"
