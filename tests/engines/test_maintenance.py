"""Table maintenance with PyIceberg, on both backends: a table appended to many times, with a
warehouse policy that keeps recent snapshots, ends with the kept snapshots only; the files deleted
are exactly those the expired snapshots used and the kept ones do not (computed here with
PyIceberg), plus an old orphan (a young one stays); every kept snapshot is read back by PyIceberg
with the rows it had, and a writer that keeps appending during maintenance loses nothing."""

import os
import re
import threading
import time

import pyarrow as pa
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField
from conftest import list_tasks

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


def set_policy(floe, min_keep):
    """The warehouse's maintenance policy: snapshots older than 5 s expire (`min_keep` kept),
    orphans older than a day go."""
    r = requests.put(
        manage(floe, "/maintenance"),
        json={
            "enabled": True,
            "interval-seconds": 3600,
            "properties": {
                "history.expire.max-snapshot-age-ms": "5000",
                "history.expire.min-snapshots-to-keep": str(min_keep),
                "floe.maintenance.orphan-files-older-than-ms": "86400000",
            },
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text


def wait_tasks(floe, count, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        tasks = list_tasks(manage(floe, "/tasks?queue=maintenance"))
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
    # What the old snapshots use, read with PyIceberg now (slow: the recent snapshots must still
    # be young when maintenance runs).
    expired_files = set().union(*(snapshot_files(table, s, live=False) for s in table.metadata.snapshots))
    time.sleep(6)
    for i in range(40, 45):
        table.append(batch(i * 10))
    recent = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in old_ids]
    # The k-th recent snapshot holds the overwrite's 10 rows and k + 1 appends of 10.
    counts = {sid: 10 + 10 * (k + 1) for k, sid in enumerate(recent)}
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

    set_policy(floe, min_keep=3)
    r = requests.post(manage(floe, "/maintenance/run"), json={"namespace": ["m"], "table": "events"}, timeout=10)
    assert r.json()["enqueued"] == 1
    tasks = wait_tasks(floe, 1)
    assert tasks[0]["status"] == "succeeded", tasks

    # What expiry must have deleted, computed here with PyIceberg: what the old snapshots use
    # that the 5 recent ones do not.
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    kept_files = set().union(*(snapshot_files(table, by_id[i], live=True) for i in recent))
    expected_deleted = expired_files - kept_files
    assert sum(f.endswith(".parquet") for f in expected_deleted) == 40, "the appends' data files"
    assert sum("/snap-" in f for f in expected_deleted) >= 41, "the old manifest lists"
    after = files_on_disk(floe, table.metadata.location)
    gone = {f for f in before - after if not f.endswith(".metadata.json")}
    assert gone == expected_deleted | {orphan}, (sorted(gone - expected_deleted), sorted(expected_deleted - gone))
    assert f"{table.metadata.location}/data/in-flight.parquet" in after, "young strays stay"
    assert tasks[0]["progress"]["files-deleted"] == len(expected_deleted)
    # The task's run shows in the metrics, and the queue is empty again.
    scraped = requests.get(f"{floe.base}/metrics", timeout=10).text
    ran = re.search(r'^floe_tasks_run_total\{(?=[^}]*queue="maintenance")(?=[^}]*outcome="succeeded")[^}]*\} (\S+)$', scraped, re.M)
    assert ran and float(ran.group(1)) >= 1, scraped
    waiting = re.search(r'^floe_tasks\{(?=[^}]*queue="maintenance")(?=[^}]*status="scheduled")[^}]*\} (\S+)$', scraped, re.M)
    assert waiting and float(waiting.group(1)) == 0, scraped
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


def all_files(table, snapshots, live):
    return set().union(set(), *(snapshot_files(table, s, live) for s in snapshots))


def test_expiry_with_branches_and_tags_keeps_what_any_ref_reads(floe):
    """With a tag and a branch forked from it: expiry on `main` deletes only what neither reads
    (the tag's snapshots and the branch's own appends stay readable), orphan removal spares the
    branch's files; then maintenance of the branch itself deletes only what `main` never used."""
    api = requests.Session()
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("b")
    table = catalog.create_table("b.events", schema=SCHEMA)
    for i in range(10):
        table.append(batch(i * 10))
    r = api.post(manage(floe, "/tags"), json={"name": "v1"}, timeout=10)
    assert r.status_code == 201, r.text
    for i in range(10, 20):
        table.append(batch(i * 10))
    r = api.post(manage(floe, "/branches"), json={"name": "dev", "from": "v1"}, timeout=10)
    assert r.status_code == 201, r.text
    dev_catalog = load_catalog("dev", type="rest", uri=floe.uri, warehouse="demo@dev")
    dev = dev_catalog.load_table("b.events")
    for i in range(3):
        dev.append(batch(5000 + i * 10))
    table.overwrite(batch(10000))
    main_before = list(catalog.load_table("b.events").metadata.snapshots)
    tagged = load_catalog("v1", type="rest", uri=floe.uri, warehouse="demo@v1").load_table("b.events")
    dev = dev_catalog.load_table("b.events")
    assert len(tagged.metadata.snapshots) == 10 and len(dev.metadata.snapshots) == 13
    # Read with PyIceberg now (slow: the recent snapshots must still be young when maintenance
    # runs): what main's old snapshots use, and what the tag's and the branch's do.
    expired = all_files(table, main_before, live=False)
    elsewhere = all_files(tagged, tagged.metadata.snapshots, live=True) | all_files(
        dev, dev.metadata.snapshots, live=True
    )
    main_old = all_files(table, main_before, live=True)
    time.sleep(6)
    for i in range(20, 22):
        table.append(batch(i * 10))
    table = catalog.load_table("b.events")
    recent = [s for s in table.metadata.snapshots if s.snapshot_id not in {x.snapshot_id for x in main_before}]
    assert len(recent) == 2
    key = table.metadata.location.split("s3://demo/", 1)[1]
    orphan_path = os.path.join(floe.dir, "data", "warehouses", "demo", key, "data", "orphan.parquet")
    with open(orphan_path, "wb") as f:
        f.write(b"stray")
    os.utime(orphan_path, (time.time() - 10 * 86400, time.time() - 10 * 86400))
    orphan = f"{table.metadata.location}/data/orphan.parquet"
    before = files_on_disk(floe, table.metadata.location)

    set_policy(floe, min_keep=2)
    r = api.post(manage(floe, "/maintenance/run"), json={"namespace": ["b"], "table": "events"}, timeout=10)
    assert r.json()["enqueued"] == 1, r.text
    tasks = wait_tasks(floe, 1)
    assert tasks[0]["status"] == "succeeded", tasks
    # Computed here: what main's old snapshots use that main's recent ones, the tag's and the
    # branch's snapshots do not.
    expected = expired - (all_files(table, recent, live=True) | elsewhere)
    # For the branch's maintenance later: what main's snapshots use, all it ever had (every
    # version of main is another line's to the branch).
    main_ever = main_old | all_files(table, recent, live=True)
    data = {f for f in expected if f.endswith(".parquet")}
    assert len(data) == 10, "the ten appends after the tag, which no other ref reads"
    after = files_on_disk(floe, table.metadata.location)
    gone = {f for f in before - after if not f.endswith(".metadata.json")}
    assert gone == expected | {orphan}, (sorted(gone - expected), sorted(expected - gone))
    table = catalog.load_table("b.events")
    assert sorted(s.snapshot_id for s in table.metadata.snapshots) == sorted(s.snapshot_id for s in recent)
    assert len(table.scan().to_arrow()) == 30
    # Every snapshot of the tag and the branch reads back whole.
    for ref_table, base in [(tagged, 0), (dev, 0)]:
        for k, snap in enumerate(sorted(ref_table.metadata.snapshots, key=lambda s: s.sequence_number)):
            assert len(ref_table.scan(snapshot_id=snap.snapshot_id).to_arrow()) == 10 * (k + 1) + base

    # Maintenance of the branch, enqueued by a commit there: its three appends are old; two
    # young ones follow in one commit (the commit enqueues the branch's maintenance).
    time.sleep(0.5)
    dev = dev_catalog.load_table("b.events")
    dev_before = list(dev.metadata.snapshots)
    dev_used = all_files(dev, dev_before, live=False)
    time.sleep(5.5)
    before = files_on_disk(floe, table.metadata.location)
    with dev.transaction() as tx:
        for i in range(3, 5):
            tx.append(batch(5000 + i * 10))
    dev = dev_catalog.load_table("b.events")
    dev_recent = [s for s in dev.metadata.snapshots if s.snapshot_id not in {x.snapshot_id for x in dev_before}]
    assert len(dev_recent) == 2
    before |= all_files(dev, dev_recent, live=False)
    dev_expected = dev_used - all_files(dev, dev_recent, live=True) - main_ever
    assert dev_expected and all("/snap-" in f for f in dev_expected), sorted(dev_expected)
    tasks = wait_tasks(floe, 2)
    mine = [t for t in tasks if t["target"].endswith("@dev")]
    assert len(mine) == 1 and mine[0]["status"] == "succeeded", tasks
    after = files_on_disk(floe, table.metadata.location)
    gone = {f for f in before - after if not f.endswith(".metadata.json")}
    assert gone == dev_expected, (sorted(gone - dev_expected), sorted(dev_expected - gone))
    # Run by hand now, it finds nothing more to do on the branch.
    r = api.post(manage(floe, "/maintenance/run"), json={"branch": "dev"}, timeout=10)
    assert r.json()["enqueued"] == 1, r.text
    tasks = wait_tasks(floe, 3)
    mine = [t for t in tasks if t["target"].endswith("@dev")]
    assert all(t["status"] == "succeeded" for t in mine) and len(mine) == 2, mine
    assert files_on_disk(floe, table.metadata.location) == after
    r = api.post(manage(floe, "/maintenance/run"), json={"branch": "nope"}, timeout=10)
    assert r.status_code == 404, r.text
    dev = dev_catalog.load_table("b.events")
    assert sorted(s.snapshot_id for s in dev.metadata.snapshots) == sorted(s.snapshot_id for s in dev_recent)
    assert len(dev.scan().to_arrow()) == 150
    # Main is untouched by the branch's maintenance.
    table = catalog.load_table("b.events")
    assert sorted(s.snapshot_id for s in table.metadata.snapshots) == sorted(s.snapshot_id for s in recent)
    for k, snap in enumerate(sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)):
        assert len(table.scan(snapshot_id=snap.snapshot_id).to_arrow()) == 10 + 10 * (k + 1)
    assert len(catalog.load_table("b.events").scan().to_arrow()) == 30


def test_no_manifest_outside_the_tables_folders_is_read(floe):
    """A manifest list a client copied into its own table's folder names another table's
    manifests. The commit is accepted (the list lies in the table's folder), but neither scan
    planning nor maintenance reads what it names: planning answers 403, the maintenance task
    fails naming the file and deletes nothing, and the other table keeps every file."""
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("x")
    victim = catalog.create_table("x.victim", schema=SCHEMA)
    victim.append(batch(0))
    victim.append(batch(100))
    thief = catalog.create_table("x.thief", schema=SCHEMA)
    root = os.path.join(floe.dir, "data", "warehouses", "demo")

    def local(location):
        return os.path.join(root, location.split("s3://demo/", 1)[1])

    stolen = f"{thief.metadata.location}/metadata/snap-stolen.avro"
    os.makedirs(os.path.dirname(local(stolen)), exist_ok=True)
    with open(local(victim.current_snapshot().manifest_list), "rb") as src, open(local(stolen), "wb") as dst:
        dst.write(src.read())
    config = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=10).json()
    tables = f"{floe.uri}/v1/{config['overrides']['prefix']}/namespaces/x/tables"
    snapshot = {
        "snapshot-id": 4242,
        "sequence-number": 1,
        "timestamp-ms": int(time.time() * 1000) - 60_000,
        "manifest-list": stolen,
        "summary": {"operation": "append"},
        "schema-id": 0,
    }
    r = requests.post(
        f"{tables}/thief",
        json={
            "requirements": [],
            "updates": [
                {"action": "add-snapshot", "snapshot": snapshot},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 4242},
            ],
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    victims_files = files_on_disk(floe, victim.metadata.location)

    r = requests.post(f"{tables}/thief/plan", json={}, timeout=10)
    assert r.status_code == 403, r.text
    assert "outside the table" in r.json()["error"]["message"], r.text

    set_policy(floe, min_keep=1)
    r = requests.post(manage(floe, "/maintenance/run"), json={"namespace": ["x"], "table": "thief"}, timeout=10)
    assert r.json()["enqueued"] == 1, r.text
    deadline = time.monotonic() + 60
    while True:
        task = list_tasks(manage(floe, "/tasks?queue=maintenance"))[0]
        if task["failures"] >= 1 or task["status"] == "succeeded":
            break
        assert time.monotonic() < deadline, task
        time.sleep(0.1)
    assert task["status"] != "succeeded", task
    assert "outside the table's folders" in (task["last-error"] or ""), task
    assert files_on_disk(floe, victim.metadata.location) == victims_files
    assert sorted(catalog.load_table("x.victim").scan().to_arrow().column("id").to_pylist()) == list(range(10)) + list(
        range(100, 110)
    )
