#!/usr/bin/env python3
"""Runs the built container image with traffic (called by scripts/test-image.sh).

    image_check.py IMAGE EMULATOR_BINARY SOURCE_DIR

On the host network, with a private work directory: starts the Clerk emulator and the demo
upstream (scripts/demo_upstream.py) on loopback with port 0, mounts a proxy config read-only at
the image's config path, runs the image as it ships (its USER, its ENTRYPOINT) with a read-only
root filesystem, and checks:
  - a valid M2M token -> 200, the upstream sees the identity headers and no Authorization;
    no token -> 401 missing_token; a spoofed X-Clerk-Machine-Id never reaches the upstream;
  - `--check` through the ENTRYPOINT: a good config prints "config ok" (exit 0), a bad one
    names the file, line and key (exit 2);
  - the process runs as uid 65532 and cannot write to its root filesystem;
  - SIGTERM (podman stop) -> exit code 0 within shutdown.drain_timeout (+ slack);
  - every library `ldd` reports for the binary inside the image resolves.
Prints one line per check and "N passed, M failed"; exits 1 on any failure. Every process it
starts is stopped by PID (or container name) on the way out.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

IMAGE, EMULATOR, SRC = sys.argv[1], sys.argv[2], sys.argv[3]
CONFIG_PATH = "/etc/clerk-m2m-proxy/config.yaml"  # docker/Dockerfile ENTRYPOINT
DRAIN_SECONDS = 3
passed, failed = 0, 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))


def wait_for_line(path_or_fn, pattern, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = path_or_fn() if callable(path_or_fn) else open(path_or_fn).read()
        m = re.search(pattern, text)
        if m:
            return m
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {pattern!r}")


def http(method, url, headers=None, body=None, timeout=10):
    req = urllib.request.Request(url, method=method, headers=headers or {},
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def podman(*args, check_rc=True, timeout=120):
    r = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {r.returncode}\n{r.stdout}{r.stderr}")
    return r


work = tempfile.mkdtemp(prefix="clerk-image-")
procs = []
container = f"clerk-m2m-proxy-test-{os.getpid()}"
# A SIGTERM (a timeout of the test command) still runs the cleanup below (`finally`).
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def cleanup():
    podman("rm", "-f", "-t", "0", container, check_rc=False)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(work, ignore_errors=True)  # the config holds a (test) machine key


try:
    # --- Peers: the Clerk emulator with two machines, the echo upstream.
    emu_out = os.path.join(work, "emulator.out")
    procs.append(subprocess.Popen(
        [EMULATOR, "--listen", "127.0.0.1:0", "--machine", "caller", "--machine", "service"],
        stdout=open(emu_out, "w"), stderr=subprocess.STDOUT))
    emu_port = int(wait_for_line(emu_out, r"listening on http://127\.0\.0\.1:(\d+)", 20)[1])
    machines = {}
    for line in open(emu_out).read().splitlines():
        if line.startswith("{"):
            m = json.loads(line)["machine"]
            machines[m["name"]] = m
    up_out = os.path.join(work, "upstream.out")
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(SRC, "scripts/demo_upstream.py"), "0"],
        stdout=open(up_out, "w"), stderr=subprocess.STDOUT))
    up_port = int(wait_for_line(up_out, r"listening on 127\.0\.0\.1:(\d+)", 20)[1])

    config = os.path.join(work, "config.yaml")
    with open(config, "w") as f:
        f.write(f"""listen: "127.0.0.1:0"
upstream:
  url: "http://127.0.0.1:{up_port}"
clerk:
  api_url: "http://127.0.0.1:{emu_port}"
  machine_secret_key: "${{CLERK_MACHINE_SECRET_KEY}}"
admin:
  listen: "127.0.0.1:0"
shutdown:
  drain_timeout: {DRAIN_SECONDS}s
log:
  format: json
