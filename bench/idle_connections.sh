#!/usr/bin/env bash
# Opens 10,000 concurrent keep-alive connections to clerk-m2m-proxy, each serving one request
# through to the upstream, holds them idle, measures the proxy's RSS, then sends a second
# request on every connection. Pass criterion (issue #3): RSS < 256 MiB and no errors.
# Loopback only, bounded in time, cleans up every process.
#
#   bench/idle_connections.sh [path/to/clerk-m2m-proxy] [connections]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
conns=${2:-10000}
if [ -z "$bin" ]; then
  for b in "$root/build/release/proxy/clerk-m2m-proxy" "$root/build/dp/proxy/clerk-m2m-proxy"; do
    [ -x "$b" ] && bin=$b && break
  done
fi
[ -x "${bin:-}" ] || { echo "idle_connections: clerk-m2m-proxy binary not found" >&2; exit 2; }
limit_kib=$((256 * 1024))

# Each side needs one descriptor per connection plus some slack.
need=$((conns + 1024))
if [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || { echo "idle_connections: ulimit -n $need not allowed (hard limit $(ulimit -Hn))" >&2; exit 2; }
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/upstream.py" <<'PY'
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY

cat > "$work/client.py" <<'PY'
import asyncio, sys
n, port, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

async def request(r, w):
    w.write(b"GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n")
    await w.drain()
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await r.readexactly(length)
    if status != 200:
        raise RuntimeError(f"status {status}")

async def main():
    sem = asyncio.Semaphore(200)
    conns, errors = [], []
    async def one():
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
                await request(r, w)
                conns.append((r, w))
            except Exception as e:
                errors.append(repr(e))
    await asyncio.gather(*(one() for _ in range(n)))
    print(f"open {len(conns)} errors {len(errors)} {errors[:3]}", flush=True)
    await asyncio.sleep(hold)
    errors2 = []
    async def again(r, w):
        async with sem:
            try:
                await request(r, w)
            except Exception as e:
                errors2.append(repr(e))
    await asyncio.gather(*(again(r, w) for r, w in conns))
    print(f"second {len(conns) - len(errors2)} errors {len(errors2)} {errors2[:3]}", flush=True)
    for r, w in conns:
        w.close()

asyncio.run(main())
PY

python3 "$work/upstream.py" > "$work/upstream.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/upstream.port" ] && break; sleep 0.05; done
up_port=$(cat "$work/upstream.port")

cat > "$work/proxy.yaml" <<YAML
listen: "127.0.0.1:0"
upstream:
  url: "http://127.0.0.1:$up_port"
clerk:
  api_url: "http://127.0.0.1:1"
  machine_secret_key: "ak_bench"
admin:
  listen: "127.0.0.1:0"
log:
  access_log: false
limits:
  max_connections: $((conns + 1000))
  idle_timeout: 120s
routes:
  - path: /*
    auth: none
YAML
"$bin" --config "$work/proxy.yaml" 2> "$work/proxy.log" &
proxy_pid=$!
pids+=($proxy_pid)
for _ in $(seq 200); do grep -q 'admin listening on' "$work/proxy.log" 2>/dev/null && break; sleep 0.05; done
port=$(grep -o '"msg":"listening on 127.0.0.1:[0-9]*' "$work/proxy.log" | grep -o '[0-9]*$')
admin=$(grep -o 'admin listening on 127.0.0.1:[0-9]*' "$work/proxy.log" | grep -o '[0-9]*$')
[ -n "$port" ] && [ -n "$admin" ] || { cat "$work/proxy.log"; exit 1; }
rss_before=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")

timeout 300 python3 "$work/client.py" "$conns" "$port" 5 > "$work/client.out" &
client_pid=$!
pids+=($client_pid)
for _ in $(seq 3000); do grep -q '^open' "$work/client.out" 2>/dev/null && break; sleep 0.1; done
opened=$(grep '^open' "$work/client.out" || true)
active=$(curl -s "http://127.0.0.1:$admin/metrics" | awk '/^clerk_proxy_active_connections/ {print $2}')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$proxy_pid/status")
wait "$client_pid" || true
second=$(grep '^second' "$work/client.out" || true)

echo "proxy RSS before: $((rss_before / 1024)) MiB"
echo "client: $opened"
echo "client: $second"
echo "active connections (metrics): $active"
echo "proxy RSS with $conns idle keep-alive connections: $((rss / 1024)) MiB ($rss KiB); limit $((limit_kib / 1024)) MiB"
case "$opened" in "open $conns errors 0"*) ;; *) echo "FAIL: connection errors"; exit 1 ;; esac
case "$second" in "second $conns errors 0"*) ;; *) echo "FAIL: errors on reuse"; exit 1 ;; esac
[ "$rss" -lt "$limit_kib" ] || { echo "FAIL: RSS over limit"; exit 1; }
echo "PASS"
