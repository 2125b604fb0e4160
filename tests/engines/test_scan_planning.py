"""Server-side scan planning, on both backends, checked against PyIceberg's own (local) planning
of the same tables: for each filter the data files Floe plans, and the delete files it attaches to
each, equal PyIceberg's. The plan endpoints are called with raw REST (and the files read back
with pyarrow under the credentials the plan hands out), and through PyIceberg 0.12's own
server-side planning, whose residual filters are compared with its local residual evaluator's.

The table has partition and schema evolution, nulls, NaNs, strings and timestamps, and position
deletes (written here with PyIceberg's writers). Equality deletes, which PyIceberg cannot plan,
are checked against the spec's rule. Held plans (`submitted`, plan tasks, cancel) and
incremental scans are checked too."""

import datetime
import random
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNaN,
    IsNull,
    LessThan,
    Not,
    NotEqualTo,
    NotIn,
    NotNull,
    Or,
    StartsWith,
)
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestWriterV2,
    write_manifest_list,
)
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType, TimestamptzType

from conftest import Floe

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "category", StringType(), required=False),
    NestedField(3, "ts", TimestamptzType(), required=False),
    NestedField(4, "amount", DoubleType(), required=False),
    NestedField(5, "note", StringType(), required=False),
)
BASE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def rows(start, n, category, extra=False):
    """`n` rows with ids from `start`, a day apart from BASE + start days; every fifth amount is
    null and every seventh NaN."""
    ids = list(range(start, start + n))
    data = {
        "id": pa.array(ids, pa.int64()),
        "category": pa.array([category] * n, pa.string()),
        "ts": pa.array([BASE + datetime.timedelta(days=i) for i in ids], pa.timestamp("us", tz="UTC")),
        "amount": pa.array(
            [None if i % 5 == 0 else float("nan") if i % 7 == 0 else i * 1.5 for i in ids], pa.float64()
        ),
        "note": pa.array([f"{category}-note-{i}" for i in ids], pa.string()),
    }
    if extra:
        data["extra"] = pa.array([i * 10 for i in ids], pa.int64())
    return pa.table(data)


class DeleteManifestWriter(ManifestWriterV2):
    """PyIceberg's v2 manifest writer, writing a delete manifest."""

    def content(self):
        return ManifestContent.DELETES

    @property
    def _meta(self):
        return {**super()._meta, "content": "deletes"}


def prefix_of(floe):
    return requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=30).json()["overrides"]["prefix"]


def table_url(floe, name):
    return f"{floe.uri}/v1/{prefix_of(floe)}/namespaces/plan/tables/{name}"


