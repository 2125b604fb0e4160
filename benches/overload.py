#!/usr/bin/env python3
"""Overload: loadTable at a load the catalog carries, then at `--factor` times it, then at the
first load again; `/health`'s latency is sampled meanwhile.

Two kinds of load. By default a closed loop: `--cap` clients (also the in-flight cap,
`server.limits.max_requests_in_flight`), then factor x as many, each waiting for its answer; such a
load cannot overload a server (its queue is never longer than the number of clients), so it
shows what more clients cost. With `--rate R`, an open loop: R requests per second, then factor
x R, sent whatever the answers do (at most 4,096 outstanding), as independent clients arrive;
this is overload. `--pin` runs the server on CPU 0 and the load generator on CPU 1.

    cargo build --bins          # or --release, and --floe target/release/floe
    python3 benches/overload.py [--cap 16] [--seconds 15] [--factor 2] [--pin] [--rate R] [--max-queue-ms M]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

p = argparse.ArgumentParser()
p.add_argument("--floe", default=os.environ.get("FLOE_BIN", os.path.join(ROOT, "target/debug/floe")))
p.add_argument("--cap", type=int, default=16)
p.add_argument("--seconds", type=float, default=15)
p.add_argument("--factor", type=int, default=2, help="the overload: this many times the cap")
p.add_argument("--rate", type=float, default=None,
               help="open loop: send this many requests/s (then factor times it), at most 4,096 outstanding, "
                    "instead of --cap and factor x --cap clients that wait for their answers")
p.add_argument("--max-queue-ms", type=int, default=None,
               help="server.limits.max_queue_ms: requests that waited longer to be read get 503 (default: the server's)")
p.add_argument("--pin", action="store_true",
               help="run the server on CPU 0 and the load generator on CPU 1 (taskset), so that they do not share cores")
a = p.parse_args()
bench = os.path.join(os.path.dirname(a.floe), "floe-bench")
work = tempfile.mkdtemp(prefix="floe-overload-")
env = dict(os.environ)
env.pop("RUST_LOG", None)
env["FLOE__LOG__LEVEL"] = "error"
env["FLOE__SERVER__LIMITS__MAX_REQUESTS_IN_FLIGHT"] = str(a.cap)
if a.max_queue_ms is not None:
    env["FLOE__SERVER__LIMITS__MAX_QUEUE_MS"] = str(a.max_queue_ms)

server_cpu, client_cpu = (["taskset", "-c", "0"], ["taskset", "-c", "1"]) if a.pin else ([], [])
server = subprocess.Popen(
    [*server_cpu, a.floe, "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", f"{work}/data"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
)
try:
    uri = next(m.group(1) for line in server.stdout if (m := re.search(r'uri="([^"]+)"', line)))
    base = uri.rsplit("/catalog", 1)[0]
    common = [*client_cpu, bench, "--uri", uri, "--warehouse", "demo", "--progress", "0", "--json"]
    shape = ["--width", "3", "--depth", "2", "--tables", "10", "--views", "0"]
    subprocess.run(common + ["create-tree", *shape], check=True, capture_output=True)

    def health_probe(stop, out):
        while not stop.is_set():
            t = time.monotonic()
            with urllib.request.urlopen(f"{base}/health", timeout=10) as r:
                assert r.status == 200
            out.append((time.monotonic() - t) * 1000)
            time.sleep(0.1)

    results = {}
    if a.rate:
        phases = [(f"{a.rate:.0f}/s", ["--rate", str(a.rate), "--concurrency", "4096"]),
                  (f"{a.factor * a.rate:.0f}/s ({a.factor}x)", ["--rate", str(a.factor * a.rate), "--concurrency", "4096"]),
                  (f"{a.rate:.0f}/s again", ["--rate", str(a.rate), "--concurrency", "4096"])]
    else:
        phases = [("at capacity", ["--concurrency", str(a.cap)]),
                  (f"{a.factor}x overload", ["--concurrency", str(a.factor * a.cap)]),
                  ("after", ["--concurrency", str(a.cap)])]
    for label, load in phases:
        stop, health = threading.Event(), []
        probe = threading.Thread(target=health_probe, args=(stop, health))
        probe.start()
        run = subprocess.run(common + ["load-table", *shape, *load, "--duration", str(a.seconds)],
                             capture_output=True, text=True, check=True)
        stop.set()
        probe.join()
        op = json.loads(run.stdout)["operations"][0]
        results[label] = {
            "load": " ".join(load),
            "not_sent": json.loads(run.stdout).get("not_sent", 0),
            "admitted_per_second": round((op["requests"] - op["errors"].get("503", 0)) / a.seconds, 1),
            "p50_ms": op["p50_ms"],
            "p99_ms": op["p99_ms"],
            "refused_503": op["errors"].get("503", 0),
            "health_p99_ms": round(sorted(health)[int(len(health) * 0.99) - 1], 1) if health else None,
        }
    print(json.dumps(results, indent=2))
finally:
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
