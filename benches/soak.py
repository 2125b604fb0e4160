#!/usr/bin/env python3
"""Soak: a mixed workload against one Floe for a while, watching its resident memory and open
file descriptors. The workload, all at once: `floe-bench read-update` (loads and set-properties
commits over a tree of tables), `floe-bench create-table` (new tables, in bursts), and gateway
PUT/GET/DELETE of small and 1 MiB objects from a Python thread. After a warm-up (the first fifth),
the server's RSS and descriptor count must stay flat: the last minute's average at most
`--max-rss-growth` (default 20%) above the first minute after warm-up, and descriptors at most
`--max-fd-growth` (default 64) more. Prints both series' summary; exits 1 when either grows.

    cargo build --bins
    python3 benches/soak.py [sqlite|postgres] [--minutes 20]

A shorter run (`--minutes 3`) is what CI's `scripts/test` runs on each backend; the issue's figure
is the 20-minute run. PostgreSQL: FLOE_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def args():
    p = argparse.ArgumentParser()
    p.add_argument("backend", nargs="?", default="sqlite", choices=["sqlite", "postgres"])
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--floe", default=os.environ.get("FLOE_BIN", os.path.join(ROOT, "target/debug/floe")))
    p.add_argument("--bench", default=None, help="floe-bench (default: beside --floe)")
    p.add_argument("--max-rss-growth", type=float, default=0.20)
    p.add_argument("--max-fd-growth", type=int, default=64)
    p.add_argument("--table-cache-mb", type=int, default=None,
                   help="database.table_cache_mb for the server (default: Floe's, 24); a small one fills during warm-up")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def sign_v4(method, url, key_id, secret, region, body=b""):
    """Headers of an AWS SigV4-signed request (path-style, no query)."""
    parsed = urllib.parse.urlsplit(url)
    now = datetime.now(timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": parsed.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [method, urllib.parse.quote(parsed.path), parsed.query, *[f"{k}:{headers[k]}" for k in sorted(headers)], "", signed, payload]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in [day, region, "s3", "aws4_request"]:
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    return headers


def gateway_worker(endpoint, key, stop, counts):
    region = "us-east-1"
    small, large = os.urandom(4096), os.urandom(1 << 20)
    i = 0
    while not stop.is_set():
        body = large if i % 8 == 0 else small
        url = f"{endpoint}/demo/soak/{i % 200}.bin"
        try:
            for method, data in [("PUT", body), ("GET", b""), ("DELETE", b"")]:
                req = urllib.request.Request(url, data=data or None, method=method,
                                             headers=sign_v4(method, url, key["access-key-id"], key["secret-access-key"], region, data))
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
                counts["gateway"] += 1
        except (urllib.error.URLError, OSError) as e:
            counts["gateway_errors"] += 1
            counts["last_gateway_error"] = str(e)[:200]
        i += 1


def main():
    a = args()
    bench = a.bench or os.path.join(os.path.dirname(a.floe), "floe-bench")
    work = tempfile.mkdtemp(prefix="floe-soak-")
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env["FLOE__LOG__LEVEL"] = "error"
    if a.table_cache_mb is not None:
        env["FLOE__DATABASE__TABLE_CACHE_MB"] = str(a.table_cache_mb)
    database = None
    if a.backend == "postgres":
        admin = os.environ.get("FLOE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        database = "floe_t_soak_" + uuid.uuid4().hex[:8]
        subprocess.run(["psql", admin, "-XAtqc", f"CREATE DATABASE {database}"], check=True)
        env["FLOE__DATABASE__URL"] = admin.rsplit("/", 1)[0] + "/" + database
        env["FLOE__DATABASE__AUTO_MIGRATE"] = "true"
        env["FLOE__BOOTSTRAP__AUTO"] = "true"
        env["FLOE__SECRETS__ENCRYPTION_KEY"] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    server = subprocess.Popen(
        [a.floe, "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", f"{work}/data"],
        stdout=subprocess.PIPE, stderr=open(f"{work}/floe.log", "w"), env=env, text=True,
    )
    stop = threading.Event()
    procs = []
    try:
        uri = next(m.group(1) for line in server.stdout if (m := re.search(r'uri="([^"]+)"', line)))
        base = uri.rsplit("/catalog", 1)[0]
        info = json.loads(urllib.request.urlopen(f"{base}/management/v1/info").read())
        wid = next(w["id"] for w in json.loads(urllib.request.urlopen(f"{base}/management/v1/warehouses").read())["warehouses"] if w["name"] == "demo")
        req = urllib.request.Request(f"{base}/management/v1/warehouses/{wid}/access-keys", data=b'{"description":"soak"}',
                                     headers={"content-type": "application/json"}, method="POST")
        key = json.loads(urllib.request.urlopen(req).read())
        common = [bench, "--uri", uri, "--warehouse", "demo", "--progress", "0", "--json"]
        shape = ["--width", "3", "--depth", "2", "--tables", "10", "--views", "0"]
        subprocess.run(common + ["create-tree", *shape], check=True, capture_output=True)

        total = a.minutes * 60
        started = time.monotonic()
        counts = {"gateway": 0, "gateway_errors": 0}
        threading.Thread(target=gateway_worker, args=(info["s3-endpoint"], key, stop, counts), daemon=True).start()
        procs.append(subprocess.Popen(common + ["read-update", *shape, "--concurrency", "8", "--read-ratio", "0.7",
                                                "--duration", str(total)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        samples = []
        creates = 0
        while time.monotonic() - started < total:
            burst = subprocess.run(common + ["create-table", "--concurrency", "4", "--count", "50"], capture_output=True, text=True)
            creates += 50 if burst.returncode == 0 else 0
            samples.append((time.monotonic() - started, *proc_stats(server.pid)))
            time.sleep(max(0.0, 10 - (time.monotonic() - started) % 10))
        stop.set()
        read_update = json.loads(procs[0].communicate(timeout=120)[0] or "{}")
        assert server.poll() is None, "the server died"

        warm = [s for s in samples if s[0] >= total / 5]
        first = [s for s in warm if s[0] < warm[0][0] + 60] or warm[:1]
        last = [s for s in warm if s[0] >= total - 60] or warm[-1:]
        rss_first, rss_last = statistics.mean(s[1] for s in first), statistics.mean(s[1] for s in last)
        fd_first, fd_last = statistics.mean(s[2] for s in first), statistics.mean(s[2] for s in last)
        ops = {o["name"]: o for o in read_update.get("operations", [])}
        report = {
            "backend": a.backend,
            "minutes": a.minutes,
            "table_cache_mb": a.table_cache_mb if a.table_cache_mb is not None else 24,
            "rss_kib_after_warmup": round(rss_first),
            "rss_kib_at_end": round(rss_last),
            "rss_growth": round(rss_last / rss_first - 1, 4),
            "rss_kib_max": max(s[1] for s in samples),
            "fds_after_warmup": round(fd_first, 1),
            "fds_at_end": round(fd_last, 1),
            "fds_max": max(s[2] for s in samples),
            "read_update": {k: {"requests": v.get("requests"), "p99_ms": v.get("p99_ms"), "errors": v.get("errors")} for k, v in ops.items()},
            "tables_created": creates,
            "gateway_requests": counts["gateway"],
            "gateway_errors": counts["gateway_errors"],
        }
        print(json.dumps(report, indent=None if a.json else 2))
        ok = (report["rss_growth"] <= a.max_rss_growth and fd_last - fd_first <= a.max_fd_growth
              and counts["gateway_errors"] == 0 and creates > 0 and counts["gateway"] > 0)
        if not ok:
            print("soak: FAILED (memory or descriptors grew, or the workload failed)", file=sys.stderr)
            if counts.get("last_gateway_error"):
                print(counts["last_gateway_error"], file=sys.stderr)
        return 0 if ok else 1
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
        if database:
            subprocess.run(["psql", admin, "-XAtqc", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    sys.exit(main())
