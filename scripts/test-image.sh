#!/usr/bin/env bash
# Builds the container image from docker/Dockerfile with podman (context: the repository root)
# and runs it with traffic: tests/deploy/image_check.py. Called by scripts/test.sh after the
# release build (it needs build/release/tests/emulator/clerk-emulator).
#
#   scripts/test-image.sh            (CLERK_SKIP_IMAGE=1 in the test command skips it)
#
# Base images: `debian:bookworm` and `debian:bookworm-slim` are pulled when a registry answers;
# otherwise they are made locally with debootstrap (minbase; the -slim tag also drops docs, man
# pages and locales the way the official slim image does) and kept as a tarball in
# ${CLERK_IMAGE_CACHE:-~/.cache/clerk-m2m-proxy} for the next run. They are stored in podman's
# image store under the official names (that is how `--pull=never` resolves the Dockerfile's
# FROM lines), so later builds on this host use them until `podman pull debian:bookworm…`
# replaces them. Podman runs with a private containers.conf (runc, cgroupfs, no default ulimits:
# what works on this machine kind) and the host network; no system configuration is changed.
#
# Skips (exit 0, saying why) only when podman cannot run containers here and CI is not set; in CI
# a podman that cannot run is a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

image=localhost/clerk-m2m-proxy:test
cache=${CLERK_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clerk-m2m-proxy}
emulator=build/release/tests/emulator/clerk-emulator

skip() {
  if [ "${CI:-}" = true ]; then
    echo "image test: cannot run: $1" >&2
    exit 1
  fi
  echo "image test SKIPPED: $1"
  exit 0
}

scripts/install-deps.sh image || skip "podman could not be installed (scripts/install-deps.sh image)"
command -v podman >/dev/null || skip "podman is not installed"
[ -x "$emulator" ] || { echo "image test: $emulator missing (run scripts/build.sh release)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
export CONTAINERS_CONF="$work/containers.conf"
podman info >/dev/null 2>&1 || skip "podman info fails: $(podman info 2>&1 | tail -1)"

t0=$SECONDS
# --- Base images.
have_base() {
  podman image exists docker.io/library/debian:bookworm &&
    podman image exists docker.io/library/debian:bookworm-slim
}
if ! have_base; then
  for tag in bookworm bookworm-slim; do
    timeout 120 podman pull -q "docker.io/library/debian:$tag" >/dev/null 2>&1 || true
  done
fi
if ! have_base; then
  mkdir -p "$cache"
  full="$cache/debian-bookworm-minbase-v2.tar"
  slim="$cache/debian-bookworm-slim-v2.tar"
  if [ ! -s "$full" ] || [ ! -s "$slim" ]; then
    echo "image test: no registry; making debian:bookworm with debootstrap (cached in $cache)"
    rootfs="$work/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian \
      >"$work/debootstrap.log" 2>&1 || { cat "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/lib/apt/lists/*
    # As in the official images: apt keeps no package caches or downloaded .debs.
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
    tar -C "$rootfs" -cf "$full.tmp" . && mv "$full.tmp" "$full"
    # What the official -slim image leaves out, now and in every later apt-get install.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
    find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/{man,groff,info,lintian,linda,locale}/*
    tar -C "$rootfs" -cf "$slim.tmp" . && mv "$slim.tmp" "$slim"
    rm -rf "$rootfs"
  fi
  podman import -q "$full" docker.io/library/debian:bookworm >/dev/null
  podman import -q "$slim" docker.io/library/debian:bookworm-slim >/dev/null
fi
base_s=$((SECONDS - t0))

# --- Build, as a user would (docker build -f docker/Dockerfile .), never pulling.
t1=$SECONDS
if ! podman build --pull=never --network host -f docker/Dockerfile -t "$image" . \
    >"$work/build.log" 2>&1; then
  tail -40 "$work/build.log" >&2
  echo "image test: podman build failed" >&2
  exit 1
fi
build_s=$((SECONDS - t1))

# --- Size: the whole image, and gzip-compressed as a registry stores its layers.
bytes=$(podman image inspect --format '{{.Size}}' "$image")
podman save -q -o "$work/image.tar" "$image"
compressed=$(gzip -6 -c "$work/image.tar" | wc -c)
rm -f "$work/image.tar"
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
binary=$(podman run --rm --entrypoint stat "$image" -c %s /usr/local/bin/clerk-m2m-proxy)

# --- Run it.
python3 tests/deploy/image_check.py "$image" "$emulator" "$root"
echo "image: base ${base_s}s, build ${build_s}s; size $(mib "$bytes") ($(mib "$compressed") gzip-compressed), binary $(mib "$binary")"
