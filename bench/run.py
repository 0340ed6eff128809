#!/usr/bin/env python3
"""Load benchmark of clerk-m2m-proxy against its peers, on loopback only, bounded in time.

Cases (issue #6):
  a  direct to the upstream (nginx, 1 worker, fixed response)
  b  nginx as a plain reverse proxy, upstream keep-alive, no auth, 1 worker
  c  clerk-m2m-proxy, threads 1, opaque M2M tokens, cache warm
  d  clerk-m2m-proxy, threads 1, opaque tokens, cache cold (Clerk emulator latency applies)
  e  clerk-m2m-proxy, threads 1, M2M JWT tokens (local verification), cache warm
  e1 clerk-m2m-proxy, threads 1, M2M JWT tokens, first seen (cache off: every request verifies)
  f  Node proxy on @clerk/backend authenticateRequest + an LRU cache, warm

The process under test is pinned to CPU 0, wrk and the upstream to CPU 1. For each case: req/s,
p50/p99 latency, non-2xx count, Clerk calls, CPU time of the process under test per request
(user+sys from /proc), peak RSS (VmHWM). Results go to bench/RESULTS.md.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "release")
PROXY = os.path.join(BIN, "proxy", "clerk-m2m-proxy")
EMULATOR = os.path.join(BIN, "tests", "emulator", "clerk-emulator")
NODE_PEER = os.path.join(ROOT, "bench", "node-proxy", "server.mjs")

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
TOKENS = int(os.environ.get("BENCH_TOKENS", "100"))
LATENCY_MS = int(os.environ.get("BENCH_CLERK_LATENCY_MS", "30"))
CASES = os.environ.get("BENCH_CASES", "a b c d e e1 f").split()
MEMORY = os.environ.get("BENCH_MEMORY", "1") == "1"
NCPU = os.cpu_count() or 1
CPU_TESTED = "0"
CPU_LOAD = "1" if NCPU > 1 else "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every process started here, stopped on exit whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, args, cpu=None, env=None, **kw):
        if cpu is not None and shutil.which("taskset"):
            args = ["taskset", "-c", cpu] + args
        p = subprocess.Popen(args, env=env, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def wait_for_line(path, pattern, timeout=20.0):
    deadline = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < deadline:
        try:
            with open(path, errors="replace") as f:
                m = rx.search(f.read())
                if m:
                    return m
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {pattern!r} in {path}:\n" + open(path).read()[-2000:])


def wait_for_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def http_json(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def parse_wrk(out):
    def num(rx, conv=float, default=0):
        m = re.search(rx, out)
        return conv(m.group(1)) if m else default

    def lat(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v

    return {
        "rps": num(r"Requests/sec:\s+([\d.]+)"),
        "requests": num(r"(\d+) requests in", int),
        "non2xx": num(r"Non-2xx or 3xx responses:\s+(\d+)", int),
        "errors": sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)),
        "p50": lat("50"),
        "p99": lat("99"),
    }


def run_wrk(port, seconds, tokens_file=None):
    env = dict(os.environ)
    if tokens_file:
        env["BENCH_TOKENS"] = tokens_file
    args = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
            "-s", os.path.join(ROOT, "bench", "tokens.lua"), f"http://127.0.0.1:{port}/bench"]
    if shutil.which("taskset"):
        args = ["taskset", "-c", CPU_LOAD] + args
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    return parse_wrk(out)


class Bench:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="clerk-bench-")
        self.procs = Procs()
        self.results = {}

    # -- fixtures ---------------------------------------------------------------------------
    def nginx(self, name, body):
        conf = os.path.join(self.work, f"{name}.conf")
        prefix = os.path.join(self.work, name)
        os.makedirs(prefix, exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"""worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log stderr error;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
  keepalive_requests 1000000;
  {body}
}}
""")
        return conf

    def start_upstream(self):
        self.up_port = free_port()
        conf = self.nginx("upstream", f"""server {{ listen 127.0.0.1:{self.up_port};
    location / {{ default_type text/plain; return 200 "ok\\n"; }} }}""")
        self.upstream = self.procs.start(["nginx", "-p", self.work, "-c", conf], cpu=CPU_LOAD,
                                         stdout=subprocess.DEVNULL)
        wait_for_port(self.up_port)

    def start_emulator(self):
        out = os.path.join(self.work, "emulator.out")
        self.emulator = self.procs.start(
            [EMULATOR, "--listen", "127.0.0.1:0", "--machine", "bench-client", "--machine",
             "bench-api", "--latency", f"{LATENCY_MS}ms"],
            cpu=CPU_LOAD, stdout=open(out, "w"), stderr=subprocess.STDOUT)
        port = wait_for_line(out, r"listening on http://127\.0\.0\.1:(\d+)").group(1)
        self.clerk = f"http://127.0.0.1:{port}"
        wait_for_line(out, r'"name":"bench-api"')
        machines = {}
        for line in open(out):
            if line.startswith('{"machine"'):
                m = json.loads(line)["machine"]
                machines[m["name"]] = m
        self.client_key = machines["bench-client"]["secret_key"]
        self.api_key = machines["bench-api"]["secret_key"]

    def mint(self, count, fmt):
        path = os.path.join(self.work, f"tokens-{fmt}.txt")
        hdr = {"Authorization": f"Bearer {self.client_key}", "Clerk-API-Version": "2026-05-12",
               "Content-Type": "application/json"}
        with open(path, "w") as f:
            for _ in range(count):
                t = http_json("POST", f"{self.clerk}/m2m_tokens",
                              {"seconds_until_expiration": 3600, "claims": None,
                               "token_format": fmt}, hdr)
                f.write(t["token"] + "\n")
        return path

    def clerk_stats(self):
        return http_json("GET", f"{self.clerk}/__emulator/stats")

    def set_latency(self, ms):
        http_json("POST", f"{self.clerk}/__emulator/latency", {"ms": ms})

    def start_proxy(self, name, ttl="60s", jwt=False):
        port, admin = free_port(), free_port()
        cfg = os.path.join(self.work, f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listen: "127.0.0.1:{port}"
upstream:
  url: "http://127.0.0.1:{self.up_port}"
clerk:
  api_url: "{self.clerk}"
  machine_secret_key: "{self.api_key}"
  secret_key: "sk_test_emulator"
auth:
  accepts_token: [m2m_token]
cache:
  ttl: {ttl}
admin:
  listen: "127.0.0.1:{admin}"
log:
  level: warn
  access_log: false
threads: 1
""")
        log = os.path.join(self.work, f"{name}.log")
        p = self.procs.start([PROXY, "--config", cfg], cpu=CPU_TESTED, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT)
        wait_for_port(port)
        wait_for_port(admin)
        return p, port

    # -- measurement -------------------------------------------------------------------------
    def measure(self, case, label, pid, port, tokens=None, warm=True):
        if warm and WARMUP > 0:
            run_wrk(port, WARMUP, tokens)
        before_calls = self.clerk_stats()
        before_cpu = cpu_seconds(pid) if pid else 0.0
        r = run_wrk(port, DURATION, tokens)
        after_cpu = cpu_seconds(pid) if pid else 0.0
        after_calls = self.clerk_stats()
        r["label"] = label
        r["clerk_calls"] = (after_calls["verify_calls"] - before_calls["verify_calls"]
                            + after_calls["jwks_calls"] - before_calls["jwks_calls"])
        r["cpu_us_per_req"] = ((after_cpu - before_cpu) * 1e6 / r["requests"]
                               if pid and r["requests"] else float("nan"))
        r["rss_mib"] = peak_rss_mib(pid) if pid else float("nan")
        self.results[case] = r
        print(f"  {case}: {r['rps']:.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
              f"non2xx {r['non2xx']} clerk {r['clerk_calls']} cpu/req {r['cpu_us_per_req']:.1f} us",
              flush=True)

    def run(self):
        print(f"bench: {DURATION}s per case, {CONNECTIONS} connections, {TOKENS} tokens, "
              f"Clerk latency {LATENCY_MS} ms, cases {' '.join(CASES)}", flush=True)
        self.start_upstream()
        self.start_emulator()
        opaque = self.mint(TOKENS, "opaque")
        jwts = self.mint(TOKENS, "jwt")
        if "a" in CASES:
            self.measure("a", "direct to upstream (nginx)", None, self.up_port)
        if "b" in CASES:
            port = free_port()
            conf = self.nginx("peer", f"""upstream up {{ server 127.0.0.1:{self.up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }} }}""")
            master = self.procs.start(["nginx", "-p", self.work, "-c", conf], cpu=CPU_TESTED,
                                      stdout=subprocess.DEVNULL)
            wait_for_port(port)
            # taskset execs nginx, so master.pid is the nginx master; measure its one worker.
            worker = int(subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True,
                                        text=True).stdout.split()[0])
            self.measure("b", "nginx reverse proxy, no auth", worker, port)
            self.procs.stop(master)
        if "c" in CASES:
            p, port = self.start_proxy("warm")
            self.measure("c", "clerk-m2m-proxy, opaque, cache warm", p.pid, port, opaque)
            self.procs.stop(p)
        if "d" in CASES:
            p, port = self.start_proxy("cold")
            self.measure("d", f"clerk-m2m-proxy, opaque, cache cold ({LATENCY_MS} ms Clerk)",
                         p.pid, port, opaque, warm=False)
            self.procs.stop(p)
        if "e" in CASES:
            p, port = self.start_proxy("jwt")
            self.measure("e", "clerk-m2m-proxy, JWT, cache warm", p.pid, port, jwts)
            self.procs.stop(p)
        if "e1" in CASES:
            p, port = self.start_proxy("jwt-nocache", ttl="0s")
            self.measure("e1", "clerk-m2m-proxy, JWT, first seen (no cache)", p.pid, port, jwts)
            self.procs.stop(p)
        if "f" in CASES and shutil.which("node"):
            port = free_port()
            env = dict(os.environ, PORT=str(port), UPSTREAM_PORT=str(self.up_port),
                       CLERK_API_URL=self.clerk, CLERK_MACHINE_SECRET_KEY=self.api_key,
                       CLERK_SECRET_KEY="sk_test_emulator", CLERK_TELEMETRY_DISABLED="1")
            log = os.path.join(self.work, "node.log")
            p = self.procs.start(["node", NODE_PEER], cpu=CPU_TESTED, env=env,
                                 stdout=open(log, "w"), stderr=subprocess.STDOUT)
            wait_for_port(port)
            self.measure("f", "Node proxy (@clerk/backend + LRU)", p.pid, port, opaque)
            self.procs.stop(p)
        self.memory = self.memory_bench() if MEMORY else {}
        self.write_results()

    def memory_bench(self):
        """RSS idle and after 100,000 distinct cached identities (JWTs minted by the emulator
        would need 100k signatures; opaque tokens are created through its knob instead)."""
        self.set_latency(0)
        p, port = self.start_proxy("memory", ttl="1h")
        time.sleep(0.5)  # let start-up allocations settle before reading idle RSS
        idle = rss_mib(p.pid)
        n = int(os.environ.get("BENCH_MEMORY_TOKENS", "100000"))
        script = os.path.join(self.work, "fill.py")
        with open(script, "w") as f:
            f.write(FILL_SCRIPT)
        subprocess.run([sys.executable, script, self.clerk, self.client_key, str(port), str(n)],
                       check=True, timeout=1800)
        filled = rss_mib(p.pid)
        self.procs.stop(p)
        self.set_latency(LATENCY_MS)
        return {"idle": idle, "filled": filled, "tokens": n}

    def write_results(self):
        b = self.results.get("b")
        lines = [
            "# Benchmark results",
            "",
            f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `bench/run.sh` on "
            f"{os.uname().nodename} ({NCPU} CPUs, {os.uname().machine}, Linux {os.uname().release}).",
            f"Parameters: wrk 2 threads, {CONNECTIONS} connections, {DURATION} s per case after a "
            f"{WARMUP} s warm-up, {TOKENS} rotating tokens, Clerk emulator latency {LATENCY_MS} ms. "
            f"Process under test pinned to CPU {CPU_TESTED}; wrk, upstream and emulator to CPU {CPU_LOAD}.",
            "Ratios are to case (b), nginx as a plain reverse proxy, in the same run.",
            "",
            "| case | req/s | × nginx | p50 ms | p99 ms | × nginx p99 | non-2xx | Clerk calls | CPU µs/req | × nginx CPU | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def ratio(x, y):
            return f"{x / y:.2f}" if y and y == y and x == x and y > 0 else "–"

        for case in ["a", "b", "c", "d", "e", "e1", "f"]:
            r = self.results.get(case)
            if not r:
                continue
            lines.append(
                f"| ({case}) {r['label']} | {r['rps']:.0f} | {ratio(r['rps'], b['rps']) if b else '–'} "
                f"| {r['p50']:.2f} | {r['p99']:.2f} | {ratio(r['p99'], b['p99']) if b else '–'} "
                f"| {r['non2xx'] + r['errors']} | {r['clerk_calls']} "
                f"| {r['cpu_us_per_req']:.1f} | {ratio(r['cpu_us_per_req'], b['cpu_us_per_req']) if b else '–'} "
                f"| {r['rss_mib']:.1f} |")
        if self.memory:
            m = self.memory
            lines += ["", "## Memory", "",
                      f"- RSS idle (threads 1): {m['idle']:.1f} MiB",
                      f"- RSS after {m['tokens']:,} distinct cached identities: {m['filled']:.1f} MiB",
                      "- Streaming 1 GiB and 10,000 idle connections: `bench/stream_rss.sh`, "
                      "`bench/idle_connections.sh` (figures in the README)."]
        text = "\n".join(lines) + "\n"
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as f:
            f.write(text)
        print(text)


FILL_SCRIPT = r'''
import http.client, json, sys
clerk, key, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, cport = clerk.split("//")[1].split(":")
c = http.client.HTTPConnection(host, int(cport), timeout=30)
p = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
hdr = {"Authorization": "Bearer " + key, "Clerk-API-Version": "2026-05-12",
       "Content-Type": "application/json"}
bad = 0
for i in range(n):
    c.request("POST", "/m2m_tokens", json.dumps({"seconds_until_expiration": 7200,
              "claims": None, "token_format": "opaque"}), hdr)
    tok = json.loads(c.getresponse().read())["token"]
    p.request("GET", "/fill", headers={"Authorization": "Bearer " + tok})
    r = p.getresponse(); r.read()
    bad += r.status != 200
if bad:
    sys.exit(f"fill: {bad} of {n} requests were not 200")
'''


def main():
    # SIGTERM/SIGINT unwind through the finally below, so no process is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench()
    try:
        b.run()
    finally:
        b.procs.stop_all()
        shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
