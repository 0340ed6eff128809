#!/usr/bin/env bash
# The README's run command: installs what is missing, builds, then starts the Clerk emulator, a
# demo upstream and clerk-m2m-proxy with deploy/examples/demo.yaml, mints tokens through the
# emulator and prints ready-to-paste curl commands. Ctrl-C stops everything.
#   Ports (loopback only): proxy 8080, admin 9901, emulator 8090, upstream 3000; override with
#   DEMO_PROXY_PORT, DEMO_ADMIN_PORT, DEMO_CLERK_PORT, DEMO_UPSTREAM_PORT.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
proxy_port=${DEMO_PROXY_PORT:-8080}
admin_port=${DEMO_ADMIN_PORT:-9901}
clerk_port=${DEMO_CLERK_PORT:-8090}
upstream_port=${DEMO_UPSTREAM_PORT:-3000}

scripts/install-deps.sh build test
echo "building (first build takes a few minutes)..."
scripts/build.sh release clerk-m2m-proxy clerk-emulator >/dev/null
bin=build/release

work=$(mktemp -d)
pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  echo "demo stopped"
}
trap cleanup EXIT INT TERM

wait_for() {  # file regex seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

"$bin/tests/emulator/clerk-emulator" --listen "127.0.0.1:$clerk_port" \
  --machine demo-client --machine demo-api >"$work/emulator.out" 2>&1 &
pids+=($!)
wait_for "$work/emulator.out" 'listening on http' 10
client_key=$(grep '"name":"demo-client"' "$work/emulator.out" | sed -E 's/.*"secret_key":"([^"]+)".*/\1/')
api_key=$(grep '"name":"demo-api"' "$work/emulator.out" | sed -E 's/.*"secret_key":"([^"]+)".*/\1/')
client_id=$(grep '"name":"demo-client"' "$work/emulator.out" | sed -E 's/.*"id":"([^"]+)".*/\1/')

python3 scripts/demo_upstream.py "$upstream_port" >"$work/upstream.out" 2>&1 &
pids+=($!)

sed -e "s/127.0.0.1:8080/127.0.0.1:$proxy_port/; s/127.0.0.1:9901/127.0.0.1:$admin_port/" \
    -e "s#http://127.0.0.1:3000#http://127.0.0.1:$upstream_port#" \
    deploy/examples/demo.yaml >"$work/demo.yaml"
CLERK_API_URL="http://127.0.0.1:$clerk_port" CLERK_MACHINE_SECRET_KEY="$api_key" \
  "$bin/proxy/clerk-m2m-proxy" --config "$work/demo.yaml" >"$work/proxy.log" 2>&1 &
pids+=($!)
wait_for "$work/proxy.log" 'admin listening on' 10

mint() {
  curl -fsS -X POST "http://127.0.0.1:$clerk_port/m2m_tokens" \
    -H "Authorization: Bearer $client_key" -H 'Clerk-API-Version: 2026-05-12' \
    -H 'Content-Type: application/json' -d "$1"
}
token_json=$(mint '{"seconds_until_expiration":3600,"claims":{"team":"demo"},"token_format":"opaque"}')
token=$(sed -E 's/.*"token":"([^"]+)".*/\1/' <<<"$token_json")
revoked_json=$(mint '{"seconds_until_expiration":3600,"claims":null,"token_format":"opaque"}')
revoked=$(sed -E 's/.*"token":"([^"]+)".*/\1/' <<<"$revoked_json")
revoked_id=$(sed -E 's/.*"id":"([^"]+)".*/\1/' <<<"$revoked_json")
curl -fsS -X POST "http://127.0.0.1:$clerk_port/m2m_tokens/$revoked_id/revoke" \
  -H "Authorization: Bearer $client_key" -H 'Clerk-API-Version: 2026-05-12' \
  -H 'Content-Type: application/json' -d '{"revocation_reason":"demo"}' >/dev/null

cat <<MSG

clerk-m2m-proxy demo is running (logs in $work/proxy.log).
  proxy    http://127.0.0.1:$proxy_port   (upstream: demo echo on 127.0.0.1:$upstream_port)
  admin    http://127.0.0.1:$admin_port/metrics
  Clerk    emulator on http://127.0.0.1:$clerk_port  (calling machine: $client_id)

Allowed (the upstream echoes the identity headers it received; no Authorization reaches it):
  curl -i http://127.0.0.1:$proxy_port/hello -H 'Authorization: Bearer $token'

Refused, no token (401 missing_token):
  curl -i http://127.0.0.1:$proxy_port/hello

Refused, revoked token (401 invalid_token, reason revoked):
  curl -i http://127.0.0.1:$proxy_port/hello -H 'Authorization: Bearer $revoked'

Refused, spoofed identity without a token (401; the header would be stripped anyway):
  curl -i http://127.0.0.1:$proxy_port/hello -H 'X-Clerk-Machine-Id: mch_evil'

Metrics: curl -s http://127.0.0.1:$admin_port/metrics | grep clerk_proxy_
Press Ctrl-C to stop.
MSG
if [ "${DEMO_EXIT_AFTER_START:-0}" = 1 ]; then
  curl -fsS "http://127.0.0.1:$proxy_port/hello" -H "Authorization: Bearer $token"
  exit 0
fi
wait "${pids[2]}"
