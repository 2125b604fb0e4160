#!/usr/bin/env python3
"""Authorization figures, on the built-in backend with a real OpenID provider (tests/oidc):

1. Listing a namespace of 10,000 tables as a user granted 100 of them, as one granted the
   namespace, and as the server admin: latency of the whole listing (one request, no paging),
   p50 and p99 over sequential requests.
2. loadTable with authorization on (the built-in backend, the caller owning the tables) vs off
   (allow-all), both with authentication, the same tree in each, in alternating 10-second
   floe-bench runs.

    cargo build --release --bins && (cd tests/oidc && npm ci)
    ~/.cache/floe-ci/venv-*/bin/python benches/authz.py [sqlite|postgres]
"""

import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOE = os.path.join(ROOT, "target/release/floe")
BENCH = os.path.join(ROOT, "target/release/floe-bench")
PG = "postgres://postgres@127.0.0.1:5432"
TABLES = 10_000
GRANTED = 100
SAMPLES = 300
SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}

backend = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
work = tempfile.mkdtemp(prefix="floe-authz-bench-")
processes = []


def start_idp():
    clients = [{"client_id": "minter", "client_secret": "minter-secret", "token_endpoint_auth_method": "client_secret_post"}]
    p = subprocess.Popen(
        ["node", "server.mjs", json.dumps(clients)],
        cwd=os.path.join(ROOT, "tests/oidc"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    processes.append(p)
    return json.loads(p.stdout.readline())["issuer"]


def user_token(issuer, sub):
    r = requests.post(
        f"{issuer}/token",
        data={
            "grant_type": "urn:floe:test:user-token",
            "client_id": "minter",
            "client_secret": "minter-secret",
            "sub": sub,
            "scope": "catalog",
            "ttl": "7200",
        },
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def start_floe(name, issuer, authz):
    config = os.path.join(work, f"{name}.toml")
    with open(config, "w") as f:
        f.write(
            f"""[authn]
admins = ["idp~admin"]

[[authn.providers]]
id = "idp"
kind = "oidc"
issuer = "{issuer}"
audiences = ["urn:floe:catalog"]

[authz]
backend = "{authz}"
"""
        )
    env = dict(os.environ, FLOE__LOG__LEVEL="warn")
    if backend == "postgres":
        db = f"floe_bench_{name}"
        subprocess.run(["psql", f"{PG}/postgres", "-XAtqc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)
        subprocess.run(["psql", f"{PG}/postgres", "-XAtqc", f"CREATE DATABASE {db}"], check=True)
        env.update(
            FLOE__DATABASE__URL=f"{PG}/{db}",
            FLOE__DATABASE__AUTO_MIGRATE="true",
            FLOE__BOOTSTRAP__AUTO="true",
            FLOE__SECRETS__ENCRYPTION_KEY="AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            FLOE__DATABASE__MAX_CONNECTIONS="16",
        )
    p = subprocess.Popen(
        [FLOE, "serve", "--config", config, "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0",
         "--data-dir", os.path.join(work, name)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    processes.append(p)
    for line in p.stdout:
        m = re.search(r'uri="([^"]+)"', line)
        if m:
            return m.group(1)
    raise RuntimeError(f"{name} did not start")


def auth(token):
    return {"authorization": f"Bearer {token}"}


def prefix_of(uri, token):
    r = requests.get(f"{uri}/v1/config", params={"warehouse": "demo"}, headers=auth(token), timeout=30)
    r.raise_for_status()
    return r.json()["overrides"]["prefix"]


def grant(uri, token, kind, object_id, subject, relation):
    base = uri.rsplit("/catalog", 1)[0]
    r = requests.post(
        f"{base}/management/v1/grants/{kind}/{quote(object_id, safe='')}",
        json={"grant": [{"subject": subject, "relation": relation}]},
        headers=auth(token),
        timeout=30,
    )
    r.raise_for_status()


def warehouse_id(uri, token):
    base = uri.rsplit("/catalog", 1)[0]
    r = requests.get(f"{base}/management/v1/warehouses", headers=auth(token), timeout=30)
    r.raise_for_status()
    return next(w["id"] for w in r.json()["warehouses"] if w["name"] == "demo")


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def listing_figures(uri, issuer):
    admin = user_token(issuer, "admin")
    prefix = quote(prefix_of(uri, admin), safe="")
    base = f"{uri}/v1/{prefix}"
    r = requests.post(f"{base}/namespaces", json={"namespace": ["big"]}, headers=auth(admin), timeout=30)
    r.raise_for_status()
    session = requests.Session()
    uuids = {}

    def create(i):
        name = f"t{i:05d}"
        r = session.post(f"{base}/namespaces/big/tables", json={"name": name, "schema": SCHEMA}, headers=auth(admin), timeout=60)
        r.raise_for_status()
        return name, r.json()["metadata"]["table-uuid"]

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for name, uuid in pool.map(create, range(TABLES)):
            uuids[name] = uuid
    print(f"created {TABLES} tables in {time.time() - started:.0f} s")
    warehouse = warehouse_id(uri, admin)
    granted = sorted(uuids)[:: TABLES // GRANTED][:GRANTED]
    for name in granted:
        grant(uri, admin, "table", f"{warehouse}/{uuids[name]}", "user:idp~some", "select")
    grant(uri, admin, "namespace", f"{warehouse}/big", "user:idp~all", "select")
    for who, expected in [("some", GRANTED), ("all", TABLES), ("admin", TABLES)]:
        token = admin if who == "admin" else user_token(issuer, who)
        s = requests.Session()
        times = []
        for i in range(SAMPLES + 10):
            t0 = time.perf_counter()
            r = s.get(f"{base}/namespaces/big/tables", headers=auth(token), timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            if i == 0:
                assert len(r.json()["identifiers"]) == expected, (who, len(r.json()["identifiers"]))
            if i >= 10:
                times.append(elapsed)
        label = {"some": f"granted {GRANTED} tables", "all": "granted the namespace", "admin": "server admin"}[who]
        print(
            f"list {TABLES} tables as a user {label:<22} ({expected:>5} listed): "
            f"p50 {statistics.median(times):6.1f} ms  p99 {percentile(times, 99):6.1f} ms"
        )


def load_figures(on_uri, off_uri, issuer):
    token = user_token(issuer, "bench")
    admin = user_token(issuer, "admin")
    for uri in (on_uri, off_uri):
        # The bench user may create in the warehouse and owns the tree it makes.
        grant(uri, admin, "warehouse", warehouse_id(uri, admin), "user:idp~bench", "create")
        subprocess.run(
            [BENCH, "--uri", uri, "--warehouse", "demo", "--token", token, "create-tree", "--prefix-name", "b1"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    results = {"on": [], "off": []}
    for round_ in (1, 2):
        for label, uri in (("off", off_uri), ("on", on_uri)):
            out = subprocess.run(
                [BENCH, "--uri", uri, "--warehouse", "demo", "--token", token, "load-table", "--prefix-name", "b1",
                 "--duration", "10"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            lines = out.splitlines()
            header = next(i for i, line in enumerate(lines) if line.startswith("operation"))
            print(f"round {round_}, authorization {label}:\n  {lines[header]}\n  {lines[header + 1]}")
            columns = lines[header].split()
            values = lines[header + 1].split()
            rate = float(values[columns.index("req/s")])
            results[label].append(rate)
    if all(results["on"]) and all(results["off"]):
        ratio = sum(results["on"]) / sum(results["off"])
        print(f"loadTable with authorization on: {ratio:.0%} of off")


try:
    issuer = start_idp()
    on_uri = start_floe("on", issuer, "builtin")
    off_uri = start_floe("off", issuer, "allow-all")
    print(f"backend {backend}; on: {on_uri}; off: {off_uri}")
    # FLOE_BENCH_ONLY=list or =load runs one half.
    only = os.environ.get("FLOE_BENCH_ONLY")
    if only in (None, "list"):
        listing_figures(on_uri, issuer)
    if only in (None, "load"):
        load_figures(on_uri, off_uri, issuer)
finally:
    for p in processes:
        p.terminate()
    shutil.rmtree(work, ignore_errors=True)
