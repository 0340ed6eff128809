#!/usr/bin/python3
"""HTTP/2 and gRPC through the real clerk-m2m-proxy binary (issue #18), with real peers:
the Clerk emulator, a gRPC server (Debian python3-grpcio, h2c), an HTTP/1.1 echo upstream, and
real clients (grpcio, curl's HTTP/2, python3-h2 for the SETTINGS check). Everything on loopback
with port 0; every process is stopped by PID.

    h2_grpc_test.py PROXY_BIN EMULATOR_BIN
"""
import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

PROXY, EMULATOR = sys.argv[1], sys.argv[2]
# Under ASan/TSan the RSS says nothing about the proxy (quarantine, shadow memory): the RSS
# checks run on the release build only; descriptor checks run everywhere.
SANITIZED = any(part in PROXY for part in ("/asan/", "/tsan/"))
work = tempfile.mkdtemp(prefix="h2-grpc-")
procs = []
failures = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + ("" if cond else f": {detail}"), flush=True)
    if not cond:
        failures.append(name)


def wait_line(path, pattern, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with open(path) as f:
                m = re.search(pattern, f.read())
            if m:
                return m
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    with open(path) as f:
        raise SystemExit(f"timed out waiting for {pattern!r} in {path}:\n{f.read()}")


def start(args, name):
    out = os.path.join(work, name + ".log")
    p = subprocess.Popen(args, stdout=open(out, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return out


# --- Clerk emulator, tokens
emu_log = start([EMULATOR, "--listen", "127.0.0.1:0", "--machine", "caller", "--machine", "api"],
                "emulator")
emu_port = int(wait_line(emu_log, r"listening on http://127.0.0.1:(\d+)").group(1))
with open(emu_log) as f:
    text = f.read()
keys = {m.group(1): m.group(2) for m in
        re.finditer(r'"name":"(\w+)"[^}]*?"secret_key":"([^"]+)"', text)}
if len(keys) < 2:
    keys = {}
    for line in text.splitlines():
        name = re.search(r'"name":"(\w+)"', line)
        key = re.search(r'"secret_key":"([^"]+)"', line)
        if name and key:
            keys[name.group(1)] = key.group(1)


def mint(scopes_claims=None):
    body = json.dumps({"seconds_until_expiration": 3600, "token_format": "opaque",
                       "claims": scopes_claims}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{emu_port}/m2m_tokens", data=body, headers={
        "Authorization": "Bearer " + keys["caller"], "Clerk-API-Version": "2026-05-12",
        "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())


minted = mint()
token, machine = minted["token"], minted["subject"]

# --- gRPC server (h2c): unary echo of the metadata it received, server streaming, a failing
# call, trailing metadata.


def metadata_of(context):
    return {k: v for k, v in context.invocation_metadata()}


def unary(request, context):
    context.set_trailing_metadata((("x-trailer", "yes"),))
    return json.dumps({"metadata": metadata_of(context), "request": request.decode()}).encode()


def stream(request, context):
    for i in range(int(request.decode())):
        yield f"message {i}".encode() * 100


def fails(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def upload(request_iterator, context):
    return str(sum(len(r) for r in request_iterator)).encode()


def slow(request, context):
    time.sleep(3)  # past the timeout proxy's upstream.timeout (1 s)
    return b"late"


server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=16))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
    "Fails": grpc.unary_unary_rpc_method_handler(fails),
    "Upload": grpc.stream_unary_rpc_method_handler(upload),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
}),))
grpc_port = server.add_insecure_port("127.0.0.1:0")
server.start()


# --- HTTP/1.1 echo upstream (every request's headers are kept in echo_seen)
echo_seen = []


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    self.rfile.readline() if False else None
                    break
                body += chunk
        headers = {k.lower(): v for k, v in self.headers.items()}
        echo_seen.append(headers)
        data = json.dumps({"method": self.command, "path": self.path, "body_len": len(body),
                           "headers": headers}).encode()
        if self.path.startswith("/big"):
            data = b"x" * (1 << 20)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # connections the proxy resets on purpose (slow-reader, stalled-body checks)


echo = QuietServer(("127.0.0.1", 0), Echo)
threading.Thread(target=echo.serve_forever, daemon=True).start()

# --- TLS certificate for the ALPN check
cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True,
               capture_output=True)


