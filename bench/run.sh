#!/usr/bin/env bash
# Benchmarks clerk-m2m-proxy against its peers on loopback (see bench/README.md).
#   bench/run.sh                 all cases, writes bench/RESULTS.md
#   BENCH_DURATION=10 BENCH_CONNECTIONS=50 BENCH_TOKENS=100 BENCH_CLERK_LATENCY_MS=30 \
#   BENCH_WRK_THREADS=1 BENCH_STRACE_SECONDS=3 BENCH_CASES="a b c cl d e e1 f" BENCH_MEMORY=1 \
#   bench/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh build test bench
scripts/build.sh release clerk-m2m-proxy clerk-emulator >/dev/null
if [ ! -d bench/node-proxy/node_modules/@clerk/backend ]; then
  (cd bench/node-proxy && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
# The allocation counter preloaded into each process under test (bench/alloc_count.c).
mkdir -p build/bench
cc -O2 -shared -fPIC -o build/bench/alloc_count.so bench/alloc_count.c
export BENCH_ALLOC_SO="$root/build/bench/alloc_count.so"
exec python3 bench/run.py "$@"
