#!/usr/bin/env python3
"""What slow clients hold of each listener: N connections (default 2,000) that each send half a
request header and then nothing, against the catalog and the S3 gateway of one Floe (embedded
SQLite, defaults but the header timeout). Prints, per listener, how many of them the server still
holds open right after the header timeout, and 1 and 5 seconds later (goal: 0), and whether the
listener answers a normal request meanwhile.

    cargo build --bins
    python3 benches/slow_clients.py [N] [header_timeout_ms]
"""

import os
import re
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOE = os.environ.get("FLOE_BIN", os.path.join(ROOT, "target/debug/floe"))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
TIMEOUT_MS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000

# Both this script and the server it starts need a descriptor per connection.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * N + 1024)), hard))

work = tempfile.mkdtemp(prefix="floe-slow-")
env = dict(os.environ)
env.pop("RUST_LOG", None)
env["FLOE__LOG__LEVEL"] = "error"
for listener in ["SERVER", "GATEWAY"]:
    env[f"FLOE__{listener}__LIMITS__HEADER_TIMEOUT_MS"] = str(TIMEOUT_MS)
server = subprocess.Popen(
    [FLOE, "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", f"{work}/data"],
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    env=env,
    text=True,
)
uri = None
for line in server.stdout:
    match = re.search(r'uri="([^"]+)"', line)
    if match:
        uri = match.group(1)
        break
base = uri.rsplit("/catalog", 1)[0]
info = urllib.request.urlopen(f"{base}/management/v1/info").read().decode()
gateway = re.search(r'"s3-endpoint":"([^"]+)"', info).group(1)


def address(url):
    host, port = url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def held(socks):
    """How many of `socks` the server has not closed (nothing to read: no EOF, no reset)."""
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
    return len(socks) - len(poller.poll(0))


try:
    for name, url, probe in [("catalog", base, f"{base}/health"), ("gateway", gateway, None)]:
        socks = []
        started = time.monotonic()
        for _ in range(N):
            s = socket.create_connection(address(url), timeout=10)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        opened = time.monotonic() - started
        answered = None
        if probe:
            t = time.monotonic()
            answered = urllib.request.urlopen(probe, timeout=10).status
            answered = f"{answered} in {1000 * (time.monotonic() - t):.0f} ms"
        counts = []
        for at in [TIMEOUT_MS / 1000 + 0.5, TIMEOUT_MS / 1000 + 1.5, TIMEOUT_MS / 1000 + 5.5]:
            time.sleep(max(0, started + opened + at - time.monotonic()))
            counts.append((at, held(socks)))
        for s in socks:
            s.close()
        report = ", ".join(f"{c} held at +{a:.1f} s" for a, c in counts)
        print(f"{name}: {N} slow clients opened in {opened:.1f} s; {report}"
              + (f"; /health answered {answered} while they were open" if answered else ""))
finally:
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