def proxy(name, upstream_url, extra="", upstream_extra="", listen_tls=False):
    cfg = os.path.join(work, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(f"""listen: "127.0.0.1:0"
http2: true
upstream:
  url: "{upstream_url}"
  timeout: 5s
{upstream_extra}
clerk:
  api_url: "http://127.0.0.1:{emu_port}"
  machine_secret_key: "{keys['api']}"
routes:
  - path: /test.Echo/Fails
    require_scopes: [mch_nobody]
  - path: /scoped
    require_scopes: [mch_nobody]
admin:
  listen: "127.0.0.1:0"
limits:
  max_concurrent_streams: 7
  max_header_bytes: 4096
log:
  format: text
  level: info
{extra}
""")
        if listen_tls:
            f.write(f'tls:\n  cert_file: "{cert}"\n  key_file: "{key}"\n')
    log = start([PROXY, "--config", cfg], name)
    return int(wait_line(log, r"listening on 127.0.0.1:(\d+)").group(1))


grpc_proxy = proxy("grpc-proxy", f"http://127.0.0.1:{grpc_port}", upstream_extra="  protocol: h2c")
http_proxy = proxy("http-proxy", f"http://127.0.0.1:{echo.server_address[1]}")
tls_proxy = proxy("tls-proxy", f"http://127.0.0.1:{echo.server_address[1]}", listen_tls=True)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]


def plain_proxy(name, body):
    cfg = os.path.join(work, name + ".yaml")
    with open(cfg, "w") as f:
        f.write(body)
    log = start([PROXY, "--config", cfg], name)
    port = int(wait_line(log, r"listening on 127.0.0.1:(\d+)").group(1))
    return port, procs[-1]


common = f"""clerk:
  api_url: "http://127.0.0.1:{emu_port}"
  machine_secret_key: "{keys['api']}"
admin:
  listen: ""
log:
  level: info
  access_log: false
threads: 1
"""
# forward_auth: every stream answered by the proxy itself (no upstream), for the stream-churn check
load_port, load_proc = plain_proxy("load-proxy", 'mode: forward_auth\nlisten: "127.0.0.1:0"\n'
                                   'http2: true\nlimits:\n  max_concurrent_streams: 100\n'
                                   + common.replace('listen: ""', 'listen: "127.0.0.1:0"'))
load_admin = int(wait_line(os.path.join(work, "load-proxy.log"),
                           r"admin listening on 127.0.0.1:(\d+)").group(1))


