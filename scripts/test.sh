#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what is missing, checks style and layering,
# builds, runs clang-tidy over core/ and config/ (scripts/tidy.sh), and runs every test with ctest —
# the Release build first, then the container image
# (scripts/test-image.sh: podman builds docker/Dockerfile and runs it with traffic), then under
# ASan+UBSan, then the concurrency-heavy tests under TSan (scripts/test-tsan.sh), then the fuzz
# targets. Ends with one line per step and its wall time, so every CI log shows where the time
# goes.
#   CLERK_SKIP_SANITIZERS=1  CLERK_SKIP_FUZZ=1  CLERK_SKIP_IMAGE=1  CLERK_FUZZ_SECONDS=N (30)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)

timings=()
step_name=""
step_start=0
total_start=$SECONDS
step() {  # step NAME: closes the previous step's timer and starts this one's
  end_step
  step_name=$1
  step_start=$SECONDS
  echo "== $step_name"
}
end_step() {
  if [ -n "$step_name" ]; then
    timings+=("$(printf '%6ds  %s' $((SECONDS - step_start)) "$step_name")")
    step_name=""
  fi
}
summary() {
  local rc=$?
  end_step
  echo "== timing (wall seconds per step)"
  for t in "${timings[@]}"; do
    echo "$t"
  done
  printf '%6ds  total (exit %d)\n' $((SECONDS - total_start)) "$rc"
}
trap summary EXIT

step "install dependencies"
scripts/install-deps.sh build test

step "layering: core/ and config/ never include Asio/Beast"
if grep -rnE '#include *[<"]boost/(asio|beast)' core config; then
  echo "layering violation: core/ and config/ must stay free of Asio/Beast" >&2
  exit 1
fi

step "format (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.cpp' '*.hpp' | grep -E '^(core|config|proxy|tests)/')
if [ ${#sources[@]} -gt 0 ]; then
  clang-format --dry-run -Werror "${sources[@]}"
fi

step "a user's plain build uses no -Werror (configure only)"
# What most users type is `cmake -DCMAKE_BUILD_TYPE=Release`: warnings must never fail it. The
# release pass below is itself a Release build, with -Werror on (CLERK_WERROR, stricter).
rm -rf build/user-config
cmake -G Ninja -S . -B build/user-config -DCMAKE_BUILD_TYPE=Release >/dev/null
if grep -q -- '-Werror' build/user-config/build.ninja; then
  echo "a default configure must not turn warnings into errors (CLERK_WERROR is opt-in)" >&2
  exit 1
fi
rm -rf build/user-config

step "build (release)"
scripts/build.sh release
step "clang-tidy (core/, config/: .clang-tidy, findings are errors)"
scripts/tidy.sh
step "test (release)"
ctest --test-dir build/release --output-on-failure -j "$jobs" --timeout 300

if [ "${CLERK_SKIP_IMAGE:-0}" != 1 ]; then
  step "image (podman: build docker/Dockerfile, run it with traffic)"
  scripts/test-image.sh
fi

if [ "${CLERK_SKIP_SANITIZERS:-0}" != 1 ]; then
  step "build (asan+ubsan)"
  scripts/build.sh asan
  step "test (asan+ubsan)"
  # The fault suite runs 1,000 iterations per fault here (10,000 in the release pass above).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CLERK_FAULT_ITERATIONS=${CLERK_FAULT_ITERATIONS_ASAN:-1000} \
    ctest --test-dir build/asan --output-on-failure -j "$jobs" --timeout 600 -LE contract
  step "tsan (build and concurrency tests)"
  scripts/test-tsan.sh
fi

if [ "${CLERK_SKIP_FUZZ:-0}" != 1 ]; then
  seconds=${CLERK_FUZZ_SECONDS:-30}
  step "fuzz build (libFuzzer, clang, ASan+UBSan)"
  scripts/install-deps.sh fuzz
  scripts/build.sh fuzz fuzz_path_route fuzz_bearer fuzz_header_rules fuzz_decision \
    fuzz_config fuzz_clerk_response fuzz_jwt fuzz_request fuzz_shared_entry fuzz_h2_frames
  step "fuzz ($seconds s per target)"
  cmake -B build/fuzz -DCLERK_FUZZ_SECONDS="$seconds" >/dev/null
  ctest --test-dir build/fuzz --output-on-failure -j "$jobs" -L fuzz
fi
end_step
echo "== all tests passed"
