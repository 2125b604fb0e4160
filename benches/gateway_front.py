#!/usr/bin/env python3
"""The S3 gateway in front of an S3 store: the same client moving the same bytes to and from the
store directly, and through a second Floe whose S3 warehouse (`"s3-gateway": true`) fronts that
store. The store is a Floe serving its local warehouse `demo` (fast, on the same machine), as the
issue asks; the client is boto3, one request at a time.

    cargo build --release --bins
    python3 benches/gateway_front.py [--floe target/release/floe] [--reps 5] [--small 500]

Prints MB/s (median of --reps) for 64 MiB and 1 MiB PUT and GET, direct and through the gateway,
the gateway's peak resident memory over the run, and the latency of a 1 KiB GET (p50, p99 over
--small requests)."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser()
p.add_argument("--floe", default=os.environ.get("FLOE_BIN", os.path.join(ROOT, "target/release/floe")))
p.add_argument("--reps", type=int, default=5)
p.add_argument("--small", type=int, default=500)
a = p.parse_args()
MiB = 1024 * 1024


def start(work):
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env["FLOE__LOG__LEVEL"] = "error"
    server = subprocess.Popen(
        [a.floe, "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", f"{work}/data"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    uri = next(m.group(1) for line in server.stdout if (m := re.search(r'uri="([^"]+)"', line)))
    base = uri.rsplit("/catalog", 1)[0]
    info = json.loads(urllib.request.urlopen(f"{base}/management/v1/info").read())
    return server, base, info["s3-endpoint"]


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())


def warehouse_id(base, name):
    return next(w["id"] for w in call("GET", f"{base}/management/v1/warehouses")["warehouses"] if w["name"] == name)


def s3(endpoint, key):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key["access-key-id"],
        aws_secret_access_key=key["secret-access-key"], region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


def rate(fn, size):
    times = []
    for _ in range(a.reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return size / MiB / statistics.median(times)


works = [tempfile.mkdtemp(prefix="floe-front-") for _ in range(2)]
servers = []
try:
    store, store_base, store_s3 = start(works[0])
    servers.append(store)
    front, front_base, front_s3 = start(works[1])
    servers.append(front)
    store_key = call("POST", f"{store_base}/management/v1/warehouses/{warehouse_id(store_base, 'demo')}/access-keys", {})
    fronted = call("POST", f"{front_base}/management/v1/warehouses", {
        "name": "fronted",
        "storage-profile": {"type": "s3", "bucket": "demo", "key-prefix": "wh", "region": "us-east-1",
                            "endpoint": store_s3, "path-style-access": True, "s3-gateway": True},
        "storage-credential": {"type": "s3-access-key", "access-key-id": store_key["access-key-id"],
                               "secret-access-key": store_key["secret-access-key"]},
    })
    front_key = call("POST", f"{front_base}/management/v1/warehouses/{fronted['id']}/access-keys", {})
    paths = {
        "direct": (s3(store_s3, store_key), "demo", "wh/"),
        "gateway": (s3(front_s3, front_key), "fronted", ""),
    }
    results = {}
    for size in (64 * MiB, 1 * MiB):
        body = os.urandom(size)
        for name, (client, bucket, prefix) in paths.items():
            key = f"{prefix}bench/{size}"
            put = rate(lambda: client.put_object(Bucket=bucket, Key=key, Body=body), size)
            got = rate(lambda: client.get_object(Bucket=bucket, Key=key)["Body"].read(), size)
            results[(name, size)] = (put, got)
        d, g = results[("direct", size)], results[("gateway", size)]
        print(f"{size // MiB:>3} MiB  PUT direct {d[0]:7.1f} MB/s  gateway {g[0]:7.1f} MB/s  ({g[0] / d[0]:.0%})"
              f"   GET direct {d[1]:7.1f} MB/s  gateway {g[1]:7.1f} MB/s  ({g[1] / d[1]:.0%})")
    small = os.urandom(1024)
    latencies = {}
    for name, (client, bucket, prefix) in paths.items():
        key = f"{prefix}bench/small"
        client.put_object(Bucket=bucket, Key=key, Body=small)
        for _ in range(20):
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
        samples = []
        for _ in range(a.small):
            t = time.perf_counter()
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
            samples.append((time.perf_counter() - t) * 1000)
        samples.sort()
        latencies[name] = (samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1])
    # The gateway's peak memory over the whole run: bodies stream through, never held whole.
    with open(f"/proc/{front.pid}/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(f"gateway peak RSS over the run: {peak / 1024:.0f} MiB")
    d, g = latencies["direct"], latencies["gateway"]
    print(f"1 KiB GET  p50 direct {d[0]:.2f} ms  gateway {g[0]:.2f} ms   p99 direct {d[1]:.2f} ms  gateway {g[1]:.2f} ms"
          f"  (added at p99: {g[1] - d[1]:.2f} ms)")
finally:
    for server in servers:
        server.terminate()
        server.wait()
    for work in works:
        shutil.rmtree(work, ignore_errors=True)