def wait_no_connections(seconds=10):
    """Until the load proxy reports no open client connection (its admin /metrics)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{load_admin}/metrics").read().decode()
        m = re.search(r"^clerk_proxy_active_connections (\d+)", text, re.M)
        if m and int(m.group(1)) == 0:
            return True
        time.sleep(0.05)
    return False
slow_port, slow_proc = plain_proxy("slow-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                                   f'upstream:\n  url: "http://127.0.0.1:{echo.server_address[1]}"\n'
                                   + common)


# upstream.protocol h2 (TLS + ALPN): to the TLS proxy above (which selects h2), and to a TLS
# listener without http2 (which selects http/1.1: 502).
tls_h1_port, _ = plain_proxy("tls-h1-proxy", 'listen: "127.0.0.1:0"\n'
                             f'upstream:\n  url: "http://127.0.0.1:{echo.server_address[1]}"\n'
                             f'tls:\n  cert_file: "{cert}"\n  key_file: "{key}"\n' + common)
h2tls_port, _ = plain_proxy("h2tls-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                            f'upstream:\n  url: "https://127.0.0.1:{tls_proxy}"\n  protocol: h2\n'
                            '  tls_verify: false\nauth:\n  forward_authorization: true\n' + common)
noalpn_port, _ = plain_proxy("noalpn-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                             f'upstream:\n  url: "https://127.0.0.1:{tls_h1_port}"\n  protocol: h2\n'
                             '  tls_verify: false\n' + common)


stall_port, _ = plain_proxy("stall-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                           f'upstream:\n  url: "http://127.0.0.1:{echo.server_address[1]}"\n'
                           'limits:\n  idle_timeout: 1s\n' + common)

class H2Upstream:
    """A minimal h2c upstream (python3-h2) that allows one stream per connection: answers 200
    "ok" (after 1 s for /slow) and records per connection its requests, the GOAWAY it received
    (error code) and whether it closed. With refuse_first, its first connection answers the first
    request with a GOAWAY that refuses it (last stream id 0)."""

    def __init__(self, refuse_first=False):
        self.refuse_first = refuse_first
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            rec = {"requests": 0, "goaway": None, "closed": False, "trailers": [], "bodies": []}
            self.conns.append(rec)
            threading.Thread(target=self.serve, args=(s, rec), daemon=True).start()

    def serve(self, s, rec):
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        c.local_settings = h2.settings.Settings(
            client=False, initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        lock = threading.Lock()
        paths = {}

        def answer(sid):
            with lock:
                try:
                    c.send_headers(sid, [(":status", "200"), ("content-length", "2")])
                    c.send_data(sid, b"ok", end_stream=True)
                    s.sendall(c.data_to_send())
                except (OSError, h2.exceptions.ProtocolError):
                    pass

        with lock:
            c.initiate_connection()
            s.sendall(c.data_to_send())
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                with lock:
                    events = c.receive_data(data)
                    s.sendall(c.data_to_send())
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        rec["requests"] += 1
                        paths[ev.stream_id] = dict(ev.headers).get(b":path")
                        if self.refuse_first and rec is self.conns[0]:
                            with lock:
                                c.close_connection(error_code=0, last_stream_id=0)
                                s.sendall(c.data_to_send())
                            paths[ev.stream_id] = b"refused"
                    elif isinstance(ev, h2.events.DataReceived):
                        rec["bodies"].append(ev.data)
                        with lock:
                            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                            s.sendall(c.data_to_send())
                    elif isinstance(ev, h2.events.TrailersReceived):
                        rec["trailers"].append(dict(ev.headers))
                    elif isinstance(ev, h2.events.StreamEnded):
                        if paths.get(ev.stream_id) == b"refused":
                            pass
                        elif paths.get(ev.stream_id) == b"/slow":
                            threading.Timer(1.0, answer, args=(ev.stream_id,)).start()
                        else:
                            answer(ev.stream_id)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        rec["goaway"] = ev.error_code
        except (OSError, h2.exceptions.ProtocolError):
            pass
        rec["closed"] = True
        s.close()


h2_upstream = H2Upstream()
h2_refusing = H2Upstream(refuse_first=True)
h2_refusing_port, _ = plain_proxy(
    "h2-refusing-proxy", 'listen: "127.0.0.1:0"\n'
    f'upstream:\n  url: "http://127.0.0.1:{h2_refusing.port}"\n  protocol: h2c\n' + common)
h2_both_port, _ = plain_proxy(
    "h2-both-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
    f'upstream:\n  url: "http://127.0.0.1:{h2_upstream.port}"\n  protocol: h2c\n' + common)
h2_pool_port, h2_pool_proc = plain_proxy(
    "h2-pool-proxy", 'listen: "127.0.0.1:0"\n'
    f'upstream:\n  url: "http://127.0.0.1:{h2_upstream.port}"\n  protocol: h2c\n'
    '  max_idle_connections: 1\n' + common)


# gRPC with an upstream.timeout shorter than the call (DEADLINE_EXCEEDED), and gRPC over TLS
# (ALPN h2) to the proxy with h2c to the server.
grpc_timeout_port, _ = plain_proxy("grpc-timeout-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                                   f'upstream:\n  url: "http://127.0.0.1:{grpc_port}"\n'
                                   '  protocol: h2c\n  timeout: 1s\n' + common)
grpc_tls_port, _ = plain_proxy("grpc-tls-proxy", 'listen: "127.0.0.1:0"\nhttp2: true\n'
                               f'upstream:\n  url: "http://127.0.0.1:{grpc_port}"\n'
                               '  protocol: h2c\n'
                               f'tls:\n  cert_file: "{cert}"\n  key_file: "{key}"\n' + common)


def fds(p):
    return len(os.listdir(f"/proc/{p.pid}/fd"))


def rss_kib(p):
    with open(f"/proc/{p.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
dead_proxy = proxy("dead-proxy", f"http://127.0.0.1:{dead_port}", upstream_extra="  protocol: h2c")


def curl(*args):
    r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code} %{http_version}", *args],
                       capture_output=True, text=True, timeout=30)
    body, _, tail = r.stdout.rpartition("\n")
    code, version = tail.split(" ")
    return int(code), version, body


try:
    auth = ("authorization", "Bearer " + token)
    # --- gRPC through the proxy (h2c both ways)
    ch = grpc.insecure_channel(f"127.0.0.1:{grpc_proxy}")
    call = ch.unary_unary("/test.Echo/Unary")
    resp, info = call.with_call(b"ping", metadata=(auth, ("x-clerk-machine-id", "mch_spoofed")),
                                timeout=10)
    got = json.loads(resp)
    md = got["metadata"]
    check("grpc unary: 200 through the proxy", got["request"] == "ping")
    check("grpc unary: the server sees the verified machine id as metadata",
          md.get("x-clerk-machine-id") == machine, md)
    check("grpc unary: the client's x-clerk-machine-id never reaches the server",
          "mch_spoofed" not in json.dumps(md), md)
    check("grpc unary: the token is not forwarded", "authorization" not in md, md)
    check("grpc unary: trailing metadata forwarded",
          ("x-trailer", "yes") in tuple(info.trailing_metadata()), info.trailing_metadata())
    msgs = list(ch.unary_stream("/test.Echo/Stream")(b"50", metadata=(auth,), timeout=10))
    check("grpc server streaming: 50 messages", len(msgs) == 50 and msgs[49].startswith(b"message 49"),
          len(msgs))
    total = ch.stream_unary("/test.Echo/Upload")(iter([b"a" * 100000] * 20), metadata=(auth,),
                                                 timeout=20)
    check("grpc client streaming: 2,000,000 bytes uploaded under flow control",
          total == b"2000000", total)

    def code_of(fn, *a, **kw):
        try:
            fn(*a, **kw)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details()

    code, details = code_of(call, b"x", timeout=10)
    check("grpc: no token -> UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED, code)
    check("grpc: grpc-message names the §6 error", details.startswith("missing_token"), details)
    code, details = code_of(call, b"x", metadata=(("authorization", "Bearer mt_nope"),), timeout=10)
    check("grpc: unknown token -> UNAUTHENTICATED invalid_token",
          code == grpc.StatusCode.UNAUTHENTICATED and details.startswith("invalid_token"),
          (code, details))
    code, details = code_of(ch.unary_unary("/test.Echo/Fails"), b"x", metadata=(auth,), timeout=10)
    check("grpc: missing scope -> PERMISSION_DENIED", code == grpc.StatusCode.PERMISSION_DENIED,
          (code, details))
    code, details = code_of(call, b"x", metadata=(auth, ("x-big", "y" * 5000)), timeout=10)
    check("grpc: header block over max_header_bytes -> RESOURCE_EXHAUSTED",
          code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details))
    dead = grpc.insecure_channel(f"127.0.0.1:{dead_proxy}")
    code, details = code_of(dead.unary_unary("/test.Echo/Unary"), b"x", metadata=(auth,), timeout=10)
    check("grpc: upstream down -> UNAVAILABLE", code == grpc.StatusCode.UNAVAILABLE, (code, details))
    # The upstream's own error status (trailers-only from the server) passes through: route
    # allows it here via a separate channel with a token that has the scope? The route requires
    # a scope nobody has, so call it on the unscoped path through a direct check instead.
    direct = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
    code, _ = code_of(direct.unary_unary("/test.Echo/Fails"), b"x", timeout=10)
    check("(peer sanity) the server's own NOT_FOUND", code == grpc.StatusCode.NOT_FOUND, code)

    code, details = code_of(ch.unary_unary("/test.Echo/a%2Fb"), b"x", metadata=(auth,),
                            timeout=10)
    check("grpc: a path the proxy refuses (encoded slash) -> INVALID_ARGUMENT bad_request",
          code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("bad_request"),
          (code, details))
    code, details = code_of(grpc.insecure_channel(f"127.0.0.1:{grpc_timeout_port}").unary_unary(
        "/test.Echo/Slow"), b"x", metadata=(auth,), timeout=10)
    check("grpc: no answer within upstream.timeout -> DEADLINE_EXCEEDED upstream_timeout",
          code == grpc.StatusCode.DEADLINE_EXCEEDED and details.startswith("upstream_timeout"),
          (code, details))

    # gRPC over TLS: the proxy terminates TLS (ALPN h2), h2c to the server.
    with open(cert, "rb") as f:
        tls_ch = grpc.secure_channel(f"localhost:{grpc_tls_port}",
                                     grpc.ssl_channel_credentials(root_certificates=f.read()))
    got = json.loads(tls_ch.unary_unary("/test.Echo/Unary")(b"over tls", metadata=(auth,),
                                                            timeout=10))
    check("grpc over TLS: the call answered, the identity visible to the server",
          got.get("request") == "over tls" and got["metadata"].get("x-clerk-machine-id") == machine,
          got)
    code, details = code_of(tls_ch.unary_unary("/test.Echo/Unary"), b"x", timeout=10)
    check("grpc over TLS: no token -> UNAUTHENTICATED", code == grpc.StatusCode.UNAUTHENTICATED,
          (code, details))
    msgs = list(tls_ch.unary_stream("/test.Echo/Stream")(b"20", metadata=(auth,), timeout=10))
    check("grpc over TLS: server streaming, 20 messages", len(msgs) == 20, len(msgs))

    # --- the upstream HTTP/2 pool: three concurrent requests on an upstream that allows one
    # stream per connection open three connections; the next request reuses one and retires
    # the idle ones beyond max_idle_connections (1) with a GOAWAY; at shutdown the rest get
    # theirs.
    def pool_get(path):
        req = urllib.request.Request(f"http://127.0.0.1:{h2_pool_port}{path}",
                                     headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        slow = list(pool.map(pool_get, ["/slow"] * 3))
    check("h2 upstream pool: 3 concurrent requests, 3 connections (1 stream each)",
          slow == [(200, b"ok")] * 3 and len(h2_upstream.conns) == 3,
          (slow, h2_upstream.conns))
    check("h2 upstream pool: the next request reuses a connection", pool_get("/fast") == (200, b"ok")
          and len(h2_upstream.conns) == 3, h2_upstream.conns)
    deadline = time.time() + 5
    while sum(1 for c in h2_upstream.conns if c["closed"]) < 1 and time.time() < deadline:
        time.sleep(0.05)
    retired = [c for c in h2_upstream.conns if c["closed"]]
    check("h2 upstream pool: one idle connection beyond max_idle_connections retired with "
          "GOAWAY (NO_ERROR)", len(retired) == 1 and retired[0]["goaway"] == 0,
          h2_upstream.conns)
    h2_pool_proc.terminate()
    h2_pool_proc.wait(timeout=20)
    deadline = time.time() + 5
    while not all(c["closed"] for c in h2_upstream.conns) and time.time() < deadline:
        time.sleep(0.05)
    check("h2 upstream pool: at shutdown every connection gets a GOAWAY, then closes",
          all(c["closed"] and c["goaway"] == 0 for c in h2_upstream.conns), h2_upstream.conns)

    # --- an upstream that refuses a stream with its GOAWAY (last stream id below it): the
    # request is sent once more on a fresh connection
    req = urllib.request.Request(f"http://127.0.0.1:{h2_refusing_port}/refused-once",
                                 headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        got = (r.status, r.read())
    check("a stream refused by the upstream's GOAWAY is retried on a fresh connection -> 200",
          got == (200, b"ok") and len(h2_refusing.conns) == 2
          and h2_refusing.conns[1]["requests"] == 1, (got, h2_refusing.conns))

    # --- request trailers: an HTTP/2 client's trailers reach an h2c upstream after the body
    n0 = len(h2_upstream.conns)
    sock = socket.create_connection(("127.0.0.1", h2_both_port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", "/with-trailers"), (":scheme", "http"),
                          (":authority", "x"), ("authorization", "Bearer " + token),
                          ("te", "trailers")])
    conn.send_data(1, b"payload")
    conn.send_headers(1, [("x-checksum", "c0ffee")], end_stream=True)
    sock.sendall(conn.data_to_send())
    sock.settimeout(10)
    status = None
    ended = False
    deadline = time.time() + 10
    while not ended and time.time() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status")
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                ended = True
        sock.sendall(conn.data_to_send())
    sock.close()
    recs = h2_upstream.conns[n0:]
    check("request trailers from an HTTP/2 client reach an h2c upstream",
          status == b"200" and any(t.get(b"x-checksum") == b"c0ffee"
                                   for r in recs for t in r["trailers"]), (status, recs))
    check("... after the body", any(b"".join(r["bodies"]) == b"payload" for r in recs), recs)

    # gRPC refusal over HTTP/1.1 (gRPC-Web style): 200 with grpc-status in the headers.
    r = subprocess.run(["curl", "-s", "-i", "--http1.1", "-H", "content-type: application/grpc-web",
                        f"http://127.0.0.1:{grpc_proxy}/test.Echo/Unary"], capture_output=True,
                       text=True, timeout=10)
    check("HTTP/1.1 gRPC-Web refusal: 200 + grpc-status 16",
          r.stdout.startswith("HTTP/1.1 200") and "grpc-status: 16" in r.stdout.lower(), r.stdout)

    # HTTP/1.1 client -> h2c upstream: a gRPC-framed unary call sent over HTTP/1.1 reaches the
    # gRPC server over HTTP/2 with the identity; its framed answer comes back (chunked).
    msg = b"over http/1.1"
    frame = b"\x00" + len(msg).to_bytes(4, "big") + msg
    req = urllib.request.Request(f"http://127.0.0.1:{grpc_proxy}/test.Echo/Unary", data=frame,
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/grpc", "TE": "trailers"})
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
        code = r.status
    got = json.loads(raw[5:]) if len(raw) > 5 else {}
    check("HTTP/1.1 client -> h2c upstream: 200 with the gRPC answer",
          code == 200 and got.get("request") == "over http/1.1", (code, raw[:80]))
    check("HTTP/1.1 client -> h2c upstream: the identity arrives as metadata",
          got.get("metadata", {}).get("x-clerk-machine-id") == machine, got)

    # --- HTTP/2 to an HTTP/1.1 upstream (curl, prior knowledge)
    code, version, body = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                               "-H", "X-Clerk-Machine-Id: mch_spoofed",
                               f"http://127.0.0.1:{http_proxy}/hello?q=1")
    seen = json.loads(body) if code == 200 else {}
    check("h2c prior knowledge: 200 over HTTP/2", code == 200 and version == "2", (code, version))
    check("h2c: identity injected, spoof removed",
          seen.get("headers", {}).get("x-clerk-machine-id") == machine, seen)
    check("h2c: path and query kept", seen.get("path") == "/hello?q=1", seen)
    upload_file = os.path.join(work, "upload.bin")
    with open(upload_file, "wb") as f:
        f.write(b"b" * 300000)
    code, version, body = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                               "--data-binary", "@" + upload_file,
                               f"http://127.0.0.1:{http_proxy}/upload")
    check("h2c: 300 KB request body streamed to the HTTP/1.1 upstream",
          code == 200 and json.loads(body).get("body_len") == 300000, (code, body[:200]))
    code, version, body = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                               f"http://127.0.0.1:{http_proxy}/big")
    check("h2c: 1 MiB response body", code == 200 and len(body) == (1 << 20), (code, len(body)))
    code, version, body = curl("--http2-prior-knowledge", f"http://127.0.0.1:{http_proxy}/hello")
    check("h2c: no token -> 401 JSON", code == 401 and '"missing_token"' in body, (code, body))
    code, version, body = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                               f"http://127.0.0.1:{http_proxy}/scoped")
    check("h2c: missing scope -> 403", code == 403 and '"insufficient_scope"' in body, (code, body))
    code, version, body = curl("--http2-prior-knowledge", "-H", "X-Big: " + "y" * 5000,
                               f"http://127.0.0.1:{http_proxy}/hello")
    check("h2c: header block over max_header_bytes -> 431", code == 431, (code, body))
    code, version, body = curl("--http1.1", "-H", "Authorization: Bearer " + token,
                               f"http://127.0.0.1:{http_proxy}/hello")
    check("HTTP/1.1 still served on the same port", code == 200 and version == "1.1",
          (code, version))
    code, version, body = curl("-k", "--http2", "-H", "Authorization: Bearer " + token,
                               f"https://127.0.0.1:{tls_proxy}/hello")
    check("TLS: ALPN h2 selected, 200", code == 200 and version == "2", (code, version))
    code, version, body = curl("-k", "--http1.1", "-H", "Authorization: Bearer " + token,
                               f"https://127.0.0.1:{tls_proxy}/hello")
    check("TLS: ALPN http/1.1 still served", code == 200 and version == "1.1", (code, version))

    # --- SETTINGS and REFUSED_STREAM (python3-h2 as a raw client). Eight streams are opened
    # before the server's SETTINGS is read (the client cannot know the limit yet): the proxy
    # serves seven and resets the eighth with REFUSED_STREAM (7).
    sock = socket.create_connection(("127.0.0.1", http_proxy))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for i in range(8):
        conn.send_headers(1 + 2 * i, [(":method", "GET"), (":path", "/big"), (":scheme", "http"),
                                      (":authority", "x"), ("authorization", "Bearer " + token)],
                          end_stream=True)
    sock.sendall(conn.data_to_send())
    settings = None
    refused = 0
    ended = 0
    deadline = time.time() + 15
    sock.settimeout(15)
    while refused + ended < 8 and time.time() < deadline:
        data = sock.recv(1 << 20)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged) and settings is None:
                settings = ev.changed_settings
            elif isinstance(ev, h2.events.StreamReset) and ev.error_code == 7:
                refused += 1
            elif isinstance(ev, h2.events.StreamEnded):
                ended += 1
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        sock.sendall(conn.data_to_send())
    mcs = settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS) if settings else None
    check("SETTINGS_MAX_CONCURRENT_STREAMS = limits.max_concurrent_streams",
          mcs is not None and mcs.new_value == 7, mcs)
    check("past max_concurrent_streams a stream is reset with REFUSED_STREAM",
          refused == 1 and ended == 7, (refused, ended))
    sock.close()

    # --- upstream.protocol h2: HTTP/2 over TLS, chosen by ALPN
    code, version, body = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                               f"http://127.0.0.1:{h2tls_port}/via-h2-tls")
    seen = json.loads(body) if code == 200 else {}
    check("upstream.protocol h2: HTTP/2 over TLS to an upstream that selects h2 -> 200",
          code == 200 and seen.get("path") == "/via-h2-tls", (code, body[:200]))
    code, version, body = curl("--http1.1", "-H", "Authorization: Bearer " + token,
                               f"http://127.0.0.1:{noalpn_port}/x")
    check("upstream.protocol h2: an upstream that does not select h2 -> 502 upstream_unavailable",
          code == 502 and "h2_not_negotiated" in body, (code, body))

    # --- forward-auth mode: a gRPC content type never turns a refusal into a 200 (a gateway
    # would read it as "allow")
    for proto in ("--http2-prior-knowledge", "--http1.1"):
        code, version, body = curl(proto, "-H", "content-type: application/grpc",
                                   f"http://127.0.0.1:{load_port}/protected")
        check(f"forward_auth ({proto}): gRPC request without token -> 401, never 200",
              code == 401, (code, body))

    # --- a request body that stops coming: the stream is answered 400 client_too_slow after
    # idle_timeout (1 s here), the upstream connection released
    sock = socket.create_connection(("127.0.0.1", stall_port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":path", "/stalled"), (":scheme", "http"),
                          (":authority", "x"), ("authorization", "Bearer " + token)])
    sock.sendall(conn.data_to_send())
    sock.settimeout(10)
    status = None
    started = time.time()
    while status is None and time.time() - started < 10:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status", b"").decode()
            elif isinstance(ev, h2.events.StreamReset):
                status = "reset"
        sock.sendall(conn.data_to_send())
    sock.close()
    check("a request body that stops coming -> 400 after idle_timeout", status == "400",
          (status, time.time() - started))

    # --- header smuggling: a field value with CR LF (or a name with upper case) must never
    # become a header line of the HTTP/1.1 upstream request.
    seen_before = len(echo_seen)
    sock = socket.create_connection(("127.0.0.1", http_proxy))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":path", "/smuggle"), (":scheme", "http"),
                          (":authority", "x"), ("authorization", "Bearer " + token),
                          ("x-evil", "a\r\nx-clerk-machine-id: mch_evil")], end_stream=True)
    conn.send_headers(3, [(":method", "GET"), (":path", "/smuggle"), (":scheme", "http"),
                          (":authority", "x"), ("authorization", "Bearer " + token),
                          ("X-Upper", "1")], end_stream=True)
    sock.sendall(conn.data_to_send())
    sock.settimeout(5)
    outcomes = {}
    deadline = time.time() + 5
    while len(outcomes) < 2 and time.time() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamReset):
                outcomes[ev.stream_id] = "reset"
            elif isinstance(ev, h2.events.ResponseReceived):
                outcomes[ev.stream_id] = dict(ev.headers).get(b":status", b"").decode()
        sock.sendall(conn.data_to_send())
    sock.close()
    smuggled = [h for h in echo_seen[seen_before:] if "mch_evil" in json.dumps(h)]
    check("a CR LF in an HTTP/2 field value never reaches the upstream as a header line",
          not smuggled and outcomes.get(1) in ("reset", "400"), (outcomes, smuggled))
    check("an upper-case HTTP/2 field name is refused", outcomes.get(3) in ("reset", "400"),
          outcomes)

    # --- 10,000 concurrent streams over 100 connections (h2load), then nothing left behind
    # The token is verified (and Clerk's keep-alive connection opened) before the baseline.
    code, _, _ = curl("--http2-prior-knowledge", "-H", "Authorization: Bearer " + token,
                      f"http://127.0.0.1:{load_port}/warm")
    wait_no_connections()
    time.sleep(0.5)  # not a wait for a result: only lets the scrape's admin connection close
    fd0 = fds(load_proc)

    def churn():
        r = subprocess.run(["h2load", "-n", "10000", "-c", "100", "-m", "100", "-t", "1", "-H",
                            "authorization: Bearer " + token, f"http://127.0.0.1:{load_port}/x"],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"status codes: (\d+) 2xx", r.stdout)
        wait_no_connections()
        # The scrape's own admin connection closes a moment after the answer.
        deadline = time.time() + 3
        while fds(load_proc) > fd0 and time.time() < deadline:
            time.sleep(0.05)
        return (int(m.group(1)) if m else -1), fds(load_proc), rss_kib(load_proc), r.stdout

    ok1, fd1, rss1, out = churn()
    check("10,000 concurrent streams over 100 connections: all answered 200", ok1 == 10000,
          out[-600:])
    check("after them the proxy holds exactly as many descriptors as before", fd1 == fd0,
          (fd0, fd1))
    # The allocator keeps the first run's peak (about 7 KiB per open stream) for reuse: a leak
    # shows as growth on the second, identical run.
    ok2, fd2, rss2, out = churn()
    check("a second identical run: all 200, descriptors back again", ok2 == 10000 and fd2 == fd0,
          (ok2, fd0, fd2))
    if not SANITIZED:
        check("a second identical run leaves the RSS where the first left it (+/- 8 MiB)",
              abs(rss2 - rss1) < 8 * 1024, (rss1, rss2))
    print(f"     (descriptors {fd0} -> {fd1} -> {fd2}, RSS after runs {rss1} -> {rss2} KiB)")
    text = urllib.request.urlopen(f"http://127.0.0.1:{load_admin}/metrics").read().decode()
    h2_requests = re.search(r"^clerk_proxy_http2_requests_total (\d+)", text, re.M)
    h2_conns = re.search(r"^clerk_proxy_http2_connections (-?\d+)", text, re.M)
    check("metrics: the 20,000 streams counted in clerk_proxy_http2_requests_total",
          h2_requests and int(h2_requests.group(1)) >= 20000, h2_requests and h2_requests.group(0))
    check("metrics: clerk_proxy_http2_connections back to 0",
          h2_conns and int(h2_conns.group(1)) == 0, h2_conns and h2_conns.group(0))

    # --- a client that never returns flow-control credit: 40 streams of 1 MiB each stop at
    # about one window per stream (64 KiB in the client's window + 64 KiB in the pipe); the rest
    # stays in the upstream and the kernel.
    rss0 = rss_kib(slow_proc)
    sock = socket.create_connection(("127.0.0.1", slow_port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.increment_flow_control_window(1 << 30)  # the connection window is wide open
    for i in range(40):
        conn.send_headers(1 + 2 * i, [(":method", "GET"), (":path", "/big"), (":scheme", "http"),
                                      (":authority", "x"), ("authorization", "Bearer " + token)],
                          end_stream=True)
    sock.sendall(conn.data_to_send())
    sock.settimeout(0.5)
    received = 0
    quiet_since = time.time()
    while time.time() - quiet_since < 2:
        try:
            data = sock.recv(1 << 20)
        except socket.timeout:
            continue
        if not data:
            break
        quiet_since = time.time()
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                received += len(ev.data)  # never acknowledged: no stream WINDOW_UPDATE
        sock.sendall(conn.data_to_send())
    rss1 = rss_kib(slow_proc)
    check("a non-reading client gets its 40 stream windows' worth and no more",
          40 * 65535 * 0.9 <= received <= 40 * 65535, received)
    if not SANITIZED:
        check("and the proxy's RSS grows by less than 40 x 2 windows + 8 MiB (not 40 MiB)",
              rss1 - rss0 < 40 * 128 + 8 * 1024, (rss0, rss1))
    print(f"     (received {received} bytes; RSS {rss0} -> {rss1} KiB)")
    sock.close()

    for name in ("grpc-proxy", "http-proxy"):
        with open(os.path.join(work, name + ".log")) as f:
            log = f.read()
        check(f"{name}: the token never appears in the log", token not in log)
        check(f"{name}: access lines name the client's protocol (HTTP/2 and HTTP/1.1)",
              "protocol=HTTP/2" in log and "protocol=HTTP/1.1" in log)
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    server.stop(0)
    echo.shutdown()
    if failures or os.environ.get("KEEP_WORK"):
        print("logs kept in", work)
    else:
        shutil.rmtree(work, ignore_errors=True)

print(f"{len(failures)} failure(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