def commit_deletes(floe, table, deletes):
    """Commits one snapshot adding delete files: `deletes` is a list of (content, data file or
    None, rows), position deletes naming positions of a data file, equality deletes ids. Each
    delete file lands in the partition of the data file it names (equality: of `rows`' spec)."""
    metadata = table.metadata
    location = metadata.location
    snapshot_id = random.randrange(1, 2**62)
    sequence = metadata.last_sequence_number + 1
    entries = []
    for n, (content, data_file, values) in enumerate(deletes):
        path = f"{location}/data/delete-{snapshot_id}-{n}.parquet"
        if content == DataFileContent.POSITION_DELETES:
            body = pa.table(
                [pa.array([data_file.file_path] * len(values), pa.string()), pa.array(values, pa.int64())],
                schema=pa.schema([
                    pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2147483546"}),
                    pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": b"2147483545"}),
                ]),
            )
            equality_ids = None
        else:
            body = pa.table(
                [pa.array(values, pa.int64())],
                schema=pa.schema([pa.field("id", pa.int64(), metadata={b"PARQUET:field_id": b"1"})]),
            )
            equality_ids = [1]
        with table.io.new_output(path).create(overwrite=True) as out:
            pq.write_table(body, out)
        size = len(table.io.new_input(path).open().read())
        delete_file = DataFile.from_args(
            content=content,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=data_file.partition,
            record_count=len(values),
            file_size_in_bytes=size,
            equality_ids=equality_ids,
        )
        delete_file.spec_id = data_file.spec_id
        entries.append(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id, data_file=delete_file))
    manifests = []
    by_spec = {}
    for entry in entries:
        by_spec.setdefault(entry.data_file.spec_id, []).append(entry)
    for spec_id, spec_entries in by_spec.items():
        manifest_path = f"{location}/metadata/deletes-{snapshot_id}-{spec_id}.avro"
        with DeleteManifestWriter(
            metadata.specs()[spec_id], metadata.schema(), table.io.new_output(manifest_path), snapshot_id, "deflate"
        ) as writer:
            for entry in spec_entries:
                writer.add(entry)
        manifests.append(writer.to_manifest_file())
    current = metadata.current_snapshot()
    list_path = f"{location}/metadata/snap-{snapshot_id}-deletes.avro"
    with write_manifest_list(
        format_version=2,
        output_file=table.io.new_output(list_path),
        snapshot_id=snapshot_id,
        parent_snapshot_id=current.snapshot_id,
        sequence_number=sequence,
        avro_compression="deflate",
    ) as lists:
        lists.add_manifests(list(current.manifests(table.io)) + manifests)
    body = {
        "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": current.snapshot_id}],
        "updates": [
            {
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": snapshot_id,
                    "parent-snapshot-id": current.snapshot_id,
                    "sequence-number": sequence,
                    "timestamp-ms": int(time.time() * 1000),
                    "manifest-list": list_path,
                    "summary": {"operation": "delete"},
                    "schema-id": metadata.current_schema_id,
                },
            },
            {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": snapshot_id},
        ],
    }
    r = requests.post(table_url(floe, table.name()[-1]), json=body, timeout=60)
    assert r.status_code == 200, r.text[:2000]
    return snapshot_id


def plan(floe, name, body, headers=None):
    r = requests.post(f"{table_url(floe, name)}/plan", json=body, headers=headers or {}, timeout=120)
    assert r.status_code == 200, r.text[:2000]
    return r.json()


def server_files(result):
    """{data file path: frozenset(delete file paths)} of a completed plan's file scan tasks."""
    deletes = result.get("delete-files", [])
    return {
        task["data-file"]["file-path"]: frozenset(deletes[i]["file-path"] for i in task.get("delete-file-references", []))
        for task in result["file-scan-tasks"]
    }


def local_files(table, row_filter, snapshot_id=None):
    scan = table.scan(row_filter=AlwaysTrue() if row_filter is None else row_filter, snapshot_id=snapshot_id)
    return {t.file.file_path: frozenset(d.file_path for d in t.delete_files) for t in scan.plan_files()}


