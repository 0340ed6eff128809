#!/usr/bin/env bash
# Contract test: the official @clerk/backend SDK (pinned) against clerk-emulator.
#
#   bash tests/contract/run.sh <path-to-clerk-emulator>
#
# Installs @clerk/backend into a cache directory once (CLERK_CONTRACT_CACHE, default
# $HOME/.cache/clerk-m2m-proxy/contract, else next to the emulator binary), starts the emulator
# on 127.0.0.1:0 with two scoped machines, runs contract.mjs against it, and stops the emulator
# on every exit path. Prints "N passed, 0 failed" on success.
set -euo pipefail

SDK_VERSION=3.25.0
EMULATOR=${1:?usage: run.sh <path-to-clerk-emulator>}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "contract: $tool not found (Node.js >= 20 is needed for the contract test)" >&2
        exit 1
    fi
done
if [[ ! -x "$EMULATOR" ]]; then
    echo "contract: emulator not executable: $EMULATOR" >&2
    exit 1
fi

# --- 1. The SDK, installed once per cache directory (idempotent). -------------------------------
if [[ -n "${CLERK_CONTRACT_CACHE:-}" ]]; then
    CACHE=$CLERK_CONTRACT_CACHE
elif [[ -n "${HOME:-}" ]] && mkdir -p "$HOME/.cache/clerk-m2m-proxy/contract" 2>/dev/null; then
    CACHE=$HOME/.cache/clerk-m2m-proxy/contract
else
    CACHE=$(cd "$(dirname "$EMULATOR")" && pwd)/contract-cache
fi
mkdir -p "$CACHE"
installed_version() {
    node -e 'try { console.log(require(process.argv[1]).version) } catch { console.log("") }' \
        "$CACHE/node_modules/@clerk/backend/package.json"
}
if [[ "$(installed_version)" != "$SDK_VERSION" ]]; then
    (
        # Serialise concurrent runs (parallel ctest, several build trees) on one cache.
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$CACHE/.install.lock"
            flock 9
        fi
        if [[ "$(installed_version)" != "$SDK_VERSION" ]]; then
            [[ -f "$CACHE/package.json" ]] ||
                echo '{"name":"clerk-m2m-proxy-contract-cache","private":true}' >"$CACHE/package.json"
            echo "contract: installing @clerk/backend@$SDK_VERSION into $CACHE" >&2
            npm install --prefix "$CACHE" --no-audit --no-fund --loglevel=error \
                "@clerk/backend@$SDK_VERSION" >&2
        fi
    )
fi

# --- 2. The emulator on port 0, stopped on every exit path. -------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/clerk-contract.XXXXXX")
EMU_PID=""
NODE_PID=""
cleanup() {
    if [[ -n "$NODE_PID" ]]; then
        kill -TERM "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [[ -n "$EMU_PID" ]]; then
        kill -TERM "$EMU_PID" 2>/dev/null || true
        wait "$EMU_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$EMULATOR" --listen 127.0.0.1:0 --machine contract-a --machine contract-b \
    >"$WORK/stdout" 2>"$WORK/stderr" &
EMU_PID=$!

# Startup output: one "listening on" line, then one JSON line per machine (3 lines).
deadline=$((SECONDS + 20))
while [[ $(wc -l <"$WORK/stdout") -lt 3 ]]; do
    if ! kill -0 "$EMU_PID" 2>/dev/null || ((SECONDS > deadline)); then
        echo "contract: emulator did not start" >&2
        cat "$WORK/stdout" "$WORK/stderr" >&2
        exit 1
    fi
    sleep 0.05
done
API_URL=$(sed -n 's/^clerk-emulator listening on \(http:\/\/.*\)$/\1/p' "$WORK/stdout" | head -n1)
MACHINES=$(grep '^{"machine"' "$WORK/stdout")
if [[ -z "$API_URL" || $(printf '%s\n' "$MACHINES" | wc -l) -ne 2 ]]; then
    echo "contract: unexpected emulator output:" >&2
    cat "$WORK/stdout" >&2
    exit 1
fi

# --- 3. The SDK against the emulator. -----------------------------------------------------------
# In the background + wait, so that INT/TERM traps run at once instead of after node exits.
status=0
CLERK_TELEMETRY_DISABLED=1 CLERK_SDK_DIR="$CACHE" CLERK_SDK_VERSION="$SDK_VERSION" \
    EMULATOR_URL="$API_URL" EMULATOR_MACHINES="$MACHINES" \
    node "$HERE/contract.mjs" &
NODE_PID=$!
wait "$NODE_PID" || status=$?
NODE_PID=""

# --- 4. The emulator must exit 0 on SIGTERM. -----------------------------------------------------
kill -TERM "$EMU_PID"
emu_status=0
wait "$EMU_PID" || emu_status=$?
EMU_PID=""
if [[ $emu_status -ne 0 ]]; then
    echo "contract: emulator exited with status $emu_status on SIGTERM" >&2
    cat "$WORK/stderr" >&2
    status=1
fi
if [[ $status -ne 0 && -s "$WORK/stderr" ]]; then
    echo "contract: emulator stderr:" >&2
    cat "$WORK/stderr" >&2
fi
exit "$status"
