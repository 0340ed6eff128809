#!/usr/bin/env python3
"""Load benchmark of clerk-m2m-proxy against its peers, on loopback only, bounded in time.

The conditions are those of an independent user's measurement (issue #14): each process under
test has one core (pinned to CPU 0; wrk, the upstream and the Clerk emulator on CPU 1), one
worker / event loop, `wrk -t1 -c50`, `GET /` with `Authorization: Bearer <token>` rotating over
100 tokens, the upstream an nginx returning a fixed 32-byte body over keep-alive, our proxy with
`threads: 1`, `log.level: warn`, `access_log: false` unless the case says otherwise.

Cases:
  a  direct to the upstream (nginx, 1 worker, fixed response)
  b  nginx as a plain reverse proxy, upstream keep-alive, no auth, 1 worker
  c  clerk-m2m-proxy, opaque M2M tokens, cache warm
  cl clerk-m2m-proxy, opaque, cache warm, access log on (JSON to a file)
  d  clerk-m2m-proxy, opaque tokens, cache cold (Clerk emulator latency applies)
  e  clerk-m2m-proxy, M2M JWT tokens (local verification), cache warm
  e1 clerk-m2m-proxy, M2M JWT tokens, first seen (cache off: every request verifies)
  f  Node proxy on @clerk/backend authenticateRequest + an LRU cache, warm
  h  clerk-m2m-proxy, opaque, every request a local cache miss answered by the shared cache
     (cache.max_entries 1, Redis warm): the cost of a shared-cache hit
  fleet  4 proxy processes, 200 new tokens each sent once to every proxy: Clerk calls with and
     without the shared cache (not a throughput case)
  g  nginx with auth_request asking clerk-m2m-proxy in forward_auth mode (docs/gateways/nginx.conf
     as documented, kept-alive connections to both), opaque, cache warm: nginx and the proxy
     share CPU 0 and their CPU, allocations and syscalls are added up

For each case: req/s, p50/p99 latency, non-2xx count, Clerk calls, CPU time of the process under
test per request (user+sys from /proc), heap allocations per request (an LD_PRELOAD counter,
bench/alloc_count.c, read before and after the measured run), syscalls per request (a separate
short run under `strace -c -f`, which slows the process but not what it calls per request) and
peak RSS. Results go to bench/RESULTS.md.
"""
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "release")
PROXY = os.environ.get("BENCH_PROXY_BIN") or os.path.join(BIN, "proxy", "clerk-m2m-proxy")
EMULATOR = os.path.join(BIN, "tests", "emulator", "clerk-emulator")
NODE_PEER = os.path.join(ROOT, "bench", "node-proxy", "server.mjs")

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "1"))
STRACE_SECONDS = int(os.environ.get("BENCH_STRACE_SECONDS", "3"))
UPSTREAM_BODY = "0123456789abcdef0123456789abcde\n"  # 32 bytes
ALLOC_SO = os.environ.get("BENCH_ALLOC_SO", "")
# Another build of the proxy (e.g. the previous main) measured in the same run as case c0.
BASELINE = os.environ.get("BENCH_BASELINE_BIN", "")
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "50"))
TOKENS = int(os.environ.get("BENCH_TOKENS", "100"))
LATENCY_MS = int(os.environ.get("BENCH_CLERK_LATENCY_MS", "30"))
# nginx (b) and the warm cases compared with it and with each other (c0 baseline build, c opaque,
# cl access log on, e JWT) run in this many rounds, in alternating order (b c0 c cl e, e cl c c0
# b, …), and report means: on a
# small VM the case measured first after nginx came out ahead by up to 25% in fixed order,
# whatever the build, which made "JWT vs opaque" and "log on vs off" read as 0.8× by accident.
PAIRS = max(1, int(os.environ.get("BENCH_PAIRS", "4")))  # even: each order equally often
CASES = os.environ.get("BENCH_CASES", "a b c cl d e e1 f g h fleet").split()
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

    def start(self, args, cpu=None, env=None, alloc_file=None, **kw):
        if cpu is not None and shutil.which("taskset"):
            args = ["taskset", "-c", cpu] + args
        if alloc_file and ALLOC_SO:
            env = dict(env or os.environ, LD_PRELOAD=ALLOC_SO, ALLOC_COUNT_FILE=alloc_file)
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


