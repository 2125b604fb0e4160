"""`floe import`: a warehouse of another Iceberg REST catalog (here a second Floe) copied into a
fresh Floe: namespaces with their properties, tables registered at their metadata files, views;
every table scans the same in PyIceberg afterwards, a name taken in Floe is skipped and reported,
and an import killed half-way is resumed by running it again."""

import json
import os
import signal
import subprocess
import time

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog

from conftest import FLOE_BIN, Floe

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])
TARGET = "Sales_Prod"  # a name other catalogs accept, not an S3 bucket name
BULK = 12


def rows(ids):
    return pa.Table.from_pydict({"id": ids, "name": [f"n{i}" for i in ids]}, schema=SCHEMA)


def create_view(source, prefix, namespace, name, sql):
    body = {
        "name": name,
        "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]},
        "view-version": {
            "version-id": 1,
            "timestamp-ms": int(time.time() * 1000),
            "schema-id": 0,
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
            "default-namespace": namespace.split("."),
        },
        "properties": {"comment": "imported view"},
    }
    response = requests.post(
        f"{source.uri}/v1/{prefix}/namespaces/{namespace.replace('.', '%1F')}/views", json=body, timeout=30
    )
    assert response.status_code == 200, response.text


def prefix_of(floe, warehouse):
    config = requests.get(f"{floe.uri}/v1/config", params={"warehouse": warehouse}, timeout=30).json()
    return config["overrides"]["prefix"]


@pytest.fixture
def source():
    server = Floe("sqlite")
    warehouse = server.file_warehouse()
    catalog = load_catalog("src", type="rest", uri=server.uri, warehouse=warehouse)
    catalog.create_namespace("sales", {"owner": "ana", "comment": "orders and customers"})
    catalog.create_namespace(("sales", "eu"), {"region": "eu-west"})
    catalog.create_namespace("hr")
    catalog.create_namespace("bulk")
    orders = catalog.create_table("sales.orders", schema=SCHEMA, properties={"write.format.default": "parquet"})
    orders.append(rows([1, 2, 3]))
    orders.append(rows([4]))
    catalog.create_table(("sales", "eu", "customers"), schema=SCHEMA).append(rows([10, 11]))
    catalog.create_table("hr.people", schema=SCHEMA).append(rows([100]))
    for i in range(BULK):
        catalog.create_table(f"bulk.t{i:02d}", schema=SCHEMA).append(rows([i]))
    create_view(server, prefix_of(server, warehouse), "sales", "big_orders", "SELECT id FROM orders WHERE id > 2")
    server.catalog = catalog
    server.warehouse_root = os.path.join(server.dir, "data", "warehouses", warehouse)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def target(request, source):
    roots = json.dumps([os.path.dirname(source.warehouse_root)])
    server = Floe(request.param, env={"FLOE__STORAGE__LOCAL_ROOTS": roots})
    response = requests.post(
        f"{server.base}/management/v1/warehouses",
        json={"name": TARGET, "storage-profile": {"type": "local", "root": source.warehouse_root}},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    yield server
    server.stop()


def run_import(source, target, *extra):
    return [
        FLOE_BIN,
        "import",
        "--from-uri",
        source.uri,
        "--warehouse",
        "files",
        "--into",
        TARGET,
        "--endpoint",
        target.base,
        *extra,
    ]


def test_import_copies_a_warehouse_and_resumes_after_a_kill(source, target):
    dest = load_catalog("dst", type="rest", uri=target.uri, warehouse=TARGET)
    # A name Floe already holds with another table: skipped and reported, never replaced.
    dest.create_namespace("hr")
    squatter = dest.create_table("hr.people", schema=SCHEMA, location=None)
    squatter_location = squatter.metadata_location

    # The first run is killed part-way through the bulk tables.
    first = subprocess.Popen(run_import(source, target), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    seen = []
    while len([l for l in seen if l.startswith("[") and " table " in l]) < 5:
        line = first.stderr.readline()
        assert line, f"the import ended early: {''.join(seen)} {first.stdout.read()}"
        seen.append(line)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL

    second = subprocess.run(run_import(source, target), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr + second.stdout
    report = second.stdout
    # What the first run did is recognised, not done twice.
    already = int(report.split("; ")[1].split(" already")[0])
    assert already >= 5, report
    assert "skipped 1:" in report, report
    assert "table hr.people: Floe already has an object of that name with other metadata" in report

    # Namespaces with their properties.
    assert dest.load_namespace_properties("sales")["owner"] == "ana"
    assert dest.load_namespace_properties(("sales", "eu"))["region"] == "eu-west"
    assert {n for n in dest.list_namespaces()} >= {("sales",), ("hr",), ("bulk",)}
    # Every table at the source's metadata file, scanning the same.
    names = ["sales.orders", "sales.eu.customers"] + [f"bulk.t{i:02d}" for i in range(BULK)]
    for name in names:
        ident = tuple(name.split("."))
        mine = dest.load_table(ident)
        theirs = source.catalog.load_table(ident)
        assert mine.metadata_location == theirs.metadata_location, name
        assert mine.scan().to_arrow().sort_by("id").equals(theirs.scan().to_arrow().sort_by("id")), name
        assert [s.snapshot_id for s in mine.snapshots()] == [s.snapshot_id for s in theirs.snapshots()]
    assert dest.load_table("sales.orders").properties["write.format.default"] == "parquet"
    # The squatter is untouched.
    assert dest.load_table("hr.people").metadata_location == squatter_location
    # The view, at its metadata file.
    prefix = prefix_of(target, TARGET)
    view = requests.get(f"{target.uri}/v1/{prefix}/namespaces/sales/views/big_orders", timeout=30).json()
    assert view["metadata"]["versions"][0]["representations"][0]["sql"] == "SELECT id FROM orders WHERE id > 2"
    their_view = requests.get(
        f"{source.uri}/v1/{prefix_of(source, 'files')}/namespaces/sales/views/big_orders", timeout=30
    ).json()
    assert view["metadata-location"] == their_view["metadata-location"]

    # A third run finds everything there.
    third = subprocess.run(run_import(source, target), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert third.stdout.startswith("imported 0 namespaces, 0 tables and 0 views"), third.stdout

    # Writing in Floe after the import works (a new metadata file; the source keeps its own).
    dest.load_table("sales.orders").append(rows([5]))
    assert dest.load_table("sales.orders").scan().to_arrow().num_rows == 5
    assert source.catalog.load_table("sales.orders").scan().to_arrow().num_rows == 4


def test_import_refuses_what_it_cannot_reach(source, target):
    # A warehouse Floe does not have.
    missing = subprocess.run(
        [FLOE_BIN, "import", "--from-uri", source.uri, "--warehouse", "files", "--into", "nope", "--endpoint", target.base],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1
    assert "Floe catalog refused its configuration" in missing.stderr, missing.stderr
    # A source that is not there.
    gone = subprocess.run(
        [FLOE_BIN, "import", "--from-uri", "http://127.0.0.1:9/catalog", "--into", TARGET, "--endpoint", target.base],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gone.returncode == 1
    assert "reaching the source catalog" in gone.stderr, gone.stderr
