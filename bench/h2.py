#!/usr/bin/python3
"""HTTP/2 and gRPC benchmark (issue #18), one run, same machine, same pinning as bench/run.py
(the process measured on CPU 0; load generators, upstreams and the Clerk emulator on CPU 1):

  h1       wrk -t1 -c50, HTTP/1.1 -> clerk-m2m-proxy -> nginx (HTTP/1.1)      (reference)
  h2-h1    h2load -c50 -m10, HTTP/2 -> clerk-m2m-proxy -> nginx (HTTP/1.1)
  h2-h2c   h2load -c50 -m10, HTTP/2 -> clerk-m2m-proxy -> nginx (h2c)
  nginx-h2 h2load -c50 -m10 straight to nginx's h2c listener                  (no proxy)
  grpc     h2load gRPC unary calls (5-byte framed POST, te: trailers) to a Python grpcio
           server, straight and through clerk-m2m-proxy (upstream.protocol h2c)

One cached opaque token for every request (h2load sends one header set), `threads: 1`,
`log.level: warn`, `access_log: false`. Columns: req/s, mean latency, proxy CPU µs per request.

    python3 bench/h2.py            (BENCH_DURATION=10 seconds per case)
Writes the table to stdout; bench/RESULTS-h2.md keeps a run.
"""
import os
import re
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (bench/run.py: fixtures, pinning, process cleanup)

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
PROXY = base.PROXY


def parse_h2load(out):
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)

    def ms(text):
        v = float(re.match(r"[\d.]+", text).group(0))
        return v / 1000 if text.endswith("us") else (v * 1000 if text.endswith("s") and not
                                                      text.endswith("ms") else v)
    return {"rps": float(rps.group(1)) if rps else 0.0,
            "failed": int(ok.group(2)) if ok else -1,
            "non2xx": sum(int(x) for x in status.groups()[1:]) if status else -1,
            "mean_ms": ms(mean.group(1)) if mean else 0.0}