# (PyIceberg expression, the same in the REST spec's JSON); old and new spellings both appear.
FILTERS = [
    (EqualTo("category", "a"), {"type": "eq", "term": "category", "value": "a"}),
    (NotEqualTo("category", "a"), {"type": "not-eq", "left": {"type": "reference", "name": "category"}, "right": "a"}),
    (In("category", {"b", "c"}), {"type": "in", "term": "category", "values": ["b", "c"]}),
    (NotIn("category", {"b", "c"}), {"type": "not-in", "term": "category", "values": ["b", "c"]}),
    (GreaterThanOrEqual("id", 60), {"type": "gt-eq", "term": "id", "value": 60}),
    (LessThan("id", 15), {"type": "lt", "left": {"type": "reference", "name": "id"}, "right": {"type": "literal", "value": 15}}),
    (And(GreaterThan("id", 20), LessThan("id", 35)), {"type": "and", "left": {"type": "gt", "term": "id", "value": 20}, "right": {"type": "lt", "term": "id", "value": 35}}),
    (Or(EqualTo("id", 3), EqualTo("id", 95)), {"type": "or", "left": {"type": "eq", "term": "id", "value": 3}, "right": {"type": "eq", "term": "id", "value": 95}}),
    (Not(LessThan("id", 50)), {"type": "not", "child": {"type": "lt", "term": "id", "value": 50}}),
    (IsNull("amount"), {"type": "is-null", "term": "amount"}),
    (NotNull("amount"), {"type": "not-null", "child": {"type": "reference", "name": "amount"}}),
    (IsNaN("amount"), {"type": "is-nan", "term": "amount"}),
    (StartsWith("note", "b-note-4"), {"type": "starts-with", "term": "note", "value": "b-note-4"}),
    (
        GreaterThanOrEqual("ts", (BASE + datetime.timedelta(days=70)).isoformat()),
        {"type": "gt-eq", "term": "ts", "value": (BASE + datetime.timedelta(days=70)).isoformat()},
    ),
    (IsNull("extra"), {"type": "is-null", "term": "extra"}),
    (GreaterThan("extra", 900), {"type": "gt", "term": "extra", "value": 900}),
    (And(EqualTo("category", "c"), GreaterThan("id", 80)), {"type": "and", "left": {"type": "eq", "term": "category", "value": "c"}, "right": {"type": "gt", "term": "id", "value": 80}}),
]


@pytest.fixture
def events(floe):
    """`plan.events`: partitioned by category, then by day too; a column added half way; position
    deletes on three data files."""
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("plan")
    table = catalog.create_table(
        "plan.events", schema=SCHEMA, properties={"write.parquet.compression-codec": "zstd"}
    )
    with table.update_spec() as spec:
        spec.add_field("category", IdentityTransform(), "category")
    for n, category in enumerate(["a", "b", "c", "a", "b", "c"]):
        table.append(rows(n * 10, 10, category))
    with table.update_schema() as update:
        update.add_column("extra", LongType())
    for n, category in enumerate(["a", "b"]):
        table.append(rows(60 + n * 10, 10, category, extra=True))
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    for n, category in enumerate(["c", "a"]):
        table.append(rows(80 + n * 10, 10, category, extra=True))
    table = catalog.load_table("plan.events")
    files = [t.file for t in table.scan().plan_files()]
    by_path = sorted(files, key=lambda f: f.file_path)
    commit_deletes(
        floe,
        table,
        [(DataFileContent.POSITION_DELETES, f, [0, 2, 4]) for f in (by_path[0], by_path[3], by_path[-1])],
    )
    return catalog, catalog.load_table("plan.events")


