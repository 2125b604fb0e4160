"""Scan planning on a table of 10,000 data files: Floe planning on the server (`POST .../plan`)
against PyIceberg planning the same scans locally (`table.scan(...).plan_files()`, which reads the
manifests through the S3 gateway with the table's vended key). Starts its own Floe (FLOE_BIN,
release build recommended); needs the engines venv:

    FLOE_BIN=target/release/floe ~/.cache/floe-ci/venv-*/bin/python benches/scan_planning.py [--files N]

The table is partitioned by `category` (20 values); its files are listed by 20 manifests with
column bounds on `id` (100 ids per file). The files themselves are never read by planning, so
only their manifest entries are written. Each scan is timed 5 times; the median is printed, with
how many files each plan names (both must agree).
"""

import argparse
import os
import random
import statistics
import struct
import subprocess
import tempfile
import time

import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import AlwaysTrue, And, EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntry, ManifestEntryStatus, write_manifest, write_manifest_list
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.typedef import Record
from pyiceberg.types import LongType, NestedField, StringType

from benchutil import free_port, wait_http

FLOE_BIN = os.environ.get("FLOE_BIN", "target/release/floe")
SCHEMA = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "category", StringType(), required=False))
SCANS = [
    ("everything", AlwaysTrue(), True),
    ("one partition", EqualTo("category", "c07"), {"type": "eq", "term": "category", "value": "c07"}),
    ("id range (metrics)", And(GreaterThanOrEqual("id", 400_000), LessThan("id", 420_000)),
     {"type": "and", "left": {"type": "gt-eq", "term": "id", "value": 400_000}, "right": {"type": "lt", "term": "id", "value": 420_000}}),
]


def fill(uri, table, files, per_manifest=500):
    """One snapshot listing `files` data files (entries only), `per_manifest` per manifest."""
    metadata = table.metadata
    location = metadata.location
    snapshot_id = random.randrange(1, 2**62)
    manifests = []
    for start in range(0, files, per_manifest):
        path = f"{location}/metadata/bench-{start}.avro"
        with write_manifest(2, metadata.spec(), metadata.schema(), table.io.new_output(path), snapshot_id, "deflate") as w:
            for n in range(start, min(files, start + per_manifest)):
                category = f"c{(n // per_manifest):02d}"
                data_file = DataFile.from_args(
                    content=DataFileContent.DATA,
                    file_path=f"{location}/data/category={category}/f{n:05d}.parquet",
                    file_format=FileFormat.PARQUET,
                    partition=Record(category),
                    record_count=100,
                    file_size_in_bytes=4096,
                    value_counts={1: 100, 2: 100},
                    null_value_counts={1: 0, 2: 0},
                    lower_bounds={1: struct.pack("<q", n * 100), 2: category.encode()},
                    upper_bounds={1: struct.pack("<q", n * 100 + 99), 2: category.encode()},
                )
                data_file.spec_id = metadata.default_spec_id
                w.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id, data_file=data_file))
        manifests.append(w.to_manifest_file())
    list_path = f"{location}/metadata/snap-{snapshot_id}-bench.avro"
    with write_manifest_list(2, table.io.new_output(list_path), snapshot_id, None, 1, "deflate") as lists:
        lists.add_manifests(manifests)
    prefix = requests.get(f"{uri}/v1/config", params={"warehouse": "demo"}).json()["overrides"]["prefix"]
    url = f"{uri}/v1/{prefix}/namespaces/bench/tables/big"
    r = requests.post(url, json={
        "requirements": [],
        "updates": [
            {"action": "add-snapshot", "snapshot": {
                "snapshot-id": snapshot_id, "sequence-number": 1, "timestamp-ms": int(time.time() * 1000),
                "manifest-list": list_path, "summary": {"operation": "append"}, "schema-id": metadata.current_schema_id}},
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
        ],
    })
    r.raise_for_status()
    return url


def timed(fn, runs=5):
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="floe-bench-plan-")
    port = free_port()
    env = {**os.environ, "FLOE__LOG__LEVEL": "warn"}
    floe = subprocess.Popen([FLOE_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--s3-listen", "127.0.0.1:0",
                             "--data-dir", os.path.join(work, "data")], env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health")
        uri = f"{base}/catalog"
        catalog = load_catalog("floe", type="rest", uri=uri, warehouse="demo")
        catalog.create_namespace("bench")
        table = catalog.create_table("bench.big", schema=SCHEMA)
        with table.update_spec() as spec:
            spec.add_field("category", IdentityTransform(), "category")
        table = catalog.load_table("bench.big")
        url = fill(uri, table, args.files)
        table = catalog.load_table("bench.big")
        print(f"{args.files} data files in {args.files // 500} manifests")
        print(f"{'scan':<22}{'files':>8}{'server (s)':>12}{'PyIceberg (s)':>15}")
        for name, local_filter, server_filter in SCANS:
            body = {} if server_filter is True else {"filter": server_filter}
            server_s, planned = timed(lambda: requests.post(f"{url}/plan", json=body).json())
            assert planned["status"] == "completed", planned.get("status")
            local_s, tasks = timed(lambda: list(table.scan(row_filter=local_filter).plan_files()))
            server_files = {t["data-file"]["file-path"] for t in planned["file-scan-tasks"]}
            assert server_files == {t.file.file_path for t in tasks}, name
            print(f"{name:<22}{len(server_files):>8}{server_s:>12.3f}{local_s:>15.3f}")
    finally:
        floe.terminate()
        floe.wait()


if __name__ == "__main__":
    main()