""")
    os.chmod(config, 0o644)
    os.chmod(work, 0o755)
    mount = f"{config}:{CONFIG_PATH}:ro"
    env = ["-e", f"CLERK_MACHINE_SECRET_KEY={machines['service']['secret_key']}"]

    # --- --check through the ENTRYPOINT.
    r = podman("run", "--rm", "--network", "host", "-v", mount, *env, IMAGE, "--check",
               check_rc=False)
    check("--check through the entrypoint: config ok, exit 0",
          r.returncode == 0 and "config ok" in r.stdout + r.stderr, r.stdout + r.stderr)
    bad = os.path.join(work, "bad.yaml")
    with open(bad, "w") as f:
        f.write("upstream:\n  url: \"http://127.0.0.1:1\"\nclerk:\n  machine_secret_key: x\n"
                "cache:\n  ttl: soon\n")
    os.chmod(bad, 0o644)
    r = podman("run", "--rm", "--network", "host", "-v", f"{bad}:{CONFIG_PATH}:ro", IMAGE,
               "--check", check_rc=False)
    out = r.stdout + r.stderr
    check("--check of a bad config: exit 2 naming file, line and key",
          r.returncode == 2 and re.search(re.escape(CONFIG_PATH) + r":6: cache\.ttl", out)
          is not None, f"rc={r.returncode} {out}")

    # --- The image as it ships: its USER and ENTRYPOINT, read-only root filesystem.
    podman("run", "-d", "--name", container, "--network", "host", "--read-only", "-v", mount,
           *env, IMAGE)

    def logs():
        r = podman("logs", container, check_rc=False)
        return r.stdout + r.stderr

    port = int(wait_for_line(logs, r'"msg":"listening on 127\.0\.0\.1:(\d+)"', 30)[1])
    admin = int(wait_for_line(logs, r"admin listening on 127\.0\.0\.1:(\d+)", 30)[1])
    check("/readyz is 200", http("GET", f"http://127.0.0.1:{admin}/readyz")[0] == 200)

    caller_key = machines["caller"]["secret_key"]
    status, body = http("POST", f"http://127.0.0.1:{emu_port}/m2m_tokens",
                        {"Authorization": f"Bearer {caller_key}",
                         "Clerk-API-Version": "2026-05-12",
                         "Content-Type": "application/json"},
                        json.dumps({"seconds_until_expiration": 3600, "token_format": "opaque"}))
    token = json.loads(body)["token"]
    status, body = http("GET", f"http://127.0.0.1:{port}/hello",
                        {"Authorization": f"Bearer {token}", "X-Clerk-Machine-Id": "mch_evil"})
    seen = json.loads(body)["headers"] if status == 200 else {}
    seen_lower = {k.lower(): v for k, v in seen.items()}
    check("valid token: 200 with the caller's identity headers",
          status == 200 and seen_lower.get("x-clerk-machine-id") == machines["caller"]["id"]
          and seen_lower.get("x-clerk-token-type") == "m2m_token", f"{status} {body}")
    check("no Authorization and no spoofed identity reach the upstream",
          status == 200 and "authorization" not in seen_lower
          and "mch_evil" not in json.dumps(seen), body)
    status, body = http("GET", f"http://127.0.0.1:{port}/hello")
    check("no token: 401 missing_token", status == 401 and '"missing_token"' in body, body)
    check("the token never appears in the container's logs", token not in logs())

    # --- Hardening.
    top = podman("top", container, "user", "huser").stdout.split()
    check("runs as uid 65532", top[-2:] == ["65532", "65532"], " ".join(top))
    inspect = json.loads(podman("inspect", container).stdout)[0]
    check("root filesystem is read-only", inspect["HostConfig"]["ReadonlyRootfs"] is True)
    w = podman("exec", container, "/bin/sh", "-c", "echo x > /usr/local/bin/probe", check_rc=False)
    check("writing to the root filesystem fails", w.returncode != 0, w.stdout + w.stderr)
    ldd = podman("exec", container, "ldd", "/usr/local/bin/clerk-m2m-proxy", check_rc=False)
    check("every library ldd reports resolves in the image",
          ldd.returncode == 0 and "not found" not in ldd.stdout and "libssl" in ldd.stdout,
          ldd.stdout + ldd.stderr)

    # --- SIGTERM: drained, exit 0, within the drain time.
    t0 = time.monotonic()
    podman("stop", "-t", str(DRAIN_SECONDS + 10), container)
    took = time.monotonic() - t0
    code = json.loads(podman("inspect", container).stdout)[0]["State"]["ExitCode"]
    check(f"SIGTERM: exit 0 within the drain time ({took:.1f} s)",
          code == 0 and took < DRAIN_SECONDS + 5, f"exit {code} after {took:.1f} s\n{logs()}")
except Exception as e:  # a step that could not run is a failure, with its reason
    check("image check ran to the end", False, str(e))
finally:
    cleanup()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
