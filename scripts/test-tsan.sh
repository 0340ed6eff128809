#!/usr/bin/env bash
# The TSan step of scripts/test.sh (issue #7): builds build/tsan (GCC, -fsanitize=thread) and runs
# the concurrency-heavy tests with zero reports allowed:
#   - core_tests: the concurrent cache and single-flight unit tests;
#   - proxy_tests: the proxy units (authenticator single-flight, metrics, ...);
#   - integration_tests (TSan-built; it launches the TSan-built clerk-m2m-proxy and clerk-emulator
#     from the same build tree): Clerk cache/single-flight ([cache]: 10,000 requests over 100
#     tokens, 200 concurrent first requests), Clerk failures/stale, M2M JWT/JWKS ([jwt]),
#     keep-alive, pooling and pipelining ([proxy]), reload under traffic ([reload]), drain,
#     WebSocket tunnels ([websocket]) and forward-auth behind nginx and Caddy ([forward_auth]).
#
# Every TSan report — in a test binary or in a proxy/emulator child process, which the harness
# may SIGKILL before its exit code is seen — is written to $reports/tsan.<pid> (log_path), so the
# step fails on the existence of such a file rather than on exit codes alone.
#   scripts/test-tsan.sh [extra Catch2 test spec for integration_tests]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$SECONDS

echo "== build (tsan)"
targets=(core_tests clerk-m2m-proxy clerk-emulator integration_tests)
if ls tests/proxy/*_test.cpp >/dev/null 2>&1; then
  targets+=(proxy_tests)
fi
scripts/build.sh tsan "${targets[@]}"

reports="$root/build/tsan/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
# halt_on_error: the first race ends the process (exit 66), so it cannot be missed or scroll by.
# second_deadlock_stack: full lock-order-inversion reports. Suppressions: scripts/tsan.supp.
export TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
log_path=$reports/tsan suppressions=$root/scripts/tsan.supp"

failed=0
run() {
  echo "-- $*"
  if ! "$@"; then
    echo "tsan step: '$*' failed" >&2
    failed=1
  fi
}
run build/tsan/tests/core_tests
if [ -x build/tsan/tests/proxy_tests ]; then
  run build/tsan/tests/proxy_tests
fi
spec=${1:-"[cache],[failure],[stale],[jwt],[proxy],[reload],[drain],[websocket],[forward_auth]"}
run build/tsan/tests/integration_tests "$spec"
# HTTP/2 and gRPC (issue #18): the TSan-built proxy between grpcio/curl/python3-h2 and real peers.
run /usr/bin/python3 tests/integration/h2/h2_grpc_test.py build/tsan/proxy/clerk-m2m-proxy \
  build/tsan/tests/emulator/clerk-emulator

if compgen -G "$reports/tsan.*" >/dev/null; then
  for f in "$reports"/tsan.*; do
    echo "== TSan report $f" >&2
    cat "$f" >&2
  done
  echo "tsan step: ThreadSanitizer reported data races (see above)" >&2
  failed=1
fi
echo "== tsan step: $((SECONDS - start)) s"
exit "$failed"
