#!/usr/bin/env python3
"""Figures for Floe's branching index (issue 6), against a running server:

  - branch creation time in a warehouse of 10 and of 10,000 tables;
  - merge time for 1, 100 and 1,000 changed tables (changed on the source only, and changed on
    both sides with changes that compose);
  - commit throughput on one branch against the same load spread over several branches (runs
    `floe-bench commits`, one process per branch, and adds up).

Usage (a release build serving on the embedded default):
  target/release/floe serve --listen 127.0.0.1:8181 --data-dir /tmp/floe-bench &
  python3 benches/branching.py --endpoint http://127.0.0.1:8181 --floe-bench target/release/floe-bench

Needs only `requests`. Each part makes its own warehouse (local storage, under the server's data
directory), so runs do not disturb each other. Timings are wall-clock on the client, over HTTP.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}],
}


class Floe:
    def __init__(self, endpoint):
        self.endpoint = endpoint.rstrip("/")
        self.http = requests.Session()

    def call(self, method, path, expect=(200, 201, 204), **kw):
        response = self.http.request(method, self.endpoint + path, **kw)
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.text else None

    def warehouse(self, name):
        root = self.call("GET", "/management/v1/warehouses")["warehouses"][0]["storage-profile"]["root"]
        base = root.rsplit("/", 1)[0]
        made = self.call(
            "POST",
            "/management/v1/warehouses",
            json={"name": name, "storage-profile": {"type": "local", "root": f"{base}/{name}"}},
        )
        return made["id"]

    def catalog(self, warehouse_id, ref=None):
        prefix = warehouse_id if ref is None else f"{warehouse_id}@{ref}"
        return f"/catalog/v1/{prefix}"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def fill(floe, wid, tables, workers=8):
    base = floe.catalog(wid)
    floe.call("POST", f"{base}/namespaces", json={"namespace": ["ns"]})

    def create(i):
        floe.call("POST", f"{base}/namespaces/ns/tables", json={"name": f"t{i:06d}", "schema": SCHEMA})

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, range(tables)))


def set_properties(floe, base, names, key, workers=8):
    def commit(name):
        floe.call(
            "POST",
            f"{base}/namespaces/ns/tables/{name}",
            json={"requirements": [], "updates": [{"action": "set-properties", "updates": {key: "1"}}]},
        )

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(commit, names))


def branch_creation(floe, sizes, repeats):
    rows = []
    for size in sizes:
        wid = floe.warehouse(f"branchy-{size}-{uuid.uuid4().hex[:6]}")
        fill(floe, wid, size)
        times = []
        for i in range(repeats):
            ms, _ = timed(
                lambda: floe.call(
                    "POST", f"/management/v1/warehouses/{wid}/branches", json={"name": f"b{i}"}
                )
            )
            times.append(ms)
        # Reading a table through a new branch (it inherits everything).
        ms_read, _ = timed(
            lambda: floe.call("GET", f"{floe.catalog(wid, 'b0')}/namespaces/ns/tables/t000000")
        )
        rows.append(
            {
                "tables": size,
                "create-branch-median-ms": round(statistics.median(times), 2),
                "create-branch-max-ms": round(max(times), 2),
                "first-load-on-branch-ms": round(ms_read, 2),
            }
        )
    return rows


def merges(floe, counts):
    rows = []
    for count in counts:
        for both in (False, True):
            wid = floe.warehouse(f"merge-{count}-{'b' if both else 's'}-{uuid.uuid4().hex[:6]}")
            fill(floe, wid, count)
            floe.call("POST", f"/management/v1/warehouses/{wid}/branches", json={"name": "dev"})
            names = [f"t{i:06d}" for i in range(count)]
            set_properties(floe, floe.catalog(wid, "dev"), names, "from-dev")
            if both:
                set_properties(floe, floe.catalog(wid), names, "from-main")
            ms, result = timed(
                lambda: floe.call(
                    "POST",
                    f"/management/v1/warehouses/{wid}/merge",
                    json={"source": "dev", "target": "main"},
                )
            )
            assert len(result["tables"]) == count, result
            rows.append(
                {
                    "changed-tables": count,
                    "changed-on": "both sides (composed)" if both else "source only",
                    "merge-ms": round(ms, 1),
                }
            )
    return rows


def commits(floe, bench, branches_list, workers, duration):
    rows = []
    for branches in branches_list:
        wid = floe.warehouse(f"commits-{branches}-{uuid.uuid4().hex[:6]}")
        names = ["main"] + [f"b{i}" for i in range(1, branches)]
        for name in names[1:]:
            floe.call("POST", f"/management/v1/warehouses/{wid}/branches", json={"name": name})
        per = max(1, workers // branches)
        procs = [
            subprocess.Popen(
                [
                    bench,
                    "--uri",
                    floe.endpoint + "/catalog",
                    "--warehouse",
                    wid if name == "main" else f"{wid}@{name}",
                    "--json",
                    "--progress",
                    "0",
                    "commits",
                    "--concurrency",
                    str(per),
                    "--duration",
                    str(duration),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in names
        ]
        total = 0.0
        errors = 0
        for proc in procs:
            out, _ = proc.communicate()
            report = json.loads(out)
            for op in report["operations"]:
                if op["name"] == "updateTable":
                    total += op["requests_per_second"]
                    errors += sum(op["errors"].values())
        rows.append(
            {
                "branches": branches,
                "writers": per * branches,
                "commits-per-second": round(total),
                "errors": errors,
            }
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", default="http://127.0.0.1:8181")
    parser.add_argument("--floe-bench", default="target/release/floe-bench")
    parser.add_argument("--sizes", default="10,10000")
    parser.add_argument("--merge-counts", default="1,100,1000")
    parser.add_argument("--commit-branches", default="1,8")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    floe = Floe(args.endpoint)
    ints = lambda text: [int(x) for x in text.split(",") if x]
    result = {
        "branch-creation": branch_creation(floe, ints(args.sizes), args.repeats),
        "merge": merges(floe, ints(args.merge_counts)),
        "commits": commits(
            floe, args.floe_bench, ints(args.commit_branches), args.writers, args.duration
        ),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
