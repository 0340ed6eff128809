#!/usr/bin/env bash
# Streams 1 GiB through clerk-m2m-proxy in each direction (upload: chunked request body,
# download: Content-Length response body) and reports the proxy's peak RSS (VmHWM).
# Pass criterion (issue #3): peak RSS < 64 MiB. Loopback only, bounded in time, cleans up.
#
#   bench/stream_rss.sh [path/to/clerk-m2m-proxy]      (default: build/release, then build/dp)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
  for b in "$root/build/release/proxy/clerk-m2m-proxy" "$root/build/dp/proxy/clerk-m2m-proxy"; do
    [ -x "$b" ] && bin=$b && break
  done
fi
[ -x "${bin:-}" ] || { echo "stream_rss: clerk-m2m-proxy binary not found" >&2; exit 2; }
size=$((1024 * 1024 * 1024))
limit_kib=$((64 * 1024))

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A sink/source upstream: discards request bodies, answers GET /download/N with N bytes.
cat > "$work/upstream.py" <<'PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def read_chunked(self):
        n = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return n
            while size > 0:
                got = len(self.rfile.read(min(size, 1 << 20)))
                if got == 0:
                    raise EOFError
                size -= got; n += got
            self.rfile.readline()
    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            n = self.read_chunked()
        else:
            n, left = 0, int(self.headers.get("Content-Length", "0"))
            while left > 0:
                got = len(self.rfile.read(min(left, 1 << 20))); left -= got; n += got
        body = str(n).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        n = int(self.path.rsplit("/", 1)[1])
        self.send_response(200); self.send_header("Content-Length", str(n)); self.end_headers()
        chunk = b"x" * (1 << 20)
        while n > 0:
            k = min(n, len(chunk)); self.wfile.write(chunk[:k]); n -= k
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$work/upstream.py" > "$work/upstream.port" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/upstream.port" ] && break; sleep 0.05; done
up_port=$(cat "$work/upstream.port")

cat > "$work/proxy.yaml" <<YAML
listen: "127.0.0.1:0"
upstream:
  url: "http://127.0.0.1:$up_port"
  timeout: 120s
clerk:
  api_url: "http://127.0.0.1:1"
  machine_secret_key: "ak_bench"
admin:
  listen: ""
log:
  access_log: false
routes:
  - path: /*
    auth: none
YAML
"$bin" --config "$work/proxy.yaml" 2> "$work/proxy.log" &
proxy_pid=$!
pids+=($proxy_pid)
for _ in $(seq 200); do grep -q '"msg":"listening on' "$work/proxy.log" 2>/dev/null && break; sleep 0.05; done
port=$(grep -o '"msg":"listening on 127.0.0.1:[0-9]*' "$work/proxy.log" | grep -o '[0-9]*$')
[ -n "$port" ] || { cat "$work/proxy.log"; exit 1; }

echo "proxy pid $proxy_pid on :$port, upstream :$up_port, streaming $((size >> 20)) MiB each way"
start=$(date +%s.%N)
up_bytes=$(head -c "$size" /dev/zero | timeout 300 curl -sS --fail -X POST -T - \
  -H 'Content-Type: application/octet-stream' "http://127.0.0.1:$port/upload")
mid=$(date +%s.%N)
down_bytes=$(timeout 300 curl -sS --fail -o /dev/null -w '%{size_download}' \
  "http://127.0.0.1:$port/download/$size")
end=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$proxy_pid/status")
printf 'upload:   %s bytes received by upstream in %.1fs\n' "$up_bytes" "$(echo "$mid - $start" | bc)"
printf 'download: %s bytes received by client in %.1fs\n' "$down_bytes" "$(echo "$end - $mid" | bc)"
echo "proxy peak RSS (VmHWM): $((hwm / 1024)) MiB ($hwm KiB); limit $((limit_kib / 1024)) MiB"
[ "$up_bytes" = "$size" ] && [ "$down_bytes" = "$size" ] || { echo "FAIL: byte counts"; exit 1; }
[ "$hwm" -lt "$limit_kib" ] || { echo "FAIL: peak RSS over limit"; exit 1; }
echo "PASS"