def pids_of(pid):
    return [] if not pid else (list(pid) if isinstance(pid, (list, tuple)) else [pid])


def cpu_seconds(pid):
    """User+system CPU of one process, or the sum over a list of them."""
    if isinstance(pid, (list, tuple)):
        return sum(cpu_seconds(p) for p in pid)
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid):
    if isinstance(pid, (list, tuple)):
        return sum(peak_rss_mib(p) for p in pid)
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


def read_allocs(path):
    if isinstance(path, (list, tuple)):
        counts = [read_allocs(p) for p in path]
        return None if any(c is None for c in counts) else sum(counts)
    try:
        with open(path, "rb") as f:
            return int.from_bytes(f.read(8), "little")
    except (OSError, TypeError):
        return None


def parse_strace(path):
    """(total calls, {syscall: calls}) from `strace -c` output."""
    per, total = {}, 0
    try:
        text = open(path).read()
    except OSError:
        return 0, {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and "." in f[0]:
            name = f[-1]
            calls = int(f[3])
            if name == "total":
                total = calls
            else:
                per[name] = calls
    return total, per


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


def combine_rounds(rs):
    """One row from several rounds of one case (bench.round_cases)."""
    def mean(k):
        v = [r[k] for r in rs if r[k] == r[k]]
        return sum(v) / len(v) if v else float("nan")
    out = dict(rs[0])
    for k in ("rps", "cpu_us_per_req", "allocs_per_req"):
        out[k] = mean(k)
    for k in ("p50", "p99"):
        out[k] = statistics.median(r[k] for r in rs)
    for k in ("requests", "non2xx", "errors", "clerk_calls"):
        out[k] = sum(r[k] for r in rs)
    out["rss_mib"] = max(r["rss_mib"] for r in rs)
    first = next((r for r in rs if r["syscalls"]), rs[0])
    out["syscalls_per_req"], out["syscalls"] = first["syscalls_per_req"], first["syscalls"]
    out["rounds"] = [r["rps"] for r in rs]
    return out


def run_wrk(port, seconds, tokens_file=None):
    env = dict(os.environ)
    if tokens_file:
        env["BENCH_TOKENS"] = tokens_file
    args = ["wrk", "-t", str(WRK_THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--latency",
            "-s", os.path.join(ROOT, "bench", "tokens.lua"), f"http://127.0.0.1:{port}/"]
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
    location / {{ default_type text/plain; return 200 "{UPSTREAM_BODY.strip()}\\n"; }} }}""")
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

    def start_proxy(self, name, ttl="60s", access_log=False, binary=PROXY, mode="proxy",
                    cache_extra="", cpu=CPU_TESTED):
        port, admin = free_port(), free_port()
        cfg = os.path.join(self.work, f"{name}.yaml")
        upstream = (f"""upstream:
  url: "http://127.0.0.1:{self.up_port}"
""" if mode == "proxy" else "")
        with open(cfg, "w") as f:
            f.write(f"""mode: {mode}
listen: "127.0.0.1:{port}"
{upstream}clerk:
  api_url: "{self.clerk}"
  machine_secret_key: "{self.api_key}"
  secret_key: "sk_test_emulator"
auth:
  accepts_token: [m2m_token]
cache:
  ttl: {ttl}
{cache_extra}admin:
  listen: "127.0.0.1:{admin}"
log:
  level: warn
  access_log: {"true" if access_log else "false"}
