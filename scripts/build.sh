#!/usr/bin/env bash
# Configures and builds into build/<variant> with Ninja (and ccache when present).
#   scripts/build.sh [release|asan|tsan|fuzz] [ninja targets...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-release}
shift || true
args=(-G Ninja -S "$root" -B "$root/build/$variant" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
case "$variant" in
  release) ;;
  asan) args+=(-DCLERK_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug) ;;
  tsan) args+=(-DCLERK_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  fuzz) args+=(-DCLERK_FUZZ=ON -DCLERK_SANITIZE=address -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "build.sh: unknown variant $variant" >&2; exit 2 ;;
esac
export CCACHE_NOHASHDIR=true CCACHE_BASEDIR="$root" CCACHE_SLOPPINESS=time_macros
if [ ! -f "$root/build/$variant/build.ninja" ]; then
  cmake "${args[@]}" >/dev/null
fi
cmake --build "$root/build/$variant" -- "$@"
