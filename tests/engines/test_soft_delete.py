"""Soft delete and undrop with PyIceberg, on both backends: a table written through the S3
gateway is dropped (with purge) under a soft delete profile, listed, undropped and read back
row for row; a second drop expires and its purge deletes the files (through the purge task),
while a neighbour's stay; a protected table refuses PyIceberg's drop until forced."""

import time

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType
from conftest import list_tasks

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "name", StringType(), required=False),
)


def rows(n, offset=0):
    return pa.table(
        {
            "id": pa.array(range(offset, offset + n), pa.int64()),
            "name": pa.array([f"row-{i}" for i in range(offset, offset + n)], pa.string()),
        }
    )


def warehouse_id(floe):
    listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()
    return next(w["id"] for w in listed["warehouses"] if w["name"] == "demo")


def manage(floe, path):
    return f"{floe.base}/management/v1/warehouses/{warehouse_id(floe)}{path}"


def wait_for(check, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_drop_list_undrop_read_back_then_expire_and_purge(floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("lake")
    table = catalog.create_table("lake.events", schema=SCHEMA)
    table.append(rows(100))
    table.append(rows(50, offset=100))
    neighbour = catalog.create_table("lake.neighbour", schema=SCHEMA)
    neighbour.append(rows(10))
    expected = table.scan().to_arrow().sort_by("id")
    metadata_location = table.metadata_location

    r = requests.put(
        manage(floe, "/delete-profile"),
        json={"type": "soft", "expiration-seconds": 3600},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    catalog.purge_table("lake.events")
    with pytest.raises(NoSuchTableError):
        catalog.load_table("lake.events")
    assert ("lake", "events") not in catalog.list_tables("lake")

    listed = requests.get(manage(floe, "/deleted-tabulars?namespace=lake"), timeout=10).json()
    assert [(d["name"], d["purge"], d["branch"]) for d in listed["tabulars"]] == [
        ("events", True, "main")
    ]
    entry = listed["tabulars"][0]
    assert entry["metadata-location"] == metadata_location
    r = requests.post(
        manage(floe, "/deleted-tabulars/undrop"),
        json={"tabulars": [{"id": entry["id"]}]},
        timeout=10,
    )
    assert r.status_code == 200, r.text

    restored = catalog.load_table("lake.events")
    assert restored.metadata_location == metadata_location
    assert restored.scan().to_arrow().sort_by("id").equals(expected), "data intact"
    restored.append(rows(5, offset=500))
    assert len(catalog.load_table("lake.events").scan().to_arrow()) == 155

    # Expiry: a short profile, a drop with purge, the expiry task run now.
    r = requests.put(
        manage(floe, "/delete-profile"),
        json={"type": "soft", "expiration-seconds": 3600},
        timeout=10,
    )
    assert r.status_code == 200
    uuid = str(restored.metadata.table_uuid)
    catalog.purge_table("lake.events")
    entry = requests.get(manage(floe, "/deleted-tabulars"), timeout=10).json()["tabulars"][0]
    r = requests.post(manage(floe, f"/tasks/{entry['task-id']}/run-now"), timeout=10)
    assert r.status_code == 200, r.text
    assert floe.purge_outcomes(uuid, count=3) == [
        "kept: soft-deleted",
        "kept: soft-deleted",
        "deleted",
    ]
    purge = wait_for(
        lambda: next(
            (
                t
                for t in list_tasks(manage(floe, f"/tasks?target=table:{uuid}"))
                if t["status"] == "succeeded"
            ),
            None,
        ),
        what="the purge task",
    )
    assert purge["progress"]["deleted"] > 0
    assert requests.get(manage(floe, "/deleted-tabulars"), timeout=10).json()["tabulars"] == []
    # The purged files are gone from the gateway; the neighbour's are all there and readable.
    assert len(catalog.load_table("lake.neighbour").scan().to_arrow()) == 10
    with pytest.raises(Exception):
        restored.io.new_input(restored.metadata_location).open().read()


def test_protected_table_needs_force(floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("guarded")
    table = catalog.create_table("guarded.t", schema=SCHEMA)
    table.append(rows(3))
    r = requests.put(
        manage(floe, "/namespaces/guarded/tables/t/protection"),
        json={"protected": True},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    with pytest.raises(Exception) as refused:
        catalog.drop_table("guarded.t")
    assert "protected" in str(refused.value)
    assert len(catalog.load_table("guarded.t").scan().to_arrow()) == 3
    prefix = requests.get(f"{floe.uri}/v1/config?warehouse=demo", timeout=10).json()["overrides"]["prefix"]
    r = requests.delete(f"{floe.uri}/v1/{prefix}/namespaces/guarded/tables/t?force=true", timeout=10)
    assert r.status_code == 204, r.text
    with pytest.raises(NoSuchTableError):
        catalog.load_table("guarded.t")
