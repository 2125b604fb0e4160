"""Table maintenance with PyIceberg, on both backends: a table appended to many times, with a
warehouse policy that keeps recent snapshots, ends with the kept snapshots only; the files deleted
are exactly those the expired snapshots used and the kept ones do not (computed here with
PyIceberg), plus an old orphan (a young one stays); every kept snapshot is read back by PyIceberg
with the rows it had, and a writer that keeps appending during maintenance loses nothing."""

import os
import threading
import time

import pyarrow as pa
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False))


def batch(start, n=10):
    return pa.table({"id": pa.array(range(start, start + n), pa.int64())})


def manage(floe, path=""):
    listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()
    wid = next(w["id"] for w in listed["warehouses"] if w["name"] == "demo")
    return f"{floe.base}/management/v1/warehouses/{wid}{path}"


def snapshot_files(table, snapshot, live):
    """What a snapshot uses, read with PyIceberg: its manifest list, manifests, and the data files
    they name (`live`: not those marked deleted)."""
    io = table.io
    files = {snapshot.manifest_list}
    for manifest in snapshot.manifests(io):
        files.add(manifest.manifest_path)
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=live):
            files.add(entry.data_file.file_path)
    return files


def files_on_disk(floe, location):
    """Every file under a table's folder of the gateway-served `demo` warehouse, as locations."""
    key = location.split("s3://demo/", 1)[1]
    root = os.path.join(floe.dir, "data", "warehouses", "demo")
    found = set()
    for folder, _, names in os.walk(os.path.join(root, key)):
        for name in names:
            path = os.path.join(folder, name)
            found.add("s3://demo/" + os.path.relpath(path, root))
    return found


def wait_tasks(floe, count, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        tasks = requests.get(manage(floe, "/tasks?queue=maintenance"), timeout=10).json()["tasks"]
        done = [t for t in tasks if t["status"] in ("succeeded", "failed")]
        if len(done) >= count:
            return tasks
        assert time.monotonic() < deadline, tasks
        time.sleep(0.1)


def test_expiry_keeps_recent_snapshots_readable_and_loses_no_write(floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("m")
    table = catalog.create_table("m.events", schema=SCHEMA)
    for i in range(40):
        table.append(batch(i * 10))
    # An overwrite replaces every row: the appends' data files are then the old snapshots' only.
    table.overwrite(batch(10000))
    old_ids = [s.snapshot_id for s in table.metadata.snapshots]
    assert len(old_ids) >= 41
    time.sleep(6)
    for i in range(40, 45):
        table.append(batch(i * 10))
    recent = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in old_ids]
    # The k-th recent snapshot holds the overwrite's 10 rows and k + 1 appends of 10.
    counts = {sid: 10 + 10 * (k + 1) for k, sid in enumerate(recent)}

    # What expiry must delete, computed here with PyIceberg: what the old snapshots use that the
    # 5 recent ones do not.
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    expired_files = set().union(*(snapshot_files(table, by_id[i], live=False) for i in old_ids))
    kept_files = set().union(*(snapshot_files(table, by_id[i], live=True) for i in recent))
    expected_deleted = expired_files - kept_files
    assert sum(f.endswith(".parquet") for f in expected_deleted) == 40, "the appends' data files"
    assert sum("/snap-" in f for f in expected_deleted) >= 41, "the old manifest lists"
    # Strays in the table's folder that no snapshot names: one old (an orphan), one young (maybe
    # a write in flight).
    key = table.metadata.location.split("s3://demo/", 1)[1]
    folder = os.path.join(floe.dir, "data", "warehouses", "demo", key, "data")
    for name, age in [("orphan.parquet", 10 * 86400), ("in-flight.parquet", 0)]:
        path = os.path.join(folder, name)
        with open(path, "wb") as f:
            f.write(b"stray")
        os.utime(path, (time.time() - age, time.time() - age))
    orphan = f"{table.metadata.location}/data/orphan.parquet"
    before = files_on_disk(floe, table.metadata.location)

    r = requests.put(
        manage(floe, "/maintenance"),
        json={
            "enabled": True,
            "interval-seconds": 3600,
            "properties": {
                "history.expire.max-snapshot-age-ms": "5000",
                "history.expire.min-snapshots-to-keep": "3",
                "floe.maintenance.orphan-files-older-than-ms": "86400000",
            },
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    r = requests.post(manage(floe, "/maintenance/run"), json={"namespace": ["m"], "table": "events"}, timeout=10)
    assert r.json()["enqueued"] == 1
    tasks = wait_tasks(floe, 1)
    assert tasks[0]["status"] == "succeeded", tasks

    after = files_on_disk(floe, table.metadata.location)
    gone = {f for f in before - after if not f.endswith(".metadata.json")}
    assert gone == expected_deleted | {orphan}, (sorted(gone - expected_deleted), sorted(expected_deleted - gone))
    assert f"{table.metadata.location}/data/in-flight.parquet" in after, "young strays stay"
    assert tasks[0]["progress"]["files-deleted"] == len(expected_deleted)
    table = catalog.load_table("m.events")
    kept = sorted(s.snapshot_id for s in table.metadata.snapshots)
    assert kept == sorted(recent), "the five recent snapshots, and only those"
    for sid, rows in counts.items():
        assert len(table.scan(snapshot_id=sid).to_arrow()) == rows
    assert len(table.scan().to_arrow()) == 60

    # A writer appending while maintenance runs again: every append lands.
    stop = threading.Event()
    appended = []

    def writer():
        writer_table = catalog.load_table("m.events")
        n = 1000
        while not stop.is_set():
            writer_table.append(batch(n, 1))
            appended.append(n)
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.5)
    for _ in range(3):
        requests.post(manage(floe, "/maintenance/run"), json={"namespace": ["m"], "table": "events"}, timeout=10)
        wait_tasks(floe, 1)
        time.sleep(0.3)
    stop.set()
    thread.join()
    table = catalog.load_table("m.events")
    ids = set(table.scan().to_arrow().column("id").to_pylist())
    assert all(n in ids for n in appended), "no append lost"
    assert len(ids) == 60 + len(appended)
    assert len(table.metadata.snapshots) < 46 + len(appended), "expiry kept the history short"
