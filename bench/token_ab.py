#!/usr/bin/env python3
"""Cached opaque tokens against cached JWTs in ONE proxy process, alternating.

bench/run.py measures cases (c) and (e) in separate proxy processes; this runs both token sets
against the same process (cache warm for both, ttl 1 h), in alternating order, so that the
difference is the token format and nothing else (not the process, its heap, or when it ran).

    python3 bench/token_ab.py [BINARY]      default: build/release/proxy/clerk-m2m-proxy
    BENCH_AB_ROUNDS=3  BENCH_AB_SECONDS=6

Same fixtures as bench/run.py (pinning, nginx upstream with a 32-byte body, the Clerk
emulator, 100 tokens of each format, wrk -t1 -c50). Prints req/s per round and the JWT/opaque
ratio of the means.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: fixtures)


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else run.PROXY
    rounds = int(os.environ.get("BENCH_AB_ROUNDS", "3"))
    seconds = int(os.environ.get("BENCH_AB_SECONDS", "6"))
    b = run.Bench()
    try:
        b.start_upstream()
        b.start_emulator()
        b.set_latency(0)
        tokens = {f: b.mint(run.TOKENS, f) for f in ("opaque", "jwt")}
        _, port = b.start_proxy("ab", binary=binary, ttl="1h")
        rates = {"opaque": [], "jwt": []}
        for i in range(rounds):
            for f in (("opaque", "jwt") if i % 2 == 0 else ("jwt", "opaque")):
                run.run_wrk(port, 2, tokens[f])  # warm-up (and cache fill)
                r = run.run_wrk(port, seconds, tokens[f])
                bad = r["non2xx"] + r["errors"]
                rates[f].append(r["requests"] / seconds)
                print(f"round {i + 1} {f}: {rates[f][-1]:.0f} req/s"
                      + (f" ({bad} not 2xx)" if bad else ""), flush=True)
        mean = {f: sum(v) / len(v) for f, v in rates.items()}
        print(f"opaque {mean['opaque']:.0f} req/s, jwt {mean['jwt']:.0f} req/s: "
              f"jwt/opaque {mean['jwt'] / mean['opaque']:.2f}")
    finally:
        b.procs.stop_all()
        shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
