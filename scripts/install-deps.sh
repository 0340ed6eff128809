#!/usr/bin/env bash
# Installs what clerk-m2m-proxy needs on Debian bookworm. Idempotent: packages already present
# are skipped, so a second run costs a second or two.
#   scripts/install-deps.sh [build] [test] [bench] [fuzz] [image]     (default: build)
set -euo pipefail

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build)

want=()
for g in "${groups[@]}"; do
  case "$g" in
    build) want+=(g++ cmake ninja-build ccache pkg-config libboost1.81-dev libssl-dev
                  nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev libhiredis-dev libnghttp2-dev openssl ca-certificates) ;;
    test)  want+=(catch2 curl clang-format clang-tidy python3 python3-yaml python3-websockets python3-h2 python3-grpcio nghttp2-client nginx-light caddy
                  redis-server) ;;
    bench) want+=(wrk nginx-light curl util-linux procps time strace gcc valgrind) ;;
    fuzz)  want+=(clang libclang-rt-14-dev) ;;
    image) want+=(podman runc debootstrap gzip) ;;  # scripts/test-image.sh
    *) echo "install-deps: unknown group '$g' (build|test|bench|fuzz|image)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (contract test, bench): the machine image may ship them outside dpkg.
for g in "${groups[@]}"; do
  if [ "$g" = test ] || [ "$g" = bench ]; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
