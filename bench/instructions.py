#!/usr/bin/env python3
"""User-space instructions per cached request, counted by callgrind (valgrind).

Requests per second and CPU time on a shared VM move by ±15% between two runs of the same
binary; the instructions the proxy executes per request do not (a few tenths of a percent), so
this is the figure to compare two builds of the hot path with. It leaves out the kernel's share
(about half of the proxy's CPU, the same for every build that makes the same syscalls) and it
runs under valgrind, whose CPU model hides SHA-NI: OpenSSL's SHA-256 counts ~4k instructions
per request here that take a few hundred cycles on the real CPU.

    python3 bench/instructions.py [BINARY ...]     default: build/release/proxy/clerk-m2m-proxy
    BENCH_FORMAT=jwt      cached JWTs instead of opaque tokens
    BENCH_TOP=20          also print the 20 costliest functions (exclusive) of each binary

Same fixtures as bench/run.py (nginx upstream with a 32-byte body, the Clerk emulator, 100
tokens, wrk -t1 -c50); after a 3 s warm-up the counters are zeroed, wrk runs 6 s, and the
instructions counted over those requests are divided by their number.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: fixtures)


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def measure(b, binary, tokens, top):
    out = os.path.join(b.work, "callgrind.out")
    wrapper = os.path.join(b.work, "under-callgrind.sh")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} "
                f"--dump-instr=no {binary} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    if os.path.exists(out):
        os.remove(out)
    p, port = b.start_proxy("callgrind", binary=wrapper)
    try:
        run.run_wrk(port, 3, tokens)
        subprocess.run(["callgrind_control", "-z", str(p.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = run.run_wrk(port, 6, tokens)
        subprocess.run(["callgrind_control", "-d", str(p.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dumps = sorted((f for f in os.listdir(b.work) if f.startswith("callgrind.out")),
                       key=lambda f: os.path.getmtime(os.path.join(b.work, f)))
        dump = os.path.join(b.work, dumps[-1])
        total = callgrind_total(dump)
        n = max(r["requests"], 1)
        print(f"{binary}: {total / n:,.0f} instructions per request "
              f"({r['requests']} requests, {r['non2xx'] + r['errors']} not 2xx)", flush=True)
        if top:
            ann = subprocess.run(["callgrind_annotate", "--threshold=100", dump],
                                 capture_output=True, text=True).stdout
            rows = []
            for line in ann.splitlines():
                m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
                if m:
                    cost = int(m.group(1).replace(",", ""))
                    if cost < total:  # skip the inclusive rows of main and the loop
                        rows.append((cost, m.group(2)))
            for cost, name in sorted(rows, reverse=True)[:top]:
                print(f"  {cost / n:8,.0f}  {name[:150]}")
    finally:
        b.procs.stop(p)


def main():
    binaries = sys.argv[1:] or [run.PROXY]
    fmt = os.environ.get("BENCH_FORMAT", "opaque")
    top = int(os.environ.get("BENCH_TOP", "0"))
    b = run.Bench()
    try:
        b.start_upstream()
        b.start_emulator()
        b.set_latency(0)
        tokens = b.mint(run.TOKENS, fmt)
        for binary in binaries:
            measure(b, os.path.abspath(binary), tokens, top)
    finally:
        b.procs.stop_all()
        shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