def test_server_plans_equal_pyiceberg_local_plans_and_read_back(floe, events):
    catalog, table = events
    assert any(t.delete_files for t in table.scan().plan_files()), "the table has position deletes"
    everything = plan(floe, "events", {}, headers={"X-Iceberg-Access-Delegation": "vended-credentials"})
    assert everything["status"] == "completed" and "plan-id" not in everything, everything.keys()
    # 6 + 2 files partitioned by category, then 2 x 10 by category and day.
    assert server_files(everything) == local_files(table, None) and len(server_files(everything)) == 28
    for row_filter, json_filter in FILTERS:
        result = plan(floe, "events", {"filter": json_filter})
        expected = local_files(table, row_filter)
        assert server_files(result) == expected, (json_filter, sorted(server_files(result)), sorted(expected))
        for task in result["file-scan-tasks"]:
            # Narrowed per partition (compared with PyIceberg's residuals in the next test).
            assert task["residual-filter"] in (True, json_filter) or task["residual-filter"] in json_filter.values(), task
    # At least one filter prunes by partition and one by column metrics only.
    assert len(local_files(table, EqualTo("category", "a"))) < 28
    assert 0 < len(local_files(table, GreaterThanOrEqual("id", 60))) < 28

    # Every content file is the spec's: partition values per spec field, stats when asked.
    stats = plan(floe, "events", {"filter": {"type": "eq", "term": "category", "value": "c"}, "stats-fields": ["id", "extra"]})
    task = stats["file-scan-tasks"][0]["data-file"]
    assert task["content"] == "data" and task["file-format"] == "parquet" and task["spec-id"] in (1, 2)
    assert task["partition"][0] == "c", task["partition"]
    assert set(task["lower-bounds"]["keys"]) <= {1, 6} and 1 in task["lower-bounds"]["keys"]
    assert all(v > 0 for v in task["value-counts"]["values"])
    assert "lower-bounds" not in everything["file-scan-tasks"][0]["data-file"]
    deletes = everything["delete-files"]
    assert len(deletes) == 3 and {d["content"] for d in deletes} == {"position-deletes"}

    # Read back with the plan's credentials (scoped to the table): the rows PyIceberg reads.
    credentials = everything["storage-credentials"]
    assert credentials and credentials[0]["prefix"].startswith(table.metadata.location), credentials
    io = PyArrowFileIO({**credentials[0]["config"], "s3.endpoint": floe.s3_endpoint})
    total = 0
    for task in everything["file-scan-tasks"]:
        with io.new_input(task["data-file"]["file-path"]).open() as f:
            data = pq.read_table(f)
        deleted = set()
        for i in task.get("delete-file-references", []):
            with io.new_input(deletes[i]["file-path"]).open() as f:
                d = pq.read_table(f).to_pydict()
            deleted |= {p for fp, p in zip(d["file_path"], d["pos"]) if fp == task["data-file"]["file-path"] and p < data.num_rows}
        total += data.num_rows - len(deleted)
        assert data.num_rows == task["data-file"]["record-count"]
    assert total == len(table.scan().to_arrow()) < 100

    # Time travel: an older snapshot, with the schema of its time or of now.
    first = table.metadata.snapshots[2].snapshot_id
    assert server_files(plan(floe, "events", {"snapshot-id": first})) == local_files(table, None, first)
    r = requests.post(f"{table_url(floe, 'events')}/plan", json={"snapshot-id": first, "use-snapshot-schema": True, "filter": {"type": "is-null", "term": "extra"}}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestException", r.text
    # On a warehouse branch, the branch's version of the table is planned.
    wid = next(w["id"] for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
    r = requests.post(f"{floe.base}/management/v1/warehouses/{wid}/branches", json={"name": "dev"}, timeout=30)
    assert r.status_code == 201, r.text
    dev = load_catalog("dev", type="rest", uri=floe.uri, warehouse="demo@dev")
    dev.load_table("plan.events").append(rows(500, 5, "z", extra=True))
    dev_prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo@dev"}, timeout=30).json()["overrides"]["prefix"]
    on_dev = requests.post(f"{floe.uri}/v1/{dev_prefix}/namespaces/plan/tables/events/plan", json={}, timeout=60).json()
    assert set(server_files(on_dev)) == set(local_files(dev.load_table("plan.events"), None))
    assert len(server_files(on_dev)) == len(server_files(everything)) + 5
    assert server_files(plan(floe, "events", {})) == server_files(everything), "main is unchanged"
    # Case-insensitive names when asked.
    upper = {"type": "eq", "term": "CATEGORY", "value": "a"}
    assert requests.post(f"{table_url(floe, 'events')}/plan", json={"filter": upper}, timeout=30).status_code == 400
    assert server_files(plan(floe, "events", {"filter": upper, "case-sensitive": False})) == local_files(table, EqualTo("category", "a"))


def test_pyiceberg_plans_on_the_server_when_the_warehouse_says_so(floe, events):
    """PyIceberg 0.12 plans on the server when the catalog's configuration says
    `scan-planning-mode: server` (Floe sends the warehouse's mode there, and in each table's
    config): the files, deletes and rows it then reads equal its own local planning's, and each
    task's residual filter equals the residual PyIceberg's own evaluator finds for the file's
    partition."""
    local_catalog, table = events
    wid = next(w["id"] for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
    mode_url = f"{floe.base}/management/v1/warehouses/{wid}/scan-planning"
    assert requests.put(mode_url, json={"mode": "server"}, timeout=10).json() == {"mode": "server"}
    try:
        time.sleep(5.5)  # the mode is cached for up to five seconds
        config = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=30).json()
        assert config["defaults"].get("scan-planning-mode") == "server", config
        server = load_catalog("server-planned", type="rest", uri=floe.uri, warehouse="demo")
        assert server.supports_server_side_planning()
        local = load_catalog("client-planned", type="rest", uri=floe.uri, warehouse="demo", **{"scan-planning-mode": "client"})
        assert not local.supports_server_side_planning()
        planned_before = plan_requests(floe)
        remote, own = server.load_table("plan.events"), local.load_table("plan.events")
        narrowed = 0
        for row_filter, _ in FILTERS:
            by_server = {t.file.file_path: t for t in remote.scan(row_filter=row_filter).plan_files()}
            by_client = {t.file.file_path: t for t in own.scan(row_filter=row_filter).plan_files()}
            assert set(by_server) == set(by_client), row_filter
            for path, task in by_server.items():
                assert {d.file_path for d in task.delete_files} == {d.file_path for d in by_client[path].delete_files}
                got, want = same_form(task.residual, own.schema()), same_form(by_client[path].residual, own.schema())
                assert got == want, (row_filter, path, got, want)
                narrowed += task.residual != row_filter
            assert len(remote.scan(row_filter=row_filter).to_arrow()) == len(own.scan(row_filter=row_filter).to_arrow())
        assert narrowed > 0, "some residuals were narrowed by partition"
        assert plan_requests(floe) >= planned_before + 2 * len(FILTERS), "PyIceberg called the plan endpoint"
    finally:
        requests.put(mode_url, json={"mode": None}, timeout=10)


def plan_requests(floe):
    """How many planTableScan requests Floe has answered (its metrics)."""
    text = requests.get(f"{floe.base}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("floe_http_requests_total{")
        and 'method="POST"' in line
        and '/tables/{table}/plan"' in line
    )


def same_form(expression, schema):
    """A residual bound to the schema, with `not` pushed into its leaves, so that the forms two
    planners write compare equal when they mean the same."""
    from pyiceberg.expressions import AlwaysFalse, AlwaysTrue
    from pyiceberg.expressions.visitors import bind, rewrite_not

    if expression in (AlwaysTrue(), AlwaysFalse()):
        return expression
    try:
        expression = bind(schema, expression, case_sensitive=True)
    except (TypeError, ValueError, AttributeError):
        pass  # bound already
    return rewrite_not(expression)


def test_equality_deletes_apply_to_older_files_of_their_partition(floe, events):
    catalog, table = events
    files = sorted((t.file for t in table.scan().plan_files()), key=lambda f: f.file_path)
    target = next(f for f in files if f.spec_id == 1 and f.partition[0] == "b")
    commit_deletes(floe, table, [(DataFileContent.EQUALITY_DELETES, target, [11, 12])])
    table = catalog.load_table("plan.events")
    table.append(rows(200, 3, "b", extra=True))  # newer than the deletes: not affected
    table = catalog.load_table("plan.events")
    result = plan(floe, "events", {})
    deletes = result["delete-files"]
    equality = [i for i, d in enumerate(deletes) if d["content"] == "equality-deletes"]
    assert len(equality) == 1 and deletes[equality[0]]["equality-ids"] == [1]
    with_it = {t["data-file"]["file-path"] for t in result["file-scan-tasks"] if equality[0] in t.get("delete-file-references", [])}
    # The spec: an equality delete applies to data files of its spec and partition with a
    # smaller data sequence number.
    same_partition_older = {
        e.data_file.file_path
        for m in table.current_snapshot().manifests(table.io)
        if m.content == ManifestContent.DATA
        for e in m.fetch_manifest_entry(table.io, discard_deleted=True)
        if e.data_file.spec_id == 1 and e.data_file.partition[0] == "b"
        and e.sequence_number < table.metadata.last_sequence_number - 1
    }
    assert with_it == same_partition_older and target.file_path in with_it, (with_it, same_partition_older)


def test_incremental_scans_plan_the_appends_between_two_snapshots(floe, events):
    catalog, table = events
    snapshots = table.metadata.snapshots
    # Appends 3..6 (the snapshots after the spec update), exclusive of the start.
    start, end = snapshots[3].snapshot_id, snapshots[7].snapshot_id
    in_range = set()
    at = end
    while at != start:
        snapshot = table.metadata.snapshot_by_id(at)
        if snapshot.summary.operation.value == "append":
            for m in snapshot.manifests(table.io):
                for e in m.fetch_manifest_entry(table.io, discard_deleted=False):
                    if e.status == ManifestEntryStatus.ADDED and e.snapshot_id == at:
                        in_range.add(e.data_file.file_path)
        at = snapshot.parent_snapshot_id
    result = plan(floe, "events", {"start-snapshot-id": start, "end-snapshot-id": end})
    assert set(server_files(result)) == in_range and len(in_range) == 4
    assert not result["delete-files"]
    bad = requests.post(f"{table_url(floe, 'events')}/plan", json={"start-snapshot-id": end, "end-snapshot-id": start}, timeout=30)
    assert bad.status_code == 400, bad.text
    both = requests.post(f"{table_url(floe, 'events')}/plan", json={"snapshot-id": end, "start-snapshot-id": start, "end-snapshot-id": end}, timeout=30)
    assert both.status_code == 400, both.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_large_plans_are_held_split_into_tasks_and_cancelled(backend):
    floe = Floe(
        backend,
        env={
            "FLOE__SERVER__SCAN_PLAN_SYNC_FILES": "4",
            "FLOE__SERVER__SCAN_PLAN_TASK_FILES": "3",
            "FLOE__SERVER__SCAN_PLAN_LIFETIME_SECS": "6",
        },
    )
    try:
        catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
        catalog.create_namespace("plan")
        table = catalog.create_table("plan.big", schema=SCHEMA)
        for n in range(10):
            table.append(rows(n * 10, 10, "abc"[n % 3]))
        table = catalog.load_table("plan.big")
        filter_json = {"type": "gt-eq", "term": "id", "value": 35}
        first = plan(floe, "big", {"filter": filter_json})
        assert first["status"] == "submitted" and first["plan-id"], first
        url = f"{table_url(floe, 'big')}/plan/{first['plan-id']}"
        deadline = time.monotonic() + 30
        while True:
            polled = requests.get(url, timeout=30).json()
            if polled["status"] != "submitted":
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert polled["status"] == "completed" and polled["plan-id"] == first["plan-id"], polled
        tasks = polled["plan-tasks"]
        assert len(tasks) == 4, tasks  # ten one-file manifests, three per task
        found = {}
        for task in tasks:
            r = requests.post(f"{table_url(floe, 'big')}/tasks", json={"plan-task": task}, timeout=30)
            assert r.status_code == 200, r.text
            found.update(server_files(r.json()))
        assert found == local_files(table, GreaterThanOrEqual("id", 35)) and len(found) == 7

        # Another table's plan id and unknown ids are "no such plan" / "no such plan task".
        catalog.create_table("plan.other", schema=SCHEMA)
        other = requests.get(f"{table_url(floe, 'other')}/plan/{first['plan-id']}", timeout=30)
        assert other.status_code == 404 and other.json()["error"]["type"] == "NoSuchPlanIdException", other.text
        r = requests.post(f"{table_url(floe, 'other')}/tasks", json={"plan-task": tasks[0]}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchPlanTaskException", r.text
        r = requests.post(f"{table_url(floe, 'big')}/tasks", json={"plan-task": "nope"}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchPlanTaskException", r.text

        # Cancelled: the plan says so and its tasks are no longer served.
        assert requests.delete(url, timeout=30).status_code == 204
        assert requests.get(url, timeout=30).json() == {"status": "cancelled"}
        r = requests.post(f"{table_url(floe, 'big')}/tasks", json={"plan-task": tasks[0]}, timeout=30)
        assert r.status_code == 404, r.text
        r = requests.delete(f"{table_url(floe, 'big')}/plan/unknown", timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchPlanIdException", r.text

        # A table property tells clients to plan on the server (loadTable's config); others
        # are not told.
        table.transaction().set_properties({"floe.scan-planning-mode": "server"}).commit_transaction()
        loaded = requests.get(table_url(floe, "big"), timeout=30).json()
        assert loaded["config"].get("scan-planning-mode") == "server", loaded["config"]
        assert "scan-planning-mode" not in requests.get(table_url(floe, "other"), timeout=30).json()["config"]
        gz = requests.get(table_url(floe, "big"), headers={"accept-encoding": "gzip"}, timeout=30).json()
        assert gz["config"].get("scan-planning-mode") == "server"

        # A warehouse's mode reaches its tables' configs; a table's own property wins.
        wid = next(w["id"] for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"] if w["name"] == "demo")
        mode_url = f"{floe.base}/management/v1/warehouses/{wid}/scan-planning"
        assert requests.get(mode_url, timeout=10).json() == {"mode": None}
        assert requests.put(mode_url, json={"mode": "sometimes"}, timeout=10).status_code == 400
        assert requests.put(mode_url, json={"mode": "server"}, timeout=10).json() == {"mode": "server"}
        assert requests.get(table_url(floe, "other"), timeout=30).json()["config"]["scan-planning-mode"] == "server"
        table.transaction().set_properties({"floe.scan-planning-mode": "client"}).commit_transaction()
        assert requests.get(table_url(floe, "big"), timeout=30).json()["config"]["scan-planning-mode"] == "client"
        assert requests.put(mode_url, json={"mode": None}, timeout=10).json() == {"mode": None}
        assert "scan-planning-mode" not in requests.get(table_url(floe, "other"), timeout=30).json()["config"]

        # Held plans expire: after their lifetime, neither the plan nor its tasks are found.
        held = plan(floe, "big", {"filter": filter_json})
        expiring = f"{table_url(floe, 'big')}/plan/{held['plan-id']}"
        deadline = time.monotonic() + 30
        while requests.get(expiring, timeout=30).json()["status"] == "submitted":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        task = requests.get(expiring, timeout=30).json()["plan-tasks"][0]
        time.sleep(6.5)
        gone = requests.get(expiring, timeout=30)
        assert gone.status_code == 404 and gone.json()["error"]["type"] == "NoSuchPlanIdException", gone.text
        r = requests.post(f"{table_url(floe, 'big')}/tasks", json={"plan-task": task}, timeout=30)
        assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchPlanTaskException", r.text

        # The config advertises the endpoints.
        config = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=30).json()
        for endpoint in [
            "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/plan",
            "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
            "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}/plan/{plan-id}",
            "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/tasks",
        ]:
            assert endpoint in config["endpoints"], endpoint
    finally:
        floe.stop()


def test_bad_plan_requests_are_client_errors(floe, events):
    url = f"{table_url(floe, 'events')}/plan"
    for body in [
        {"filter": {"type": "eq", "term": "nope", "value": 1}},
        {"filter": {"type": "eq", "term": "id", "value": "x"}},
        {"filter": {"type": "what", "term": "id"}},
        {"filter": "id = 1"},
        {"select": ["nope"]},
        {"stats-fields": ["nope"]},
        {"snapshot-id": 42},
        {"start-snapshot-id": 1},
    ]:
        r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestException", (body, r.text)
    r = requests.post(f"{table_url(floe, 'missing')}/plan", json={}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "NoSuchTableException", r.text