threads: 1
""")
        log = os.path.join(self.work, f"{name}.log")
        alloc_file = os.path.join(self.work, f"{name}.allocs")
        p = self.procs.start([binary, "--config", cfg], cpu=cpu, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT, alloc_file=alloc_file)
        wait_for_port(port)
        wait_for_port(admin)
        p.alloc_file = alloc_file
        return p, port

    # -- measurement -------------------------------------------------------------------------
    def syscalls(self, pid, port, tokens):
        """Syscalls per request of `pid` over a short run under strace -c -f."""
        if not pid or STRACE_SECONDS <= 0 or not shutil.which("strace"):
            return float("nan"), {}
        out = os.path.join(self.work, f"strace-{pids_of(pid)[0]}.txt")
        attach = [a for p in pids_of(pid) for a in ("-p", str(p))]
        st = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out] + attach,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached to every thread before the load starts
        r = run_wrk(port, STRACE_SECONDS, tokens)
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
        total, per = parse_strace(out)
        n = max(r["requests"], 1)
        return total / n, {k: v / n for k, v in sorted(per.items(), key=lambda kv: -kv[1])}

    def round_cases(self, cases):
        """`cases` in PAIRS rounds of alternating order, all processes running throughout; each
        row is the mean over its rounds (latencies: median, syscalls: from the first round).
        A case is (case, label, tokens, start): start() returns (pid measured, port,
        alloc_file, handle to stop)."""
        procs = {}
        for case, label, tokens, start in cases:
            procs[case] = start()
        rounds = {c[0]: [] for c in cases}
        for i in range(PAIRS):
            for case, label, tokens, _ in (cases if i % 2 == 0 else cases[::-1]):
                pid, port, alloc_file, _ = procs[case]
                self.measure(case, label, pid, port, tokens, warm=True,
                             alloc_file=alloc_file, syscalls=(i == 0))
                rounds[case].append(self.results[case])
        for case, rs in rounds.items():
            self.results[case] = combine_rounds(rs)
        for _, _, _, handle in procs.values():
            self.procs.stop(handle)

    def start_nginx_peer(self):
        """Case b: nginx as a plain reverse proxy to the upstream, one worker. Returns
        (worker pid, port, alloc file, master)."""
        port = free_port()
        conf = self.nginx("peer", f"""upstream up {{ server 127.0.0.1:{self.up_port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port};
    location / {{ proxy_pass http://up; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }} }}""")
        nginx_allocs = os.path.join(self.work, "nginx-peer.allocs")
        master = self.procs.start(["nginx", "-p", self.work, "-c", conf], cpu=CPU_TESTED,
                                  stdout=subprocess.DEVNULL, alloc_file=nginx_allocs)
        wait_for_port(port)
        # taskset execs nginx, so master.pid is the nginx master; measure its one worker.
        worker = int(subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True,
                                    text=True).stdout.split()[0])
        return worker, port, nginx_allocs, master

    def proxy_starter(self, name, opts):
        def start():
            # All stay up for all rounds: a ttl longer than the rounds keeps the caches warm.
            p, port = self.start_proxy(name, **dict(opts, ttl="1h"))
            return p.pid, port, p.alloc_file, p
        return start

    def measure(self, case, label, pid, port, tokens=None, warm=True, alloc_file=None,
                syscalls=True):
        if warm and WARMUP > 0:
            run_wrk(port, WARMUP, tokens)
        before_calls = self.clerk_stats()
        before_parts = [cpu_seconds(p) for p in pids_of(pid)]
        before_cpu = cpu_seconds(pid) if pid else 0.0
        before_allocs = read_allocs(alloc_file)
        r = run_wrk(port, DURATION, tokens)
        after_allocs = read_allocs(alloc_file)
        after_cpu = cpu_seconds(pid) if pid else 0.0
        parts = [(cpu_seconds(p) - b) * 1e6 / max(r["requests"], 1)
                 for p, b in zip(pids_of(pid), before_parts)]
        after_calls = self.clerk_stats()
        r["allocs_per_req"] = ((after_allocs - before_allocs) / r["requests"]
                               if before_allocs is not None and after_allocs is not None
                               and r["requests"] else float("nan"))
        r["syscalls_per_req"], r["syscalls"] = (self.syscalls(pid, port, tokens)
                                                if warm and syscalls else (float("nan"), {}))
        r["label"] = label
        r["clerk_calls"] = (after_calls["verify_calls"] - before_calls["verify_calls"]
                            + after_calls["jwks_calls"] - before_calls["jwks_calls"])
        r["cpu_us_per_req"] = ((after_cpu - before_cpu) * 1e6 / r["requests"]
                               if pid and r["requests"] else float("nan"))
        r["rss_mib"] = peak_rss_mib(pid) if pid else float("nan")
        # Several processes under test: the CPU of each, in the order given (after the total).
        r["cpu_parts"] = parts if len(parts) > 1 else []
        self.results[case] = r
        print(f"  {case}: {r['rps']:.0f} req/s p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms "
              f"non2xx {r['non2xx']} clerk {r['clerk_calls']} cpu/req {r['cpu_us_per_req']:.1f} us "
              f"allocs/req {r['allocs_per_req']:.1f} syscalls/req {r['syscalls_per_req']:.2f}"
              + (" (cpu/req by process: " + " + ".join(f"{x:.1f}" for x in r["cpu_parts"]) + " us)"
                 if r["cpu_parts"] else ""),
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
        ours = [("c", "warm", {}, "clerk-m2m-proxy, opaque, cache warm", opaque, True),
                ("cl", "warm-log", {"access_log": True},
                 "clerk-m2m-proxy, opaque, cache warm, access log on", opaque, True),
                ("d", "cold", {}, f"clerk-m2m-proxy, opaque, cache cold ({LATENCY_MS} ms Clerk)",
                 opaque, False),
                ("e", "jwt", {}, "clerk-m2m-proxy, JWT, cache warm", jwts, True),
                ("e1", "jwt-nocache", {"ttl": "0s"}, "clerk-m2m-proxy, JWT, first seen (no cache)",
                 jwts, True)]
        if BASELINE:
            ours.insert(0, ("c0", "baseline", {"binary": BASELINE},
                            f"baseline build ({os.path.basename(BASELINE)}), opaque, cache warm",
                            opaque, True))
        # nginx (b) and the warm cases compared with it and with each other take turns.
        rounded = []
        if "b" in CASES:
            rounded.append(("b", "nginx reverse proxy, no auth", opaque, self.start_nginx_peer))
        rounded += [(c[0], c[3], c[4], self.proxy_starter(c[1], c[2])) for c in ours
                    if c[0] in ("c0", "c", "cl", "e")
                    and (c[0] in CASES or (c[0] == "c0" and "c" in CASES))]
        if len(rounded) > 1:
            self.round_cases(rounded)
        elif rounded:
            case, label, tokens, start = rounded[0]
            pid, port, alloc_file, handle = start()
            self.measure(case, label, pid, port, tokens, alloc_file=alloc_file)
            self.procs.stop(handle)
        done = {c[0] for c in rounded}
        for case, name, opts, label, tokens, warm in ours:
            if case not in CASES and case != "c0":
                continue
            if case in done:
                continue
            p, port = self.start_proxy(name, **opts)
            self.measure(case, label, p.pid, port, tokens, warm=warm, alloc_file=p.alloc_file)
            self.procs.stop(p)
        if "f" in CASES and shutil.which("node"):
            port = free_port()
            env = dict(os.environ, PORT=str(port), UPSTREAM_PORT=str(self.up_port),
                       CLERK_API_URL=self.clerk, CLERK_MACHINE_SECRET_KEY=self.api_key,
                       CLERK_SECRET_KEY="sk_test_emulator", CLERK_TELEMETRY_DISABLED="1")
            log = os.path.join(self.work, "node.log")
            node_allocs = os.path.join(self.work, "node.allocs")
            p = self.procs.start(["node", NODE_PEER], cpu=CPU_TESTED, env=env,
                                 stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                 alloc_file=node_allocs)
            wait_for_port(port)
            self.measure("f", "Node proxy (@clerk/backend + LRU)", p.pid, port, opaque,
                         alloc_file=node_allocs)
            self.procs.stop(p)
        if "g" in CASES:
            self.gateway_case(opaque)
        if "h" in CASES or "fleet" in CASES:
            self.start_redis()
        if "h" in CASES:
            self.shared_hit_case(opaque)
        if "fleet" in CASES:
            self.fleet = self.fleet_case()
        self.memory = self.memory_bench() if MEMORY else {}
        self.write_results()

    def start_redis(self):
        self.redis_sock = os.path.join(self.work, "redis.sock")
        self.procs.start(["redis-server", "--port", "0", "--unixsocket", self.redis_sock,
                          "--dir", self.work, "--save", "", "--appendonly", "no"],
                         cpu=CPU_LOAD, stdout=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not os.path.exists(self.redis_sock) and time.time() < deadline:
            time.sleep(0.05)

    def shared_cache_yaml(self, max_entries=None):
        extra = f"  max_entries: {max_entries}\n" if max_entries else ""
        return extra + f"""  shared:
    redis_url: "unix://{self.redis_sock}"
"""

    def shared_hit_case(self, tokens):
        """Case h: a local cache of one entry, so that each request with 100 rotating tokens is a
        local miss that the (warm) shared cache answers: what a shared-cache hit costs."""
        p, port = self.start_proxy("shared-hit", cache_extra=self.shared_cache_yaml(1))
        self.measure("h", "clerk-m2m-proxy, opaque, local miss + shared-cache (Redis) hit", p.pid,
                     port, tokens, alloc_file=p.alloc_file)
        self.procs.stop(p)

    def fleet_case(self, proxies=4, count=200):
        """Clerk calls for `count` new tokens each sent once to each of `proxies` processes."""
        import http.client
        out = {}
        for shared in (False, True):
            fleet = [self.start_proxy(f"fleet-{shared}-{i}", cpu=None,
                                      cache_extra=self.shared_cache_yaml() if shared else "")
                     for i in range(proxies)]
            tokens = [l.strip() for l in open(self.mint(count, "opaque")) if l.strip()]
            self.set_latency(0)
            before = self.clerk_stats()["verify_calls"]
            bad = 0
            conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                     for _, port in fleet]
            for t in tokens:
                for c in conns:
                    c.request("GET", "/", headers={"Authorization": "Bearer " + t})
                    r = c.getresponse()
                    r.read()
                    bad += r.status != 200
                time.sleep(0.002)  # the first proxy's write to Redis is asynchronous
            out["shared" if shared else "local"] = {
                "calls": self.clerk_stats()["verify_calls"] - before, "requests": count * proxies,
                "non200": bad}
            self.set_latency(LATENCY_MS)
            for p, _ in fleet:
                self.procs.stop(p)
        print(f"  fleet: {out}", flush=True)
        return out

    def gateway_case(self, tokens):
        """Case g: the documented nginx auth_request config in front of the upstream, asking
        clerk-m2m-proxy in forward_auth mode; both on the tested CPU, both measured."""
        auth, auth_port = self.start_proxy("forward-auth", mode="forward_auth")
        port = free_port()
        with open(os.path.join(ROOT, "docs", "gateways", "nginx.conf")) as f:
            server = f.read()
        server = (server.replace("listen 8000;", f"listen 127.0.0.1:{port};")
                  .replace("127.0.0.1:8080", f"127.0.0.1:{auth_port}")
                  .replace("127.0.0.1:3000", f"127.0.0.1:{self.up_port}"))
        conf = self.nginx("gateway", server)
        nginx_allocs = os.path.join(self.work, "nginx-gateway.allocs")
        master = self.procs.start(["nginx", "-p", self.work, "-c", conf], cpu=CPU_TESTED,
                                  stdout=subprocess.DEVNULL, alloc_file=nginx_allocs)
        wait_for_port(port)
        worker = int(subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True,
                                    text=True).stdout.split()[0])
        self.measure("g", "nginx auth_request + clerk-m2m-proxy forward_auth, opaque, warm",
                     [worker, auth.pid], port, tokens,
                     alloc_file=[nginx_allocs, auth.alloc_file])
        self.procs.stop(master)
        self.procs.stop(auth)

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
            f"Parameters: wrk {WRK_THREADS} thread(s), {CONNECTIONS} connections, {DURATION} s per "
            f"case after a {WARMUP} s warm-up, `GET /` with {TOKENS} rotating tokens, upstream nginx "
            f"returning a {len(UPSTREAM_BODY)}-byte body over keep-alive, Clerk emulator latency "
            f"{LATENCY_MS} ms. Each process under test has one core (CPU {CPU_TESTED}) and one "
            f"worker / event loop; wrk, upstream and emulator run on CPU {CPU_LOAD}.",
            "Ratios are to case (b), nginx as a plain reverse proxy, in the same run. Allocations: "
            "heap allocation calls per request (LD_PRELOAD counter, `bench/alloc_count.c`); "
            f"syscalls: per request over a separate {STRACE_SECONDS} s run under `strace -c -f`. "
            "Busy: the share of its core the process under test used (req/s × CPU per request); "
            "well below 100%, the load side on the other core set the pace, and req/s compares "
            "the load generator more than the proxies: compare CPU µs/req then.",
            "",
            "| case | req/s | × nginx | p50 ms | p99 ms | × nginx p99 | non-2xx | Clerk calls "
            "| CPU µs/req | × nginx CPU | busy | allocs/req | syscalls/req | peak RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]

        def ratio(x, y):
            return f"{x / y:.2f}" if y and y == y and x == x and y > 0 else "–"

        def num(x, fmt):
            return "–" if x != x else format(x, fmt)

        def busy(r):
            # The share of its one core the process under test used: well below 100% means the
            # load side (wrk, upstream, emulator on the other core) set the pace, not this case.
            x = r["rps"] * r["cpu_us_per_req"] / 1e4
            return "–" if x != x else f"{x:.0f}%"

        for case in ["a", "b", "c0", "c", "cl", "d", "e", "e1", "f", "g", "h"]:
            r = self.results.get(case)
            if not r:
                continue
            lines.append(
                f"| ({case}) {r['label']} | {r['rps']:.0f} | {ratio(r['rps'], b['rps']) if b else '–'} "
                f"| {r['p50']:.2f} | {r['p99']:.2f} | {ratio(r['p99'], b['p99']) if b else '–'} "
                f"| {r['non2xx'] + r['errors']} | {r['clerk_calls']} "
                f"| {num(r['cpu_us_per_req'], '.1f')}"
                + (" (" + " + ".join(f"{x:.1f}" for x in r["cpu_parts"]) + ")"
                   if r.get("cpu_parts") else "") + " "
                f"| {ratio(r['cpu_us_per_req'], b['cpu_us_per_req']) if b else '–'} "
                f"| {busy(r)} "
                f"| {num(r['allocs_per_req'], '.1f')} | {num(r['syscalls_per_req'], '.2f')} "
                f"| {num(r['rss_mib'], '.1f')} |")
        paired = [(c, self.results[c]) for c in ["b", "c0", "c", "cl", "e"]
                  if c in self.results and self.results[c].get("rounds")]
        if paired:
            names = " ".join(f"({c})" for c, _ in paired)
            order = " ".join(c for c, _ in paired)
            rev = " ".join(c for c, _ in reversed(paired))
            lines += ["", f"{names} ran in {len(paired[0][1]['rounds'])} rounds of alternating "
                      f"order ({order}, {rev}, …), all proxies up throughout; their rows are means "
                      "(p50/p99: medians). req/s per round: " + "; ".join(
                          f"({c}) " + ", ".join(f"{x:.0f}" for x in r["rounds"])
                          for c, r in paired) + "."]
        breakdown = [(c, self.results[c]) for c in ["b", "c0", "c", "f", "g"]
                     if c in self.results and self.results[c].get("syscalls")]
        if breakdown:
            lines += ["", "## Syscalls per request (strace -c -f)", ""]
            for case, r in breakdown:
                top = ", ".join(f"{k} {v:.2f}" for k, v in list(r["syscalls"].items())[:8])
                lines.append(f"- ({case}) {r['label']}: {top}")
        fleet = getattr(self, "fleet", None)
        if fleet:
            lines += ["", "## Shared cache: Clerk calls of a fleet", "",
                      f"4 proxy processes, {fleet['local']['requests'] // 4} new opaque tokens, "
                      "each sent once to every process (no Clerk latency):", "",
                      f"- local caches only: {fleet['local']['calls']} Clerk calls for "
                      f"{fleet['local']['requests']} requests ({fleet['local']['non200']} non-200)",
                      f"- with `cache.shared` (Redis): {fleet['shared']['calls']} Clerk calls for "
                      f"{fleet['shared']['requests']} requests ({fleet['shared']['non200']} non-200)"]
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