class H2Bench(base.Bench):
    def proxy(self, name, upstream_url, protocol="http1"):
        port, admin = base.free_port(), base.free_port()
        cfg = os.path.join(self.work, f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listen: "127.0.0.1:{port}"
http2: true
upstream:
  url: "{upstream_url}"
  protocol: {protocol}
clerk:
  api_url: "{self.clerk}"
  machine_secret_key: "{self.api_key}"
admin:
  listen: "127.0.0.1:{admin}"
log:
  level: warn
  access_log: false
threads: 1
""")
        p = self.procs.start([PROXY, "--config", cfg], cpu=base.CPU_TESTED,
                             stdout=open(os.path.join(self.work, f"{name}.log"), "w"),
                             stderr=subprocess.STDOUT)
        base.wait_for_port(port)
        return p, port

    def h2load(self, url, headers, data_file=None, seconds=DURATION):
        args = ["h2load", "-c", str(base.CONNECTIONS), "-m", "10", "-t", "1", "-D", str(seconds),
                "--warm-up-time=2"]
        for h in headers:
            args += ["-H", h]
        if data_file:
            args += ["-d", data_file]
        args.append(url)
        if base.shutil.which("taskset"):
            args = ["taskset", "-c", base.CPU_LOAD] + args
        return subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout

    def case(self, label, pid, fn):
        before = base.cpu_seconds(pid) if pid else 0.0
        r = fn()
        after = base.cpu_seconds(pid) if pid else 0.0
        total = r["rps"] * (DURATION + 2)  # h2load counts the warm-up in neither; close enough
        r["cpu_us"] = (after - before) * 1e6 / total if pid and total else None
        r["label"] = label
        cpu = f"{r['cpu_us']:.1f}" if r["cpu_us"] else "–"
        print(f"| {label} | {r['rps']:.0f} | {r['mean_ms']:.2f} | {cpu} | "
              f"{r.get('non2xx', 0)} |", flush=True)
        return r

    def run(self):
        self.start_upstream()
        self.start_emulator()
        token = open(self.mint(1, "opaque")).read().strip()
        auth = f"authorization: Bearer {token}"
        h2c_port = base.free_port()
        conf = self.nginx("h2c", f"""server {{ listen 127.0.0.1:{h2c_port} http2;
    location / {{ default_type text/plain; return 200 "{base.UPSTREAM_BODY.strip()}\\n"; }} }}""")
        self.procs.start(["nginx", "-p", self.work, "-c", conf], cpu=base.CPU_LOAD,
                         stdout=subprocess.DEVNULL)
        base.wait_for_port(h2c_port)
        print(f"h2 bench: {DURATION} s per case, {base.CONNECTIONS} connections "
              "(h2load: 10 streams each), one cached opaque token\n")
        print("| case | req/s | mean latency ms | proxy CPU µs/req | non-2xx |")
        print("|---|---:|---:|---:|---:|")
        p1, port1 = self.proxy("h1", f"http://127.0.0.1:{self.up_port}")
        tokens = os.path.join(self.work, "one-token.txt")
        with open(tokens, "w") as f:
            f.write(token + "\n")

        def wrk_case():
            base.run_wrk(port1, 2, tokens)  # warm-up
            r = base.run_wrk(port1, DURATION, tokens)
            return {"rps": r["rps"], "mean_ms": r["p50"], "non2xx": r.get("non2xx", 0)}
        self.case("HTTP/1.1 (wrk) -> proxy -> nginx HTTP/1.1 (p50 shown)", p1.pid, wrk_case)
        self.case("HTTP/2 (h2load) -> proxy -> nginx HTTP/1.1", p1.pid,
                  lambda: parse_h2load(self.h2load(f"http://127.0.0.1:{port1}/", [auth])))
        p2, port2 = self.proxy("h2c", f"http://127.0.0.1:{h2c_port}", "h2c")
        self.case("HTTP/2 (h2load) -> proxy -> nginx h2c", p2.pid,
                  lambda: parse_h2load(self.h2load(f"http://127.0.0.1:{port2}/", [auth])))
        self.case("HTTP/2 (h2load) -> nginx h2c (no proxy)", None,
                  lambda: parse_h2load(self.h2load(f"http://127.0.0.1:{h2c_port}/", [])))
        # gRPC unary: a Python grpcio server (on CPU 1), straight and through the proxy.
        grpc_port, grpc_proc = self.grpc_server()
        p3, port3 = self.proxy("grpc", f"http://127.0.0.1:{grpc_port}", "h2c")
        msg = os.path.join(self.work, "grpc.bin")
        with open(msg, "wb") as f:
            f.write(b"\x00\x00\x00\x00\x04ping")
        grpc_headers = ["content-type: application/grpc", "te: trailers"]
        self.case("gRPC unary (h2load) -> grpcio server (no proxy)", None,
                  lambda: parse_h2load(self.h2load(f"http://127.0.0.1:{grpc_port}/b.E/U",
                                                   grpc_headers, msg)))
        self.case("gRPC unary (h2load) -> proxy -> grpcio server", p3.pid,
                  lambda: parse_h2load(self.h2load(f"http://127.0.0.1:{port3}/b.E/U",
                                                   grpc_headers + [auth], msg)))

    def grpc_server(self):
        port = base.free_port()
        code = f"""
import concurrent.futures, grpc, time
s = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("b.E", {{
    "U": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}}),))
s.add_insecure_port("127.0.0.1:{port}")
s.start()
print("ready", flush=True)
s.wait_for_termination()
"""
        p = self.procs.start(["/usr/bin/python3", "-c", code], cpu=base.CPU_LOAD,
                             stdout=subprocess.DEVNULL)
        base.wait_for_port(port)
        return port, p


def main():
    b = H2Bench()
    try:
        b.run()
    finally:
        b.procs.stop_all()
        base.shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
