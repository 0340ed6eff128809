#!/usr/bin/env bash
# Configures and builds into build/<variant> with Ninja (and ccache when present).
#   scripts/build.sh [release|asan|tsan|fuzz] [ninja targets...]
# The project's own builds turn warnings into errors (CLERK_WERROR=ON); a user's plain
# `cmake -DCMAKE_BUILD_TYPE=Release` does not. Sanitizer builds carry line tables only (-g1):
# enough for every report's stack trace, and much less to compile, link and load.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
variant=${1:-release}
shift || true
args=(-G Ninja -S "$root" -B "$root/build/$variant" -DCLERK_WERROR=ON)
case "$variant" in
  release) args+=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) args+=(-DCLERK_SANITIZE=address -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1") ;;
  tsan) args+=(-DCLERK_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo
               "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG") ;;
  fuzz) args+=(-DCLERK_FUZZ=ON -DCLERK_SANITIZE=address -DCMAKE_CXX_COMPILER=clang++
               -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG") ;;
  *) echo "build.sh: unknown variant $variant" >&2; exit 2 ;;
esac
export CCACHE_NOHASHDIR=true CCACHE_BASEDIR="$root" CCACHE_SLOPPINESS=time_macros,pch_defines,include_file_mtime,include_file_ctime
cmake "${args[@]}" >/dev/null
cmake --build "$root/build/$variant" -- "$@"
