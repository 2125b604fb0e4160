"""PyIceberg 0.12 against Floe: tables end to end (create, write, evolve, time travel, rename,
drop and purge, register, staged create, concurrent commits, metadata files on disk), and bad
input sent as raw HTTP that Floe must refuse without changing anything."""

import datetime
import json
import os
import re
import threading
import time
import uuid
from urllib.parse import quote

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
from pyiceberg.types import (
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
)

METADATA_FILE = re.compile(
    r"^(?P<dir>.+)/metadata/(?P<number>\d{5})-(?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.metadata\.json$"
)

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "category", StringType(), required=False),
    NestedField(3, "n", IntegerType(), required=False),
    NestedField(4, "ts", TimestampType(), required=False),
)

ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("category", pa.string()),
        pa.field("n", pa.int32()),
        pa.field("ts", pa.timestamp("us")),
    ]
)


def catalog_for(floe):
    return load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")


def rows(ids, category="a", day=1):
    """An Arrow table matching SCHEMA: one row per id, n = id * 10."""
    ids = list(ids)
    return pa.Table.from_pydict(
        {
            "id": ids,
            "category": [category] * len(ids),
            "n": [i * 10 for i in ids],
            "ts": [datetime.datetime(2024, 1, day, 12, 0)] * len(ids),
        },
        schema=ARROW_SCHEMA,
    )


def ids_of(table, **scan_args):
    return sorted(table.scan(**scan_args).to_arrow()["id"].to_pylist())


def in_commit_order(table):
    # Floe lists snapshots in commit order, as Java does; PyIceberg users rely on snapshots()[-1].
    snapshots = table.snapshots()
    assert [s.sequence_number for s in snapshots] == sorted(s.sequence_number for s in snapshots)
    return snapshots


def local_path(location):
    """The file behind a location: `demo` is served by Floe's S3 gateway (`s3://demo/<key>` is
    the file `<key>` under the warehouse's folder); other local warehouses use `file://` paths."""
    if location.startswith("s3://demo/"):
        return os.path.join(_DATA_DIRS[-1], "warehouses", "demo", location[len("s3://demo/") :])
    assert location.startswith("file://"), location
    return location[len("file://") :]


# The data dir of the Floe under test (set by the autouse fixture below).
_DATA_DIRS = []


@pytest.fixture(autouse=True)
def _data_dir(floe):
    _DATA_DIRS.append(os.path.join(floe.dir, "data"))
    yield
    _DATA_DIRS.pop()


def files_under(folder):
    found = set()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            found.add(os.path.join(root, name))
    return found


def data_files(table):
    return {local_path(task.file.file_path) for task in table.scan().plan_files()}


def warehouse_root(floe):
    return os.path.join(floe.dir, "data", "warehouses", "demo")


# ---------------------------------------------------------------------------------------------
# Raw HTTP helpers


def prefix_of(floe):
    response = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["overrides"]["prefix"]


def tables_url(floe, namespace):
    return f"{floe.uri}/v1/{quote(prefix_of(floe), safe='')}/namespaces/{quote(namespace, safe='')}/tables"


def assert_iceberg_error(response, statuses, error_type=None):
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"message", "type", "code"} <= set(error), body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["code"] == response.status_code, body
    if error_type is not None:
        assert error["type"] == error_type, body
    return error


RAW_SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}],
}


# ---------------------------------------------------------------------------------------------
# Create, write, read


def test_create_with_partition_spec_and_sort_order(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("shop")
    spec = PartitionSpec(
        PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="category")
    )
    order = SortOrder(
        SortField(source_id=1, transform=IdentityTransform(), direction=SortDirection.DESC,
                  null_order=NullOrder.NULLS_LAST)
    )
    created = catalog.create_table(
        "shop.orders", SCHEMA, partition_spec=spec, sort_order=order, properties={"owner": "bi"}
    )
    assert created.format_version == 2

    # A second client sees exactly what was created.
    table = catalog_for(floe).load_table("shop.orders")
    assert table.metadata.table_uuid == created.metadata.table_uuid
    assert [f.name for f in table.schema().fields] == ["id", "category", "n", "ts"]
    fields = table.spec().fields
    assert len(fields) == 1
    assert fields[0].source_id == 2
    assert fields[0].transform == IdentityTransform()
    assert fields[0].name == "category"
    sort = table.sort_order()
    assert sort.order_id >= 1
    assert len(sort.fields) == 1
    assert sort.fields[0].source_id == 1
    assert sort.fields[0].direction == SortDirection.DESC
    assert sort.fields[0].null_order == NullOrder.NULLS_LAST
    assert table.properties["owner"] == "bi"
    assert table.current_snapshot() is None
    assert table.scan().to_arrow().num_rows == 0

    # The location lies inside the warehouse, and its first metadata file exists.
    assert local_path(table.location()).startswith(warehouse_root(floe) + "/")
    assert os.path.isfile(local_path(table.metadata_location))

    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table("shop.orders", SCHEMA)
    with pytest.raises(NoSuchNamespaceError):
        catalog.create_table("nowhere.orders", SCHEMA)


def test_append_overwrite_and_delete(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("shop")
    spec = PartitionSpec(
        PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="category")
    )
    table = catalog.create_table("shop.items", SCHEMA, partition_spec=spec)

    table.append(rows([1, 2, 3], "a"))
    table.append(rows([4, 5], "b"))
    assert ids_of(table) == [1, 2, 3, 4, 5]
    reader = catalog_for(floe).load_table("shop.items")
    assert ids_of(reader) == [1, 2, 3, 4, 5]
    categories = sorted(
        row["category"] for row in reader.inspect.partitions()["partition"].to_pylist()
    )
    assert categories == ["a", "b"]

    # Overwrite replaces everything.
    table.overwrite(rows([10, 11], "c"))
    assert ids_of(catalog_for(floe).load_table("shop.items")) == [10, 11]

    table.append(rows([12, 13, 14], "c"))
    table.append(rows([20], "d"))
    # Row-level delete inside one data file (rewritten) and of a whole partition.
    table.delete("id = 12")
    assert ids_of(catalog_for(floe).load_table("shop.items")) == [10, 11, 13, 14, 20]
    table.delete("category = 'd'")
    reloaded = catalog_for(floe).load_table("shop.items")
    result = reloaded.scan().to_arrow().sort_by("id").to_pydict()
    assert result["id"] == [10, 11, 13, 14]
    assert result["n"] == [100, 110, 130, 140]
    assert set(result["category"]) == {"c"}

    operations = [s.summary.operation.value for s in in_commit_order(reloaded)]
    assert operations[:2] == ["append", "append"]
    assert "overwrite" in operations[2:] or "delete" in operations[2:]
    assert reloaded.current_snapshot().snapshot_id == table.current_snapshot().snapshot_id
    assert len(reloaded.snapshots()) == len(table.snapshots())


def test_schema_evolution(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("evo")
    table = catalog.create_table("evo.t", SCHEMA)
    table.append(rows([1, 2]))
    first_schema_id = table.schema().schema_id

    with table.update_schema() as update:
        update.add_column("note", StringType(), doc="free text")
    with table.update_schema() as update:
        update.rename_column("category", "kind")
    with table.update_schema() as update:
        update.update_column("n", field_type=LongType())

    reloaded = catalog_for(floe).load_table("evo.t")
    schema = reloaded.schema()
    assert schema.schema_id > first_schema_id
    assert len(reloaded.schemas()) == 4
    assert [f.name for f in schema.fields] == ["id", "kind", "n", "ts", "note"]
    assert schema.find_field("kind").field_id == 2
    assert schema.find_field("n").field_type == LongType()
    assert schema.find_field("n").field_id == 3
    assert schema.find_field("note").doc == "free text"

    # Old files are read through the new schema; new rows use it.
    reloaded.append(
        pa.Table.from_pydict(
            {
                "id": [3],
                "kind": ["z"],
                "n": [2**40],
                "ts": [datetime.datetime(2024, 2, 1)],
                "note": ["big"],
            },
            schema=pa.schema(
                [
                    pa.field("id", pa.int64()),
                    pa.field("kind", pa.string()),
                    pa.field("n", pa.int64()),
                    pa.field("ts", pa.timestamp("us")),
                    pa.field("note", pa.string()),
                ]
            ),
        )
    )
    result = catalog_for(floe).load_table("evo.t").scan().to_arrow().sort_by("id").to_pydict()
    assert result["id"] == [1, 2, 3]
    assert result["kind"] == ["a", "a", "z"]
    assert result["n"] == [10, 20, 2**40]
    assert result["note"] == [None, None, "big"]
    assert "category" not in result


def test_v3_geometry_geography_and_unknown_columns_round_trip(floe):
    """Types Floe's own metadata model (the iceberg crate 0.10) cannot parse pass through as
    PyIceberg wrote them: create, load, evolve, and the metadata file on disk."""
    from pyiceberg.types import GeographyType, GeometryType, UnknownType

    catalog = catalog_for(floe)
    catalog.create_namespace("geo")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "shape", GeometryType("EPSG:4326"), required=False),
        NestedField(3, "area", GeographyType(), required=False),
        NestedField(4, "later", UnknownType(), required=False),
    )
    table = catalog.create_table("geo.t", schema, properties={"format-version": "3"})
    assert table.format_version == 3
    with table.update_schema() as update:
        update.add_column("outline", GeometryType(), doc="added later")
    # (PyIceberg 0.12 cannot write v3 data files' manifests; Spark does, see test_spark.py.)

    reloaded = catalog_for(floe).load_table("geo.t")
    fields = {f.name: f.field_type for f in reloaded.schema().fields}
    assert fields == {
        "id": LongType(),
        "shape": GeometryType("EPSG:4326"),
        "area": GeographyType(),
        "later": UnknownType(),
        "outline": GeometryType(),
    }
    assert [f.field_type for f in reloaded.schemas()[0].fields] == [
        LongType(),
        GeometryType("EPSG:4326"),
        GeographyType(),
        UnknownType(),
    ]
    assert not any(k.startswith("floe.") for k in reloaded.properties)
    with open(local_path(reloaded.metadata_location)) as f:
        on_disk = json.load(f)
    current = next(s for s in on_disk["schemas"] if s["schema-id"] == on_disk["current-schema-id"])
    assert [f["type"] for f in current["fields"]] == [
        "long",
        GeometryType("EPSG:4326").model_dump(),
        "geography",
        "unknown",
        "geometry",
    ]
    assert not any(k.startswith("floe.") for k in on_disk.get("properties", {}))


def test_partition_evolution(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("evo")
    table = catalog.create_table("evo.events", SCHEMA)
    table.append(rows([1, 2, 3], "a", day=1))
    assert table.spec().spec_id == 0
    assert table.spec().fields == ()

    with table.update_spec() as update:
        update.add_identity("category")
    table.append(rows([4, 5], "b", day=2))
    table.append(rows([6], "c", day=3))

    with table.update_spec() as update:
        update.add_field("ts", DayTransform(), "ts_day")
        update.add_field("id", BucketTransform(4), "id_bucket")

    reloaded = catalog_for(floe).load_table("evo.events")
    assert len(reloaded.specs()) == 3
    assert [(f.name, f.transform) for f in reloaded.specs()[1].fields] == [
        ("category", IdentityTransform())
    ]
    spec = reloaded.spec()
    assert spec.spec_id == 2
    assert [(f.name, f.transform) for f in spec.fields] == [
        ("category", IdentityTransform()),
        ("ts_day", DayTransform()),
        ("id_bucket", BucketTransform(4)),
    ]
    assert reloaded.metadata.default_spec_id == 2
    assert reloaded.metadata.last_partition_id == 1002
    assert ids_of(reloaded) == [1, 2, 3, 4, 5, 6]
    # Files written before and after the first evolution carry their own spec ids.
    assert {task.file.spec_id for task in reloaded.scan().plan_files()} == {0, 1}
    # Filters prune on the partition fields and still read the unpartitioned file right.
    assert ids_of(reloaded, row_filter="category = 'b'") == [4, 5]
    assert ids_of(reloaded, row_filter="category = 'a'") == [1, 2, 3]
    assert ids_of(reloaded, row_filter="ts >= '2024-01-03T00:00:00'") == [6]

    # PyIceberg computes day and bucket partition values with pyiceberg-core (pinned in
    # requirements.txt).
    reloaded.append(rows([7, 8], "d", day=4))
    latest = catalog_for(floe).load_table("evo.events")
    assert ids_of(latest) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {task.file.spec_id for task in latest.scan().plan_files()} == {0, 1, 2}
    assert ids_of(latest, row_filter="ts >= '2024-01-04T00:00:00'") == [7, 8]


def test_time_travel_by_snapshot_id(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("tt")
    table = catalog.create_table("tt.t", SCHEMA)
    snapshots = []
    for batch in ([1], [2, 3], [4, 5, 6]):
        table.append(rows(batch))
        snapshots.append(table.current_snapshot().snapshot_id)
    table.delete("id = 1")

    reader = catalog_for(floe).load_table("tt.t")
    assert len(set(snapshots)) == 3
    assert ids_of(reader, snapshot_id=snapshots[0]) == [1]
    assert ids_of(reader, snapshot_id=snapshots[1]) == [1, 2, 3]
    assert ids_of(reader, snapshot_id=snapshots[2]) == [1, 2, 3, 4, 5, 6]
    assert ids_of(reader) == [2, 3, 4, 5, 6]
    history = [entry.snapshot_id for entry in reader.history()]
    assert history[:3] == snapshots
    assert reader.snapshot_by_id(snapshots[1]).parent_snapshot_id == snapshots[0]


def test_large_metadata_comes_gzipped_and_loads_the_same(floe):
    """PyIceberg's HTTP client (requests) asks for gzip; a table whose metadata has grown past
    16 KiB comes compressed, and PyIceberg reads it as it would the plain body."""
    catalog = catalog_for(floe)
    catalog.create_namespace("big")
    table = catalog.create_table("big.wide", SCHEMA)
    properties = {f"note.{i:03}": "x" * 100 for i in range(300)}
    with table.transaction() as tx:
        tx.set_properties(properties)
    for batch in ([1, 2], [3]):
        table.append(rows(batch))

    url = f"{tables_url(floe, 'big')}/wide"
    plain = requests.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    zipped = requests.get(url, timeout=10)
    assert zipped.status_code == 200
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert int(zipped.headers["Content-Length"]) * 4 < len(plain.content)
    assert zipped.json()["metadata"] == plain.json()["metadata"]

    loaded = catalog_for(floe).load_table("big.wide")
    assert {k: v for k, v in loaded.properties.items() if k.startswith("note.")} == properties
    assert ids_of(loaded) == [1, 2, 3]
    assert len(loaded.snapshots()) == 2


# ---------------------------------------------------------------------------------------------
# Listing, renaming, dropping


def test_list_exists_and_rename(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("a")
    catalog.create_namespace("b")
    catalog.create_table("a.t1", SCHEMA).append(rows([1, 2]))
    catalog.create_table("a.t2", SCHEMA)
    assert sorted(catalog.list_tables("a")) == [("a", "t1"), ("a", "t2")]
    assert catalog.list_tables("b") == []
    assert catalog.table_exists("a.t1")
    assert not catalog.table_exists("a.t3")
    assert not catalog.table_exists("b.t1")
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_tables("nowhere")
    with pytest.raises(NoSuchTableError):
        catalog.load_table("a.t3")

    uuid_before = catalog.load_table("a.t1").metadata.table_uuid

    # Within a namespace.
    catalog.rename_table("a.t1", "a.renamed")
    assert sorted(catalog.list_tables("a")) == [("a", "renamed"), ("a", "t2")]
    assert not catalog.table_exists("a.t1")
    moved = catalog_for(floe).load_table("a.renamed")
    assert moved.metadata.table_uuid == uuid_before
    assert ids_of(moved) == [1, 2]

    # Across namespaces.
    catalog.rename_table("a.renamed", "b.moved")
    assert catalog.list_tables("a") == [("a", "t2")]
    assert catalog.list_tables("b") == [("b", "moved")]
    moved = catalog_for(floe).load_table("b.moved")
    assert moved.metadata.table_uuid == uuid_before
    assert ids_of(moved) == [1, 2]
    moved.append(rows([3]))
    assert ids_of(catalog_for(floe).load_table("b.moved")) == [1, 2, 3]

    with pytest.raises(TableAlreadyExistsError):
        catalog.rename_table("b.moved", "a.t2")
    with pytest.raises(NoSuchTableError):
        catalog.rename_table("a.missing", "a.other")
    with pytest.raises(NoSuchNamespaceError):
        catalog.rename_table("a.t2", "nowhere.t2")
    assert catalog.list_tables("a") == [("a", "t2")]
    assert catalog.list_tables("b") == [("b", "moved")]


def test_drop_without_purge_keeps_files(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("d")
    table = catalog.create_table("d.kept", SCHEMA)
    table.append(rows([1, 2, 3]))
    location = local_path(table.location())
    metadata_file = local_path(table.metadata_location)
    files_before = files_under(location)
    assert metadata_file in files_before
    assert data_files(table) <= files_before

    table_uuid = table.metadata.table_uuid
    catalog.drop_table("d.kept")
    assert not catalog.table_exists("d.kept")
    assert catalog.list_tables("d") == []
    with pytest.raises(NoSuchTableError):
        catalog.load_table("d.kept")
    with pytest.raises(NoSuchTableError):
        catalog.drop_table("d.kept")

    # What happens to a dropped table's files is settled (and logged) once per drop.
    assert floe.purge_outcomes(table_uuid) == ["kept: no purge was asked"]
    assert files_under(location) == files_before

    # The namespace is empty again and can be dropped.
    catalog.drop_namespace("d")


def test_purge_removes_the_table_folder_only(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("p")
    doomed = catalog.create_table("p.doomed", SCHEMA)
    doomed.append(rows([1, 2]))
    doomed.append(rows([3]))
    sibling = catalog.create_table("p.sibling", SCHEMA)
    sibling.append(rows([7, 8, 9]))

    doomed_location = local_path(doomed.location())
    sibling_location = local_path(sibling.location())
    assert os.path.isdir(doomed_location)
    sibling_files = files_under(sibling_location)
    assert len(sibling_files) >= 3  # metadata files, manifest list, manifest, data file

    doomed_uuid = doomed.metadata.table_uuid
    catalog.purge_table("p.doomed")
    assert not catalog.table_exists("p.doomed")
    assert catalog.list_tables("p") == [("p", "sibling")]

    assert floe.purge_outcomes(doomed_uuid) == ["deleted"]
    assert not os.path.exists(doomed_location), files_under(doomed_location)

    assert files_under(sibling_location) == sibling_files
    assert ids_of(catalog_for(floe).load_table("p.sibling")) == [7, 8, 9]
    # The warehouse root and namespace folder are still there.
    assert os.path.isdir(warehouse_root(floe))


def test_register_existing_metadata_file(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("r")
    original = catalog.create_table("r.original", SCHEMA)
    original.append(rows([1, 2, 3]))
    metadata_location = original.metadata_location
    snapshot_id = original.current_snapshot().snapshot_id

    # A table dropped without purge comes back by registering its last metadata file.
    catalog.drop_table("r.original")
    registered = catalog.register_table("r.restored", metadata_location)
    assert registered.metadata_location == metadata_location
    assert catalog.table_exists("r.restored")
    loaded = catalog_for(floe).load_table("r.restored")
    assert loaded.metadata.table_uuid == original.metadata.table_uuid
    assert loaded.current_snapshot().snapshot_id == snapshot_id
    assert ids_of(loaded) == [1, 2, 3]

    # It is a normal table afterwards: commits go on from the registered file.
    loaded.append(rows([4]))
    after = catalog_for(floe).load_table("r.restored")
    assert ids_of(after) == [1, 2, 3, 4]
    assert METADATA_FILE.match(after.metadata_location)
    assert int(METADATA_FILE.match(after.metadata_location)["number"]) == int(
        METADATA_FILE.match(metadata_location)["number"]
    ) + 1

    with pytest.raises(TableAlreadyExistsError):
        catalog.register_table("r.restored", metadata_location)
    assert catalog.list_tables("r") == [("r", "restored")]


def test_stage_create_with_create_table_transaction(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("s")
    with catalog.create_table_transaction(
        "s.staged", SCHEMA, properties={"stage": "yes"}
    ) as transaction:
        transaction.append(rows([1, 2]))
        transaction.set_properties(extra="1")
        # Nothing is visible before the transaction commits.
        assert not catalog.table_exists("s.staged")
        assert catalog.list_tables("s") == []

    assert catalog.table_exists("s.staged")
    table = catalog_for(floe).load_table("s.staged")
    assert ids_of(table) == [1, 2]
    assert table.properties["stage"] == "yes"
    assert table.properties["extra"] == "1"
    assert len(table.snapshots()) == 1
    assert os.path.isfile(local_path(table.metadata_location))
    assert METADATA_FILE.match(table.metadata_location)

    # Staging a name that exists is refused at once.
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table_transaction("s.staged", SCHEMA)

    # A staged create that another client overtakes fails at commit (assert-create) and changes
    # nothing.
    transaction = catalog.create_table_transaction("s.raced", SCHEMA)
    transaction.append(rows([9]))
    winner = catalog_for(floe).create_table("s.raced", SCHEMA)
    winner.append(rows([100]))
    with pytest.raises(CommitFailedException):
        transaction.commit_transaction()
    raced = catalog_for(floe).load_table("s.raced")
    assert raced.metadata.table_uuid == winner.metadata.table_uuid
    assert ids_of(raced) == [100]
    assert ids_of(catalog_for(floe).load_table("s.staged")) == [1, 2]


# ---------------------------------------------------------------------------------------------
# Concurrency and metadata files


def test_concurrent_appends_lose_nothing(floe):
    catalog_for(floe).create_namespace("c")
    catalog_for(floe).create_table("c.t", SCHEMA)
    writers, appends_each = 4, 5
    acknowledged = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def writer(number):
        try:
            catalog = catalog_for(floe)
            table = catalog.load_table("c.t")
            start.wait()
            for i in range(appends_each):
                base = number * 1000 + i * 10
                batch = rows(range(base, base + number + 1))
                for _attempt in range(50):
                    try:
                        table.append(batch)
                        break
                    except CommitFailedException:
                        table = catalog.load_table("c.t")
                else:
                    raise AssertionError("an append kept failing")
                with lock:
                    acknowledged.extend(batch.column("id").to_pylist())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert len(acknowledged) == sum(n + 1 for n in range(writers)) * appends_each

    # Every acknowledged row is there, exactly once, and nothing else.
    table = catalog_for(floe).load_table("c.t")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == sorted(acknowledged)
    appends = [s for s in table.snapshots() if s.summary.operation.value == "append"]
    assert len(appends) == writers * appends_each
    # One linear history: each snapshot's parent is the one before it.
    snapshots = in_commit_order(table)
    assert [s.sequence_number for s in snapshots] == list(range(1, len(snapshots) + 1))
    for parent, child in zip(snapshots, snapshots[1:]):
        assert child.parent_snapshot_id == parent.snapshot_id


def test_metadata_files_are_numbered_per_commit(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("m")
    table = catalog.create_table("m.t", SCHEMA)
    location = table.location()

    seen = []

    def check(current):
        match = METADATA_FILE.match(current.metadata_location)
        assert match, current.metadata_location
        assert match["dir"] == location
        path = local_path(current.metadata_location)
        assert os.path.isfile(path)
        with open(path) as f:
            on_disk = json.load(f)
        assert on_disk["table-uuid"] == str(current.metadata.table_uuid)
        assert on_disk["location"] == location
        expected_snapshot = current.metadata.current_snapshot_id
        if expected_snapshot is None:
            assert on_disk.get("current-snapshot-id") in (None, -1)
        else:
            assert on_disk["current-snapshot-id"] == expected_snapshot
        assert on_disk["last-updated-ms"] == current.metadata.last_updated_ms
        if seen:
            logged = [entry["metadata-file"] for entry in on_disk.get("metadata-log", [])]
            assert logged[-1] == seen[-1], (logged, seen)
        seen.append(current.metadata_location)
        return int(match["number"])

    numbers = [check(table)]
    table.append(rows([1]))
    numbers.append(check(table))
    with table.transaction() as transaction:
        transaction.set_properties(k="v")
    numbers.append(check(table))
    with table.update_schema() as update:
        update.add_column("extra", StringType())
    numbers.append(check(table))
    table.delete("id = 1")
    numbers.append(check(table))

    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert numbers[0] == 0
    # A fresh client loads the latest file, and every file is distinct and still on disk.
    assert catalog_for(floe).load_table("m.t").metadata_location == seen[-1]
    assert len(set(seen)) == len(seen)
    on_disk = {
        os.path.join(local_path(location), "metadata", name)
        for name in os.listdir(os.path.join(local_path(location), "metadata"))
        if name.endswith(".metadata.json")
    }
    assert {local_path(s) for s in seen} == on_disk


# ---------------------------------------------------------------------------------------------
# Bad input through raw HTTP


def bad_locations(floe):
    root = warehouse_root(floe)
    outside = os.path.join(floe.dir, "outside")
    return {
        "outside": f"file://{outside}/t",
        "dotdot": f"file://{root}/bad/../../../outside/t",
        "encoded-dotdot": f"file://{root}/bad/%2e%2e/%2e%2e/%2e%2e/outside/t",
        "encoded-dotdot-upper": f"file://{root}/bad/%2E%2E/%2E%2E/%2E%2E/outside/t",
    }


@pytest.mark.parametrize("kind", ["outside", "dotdot", "encoded-dotdot", "encoded-dotdot-upper"])
def test_create_table_with_bad_location_is_refused(floe, kind):
    catalog = catalog_for(floe)
    catalog.create_namespace("bad")
    catalog.create_table("bad.existing", SCHEMA)
    before = catalog.list_tables("bad")
    location = bad_locations(floe)[kind]

    for stage_create in (False, True):
        response = requests.post(
            tables_url(floe, "bad"),
            json={
                "name": "evil",
                "schema": RAW_SCHEMA,
                "location": location,
                "stage-create": stage_create,
            },
            timeout=10,
        )
        assert_iceberg_error(response, (400, 403))

    assert catalog.list_tables("bad") == before
    assert not catalog.table_exists("bad.evil")
    assert not os.path.exists(os.path.join(floe.dir, "outside"))


def test_write_path_property_outside_table_is_refused(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("bad")
    table = catalog.create_table("bad.t", SCHEMA)
    table.append(rows([1]))
    before = catalog.load_table("bad.t")
    outside = f"file://{os.path.join(floe.dir, 'outside')}"

    # On create, through the properties.
    response = requests.post(
        tables_url(floe, "bad"),
        json={"name": "evil", "schema": RAW_SCHEMA, "properties": {"write.data.path": outside}},
        timeout=10,
    )
    assert_iceberg_error(response, (400, 403))
    assert catalog.list_tables("bad") == [("bad", "t")]

    # On commit, through set-properties.
    for path in (outside, table.location() + "/../other", f"{warehouse_root(floe)}/elsewhere"):
        if not path.startswith("file://"):
            path = "file://" + path
        response = requests.post(
            f"{tables_url(floe, 'bad')}/t",
            json={
                "requirements": [],
                "updates": [{"action": "set-properties", "updates": {"write.data.path": path}}],
            },
            timeout=10,
        )
        assert_iceberg_error(response, (400, 403))

    after = catalog_for(floe).load_table("bad.t")
    assert after.metadata_location == before.metadata_location
    assert "write.data.path" not in after.properties
    assert ids_of(after) == [1]


def test_unknown_update_action_is_refused(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("bad")
    table = catalog.create_table("bad.t", SCHEMA)
    response = requests.post(
        f"{tables_url(floe, 'bad')}/t",
        json={"requirements": [], "updates": [{"action": "frobnicate-table", "x": 1}]},
        timeout=10,
    )
    assert_iceberg_error(response, (400,))
    after = catalog_for(floe).load_table("bad.t")
    assert after.metadata_location == table.metadata_location


def test_failing_assert_table_uuid_is_a_commit_conflict(floe):
    catalog = catalog_for(floe)
    catalog.create_namespace("bad")
    table = catalog.create_table("bad.t", SCHEMA)
    response = requests.post(
        f"{tables_url(floe, 'bad')}/t",
        json={
            "requirements": [{"type": "assert-table-uuid", "uuid": str(uuid.uuid4())}],
            "updates": [{"action": "set-properties", "updates": {"k": "v"}}],
        },
        timeout=10,
    )
    assert_iceberg_error(response, (409,), "CommitFailedException")
    after = catalog_for(floe).load_table("bad.t")
    assert after.metadata_location == table.metadata_location
    assert "k" not in after.properties

    # The same update with the right uuid goes through.
    response = requests.post(
        f"{tables_url(floe, 'bad')}/t",
        json={
            "requirements": [{"type": "assert-table-uuid", "uuid": str(table.metadata.table_uuid)}],
            "updates": [{"action": "set-properties", "updates": {"k": "v"}}],
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["properties"]["k"] == "v"
    assert catalog_for(floe).load_table("bad.t").properties["k"] == "v"


def test_demo_is_served_by_the_gateway_with_vended_keys(floe):
    """The quickstart: with nothing but the catalog URI, PyIceberg writes and reads `s3://demo/...`
    through Floe's own S3 gateway, with a key the catalog vended for that one table."""
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("quick")
    table = catalog.create_table("quick.start", schema=pa.schema([("id", pa.int64())]))
    assert table.location().startswith("s3://demo/quick/start-"), table.location()
    assert table.io.properties["s3.endpoint"] == floe.s3_endpoint
    assert table.io.properties["s3.access-key-id"].startswith("FLS1")
    table.append(pa.table({"id": [1, 2, 3]}))
    assert ids_of(catalog.load_table("quick.start")) == [1, 2, 3]
    # The files are in the warehouse folder, and no local path reached the client.
    files = data_files(catalog.load_table("quick.start"))
    assert files and all(os.path.isfile(p) for p in files)
    raw = requests.get(
        f"{floe.uri}/v1/{prefix_of(floe)}/namespaces/quick/tables/start",
        headers={"X-Iceberg-Access-Delegation": "vended-credentials"},
    ).json()
    assert floe.dir not in json.dumps(raw)
    assert raw["storage-credentials"][0]["prefix"] == table.location()

    # The vended key opens this table's folder and nothing else.
    import boto3
    import botocore.config

    s3 = boto3.client(
        "s3",
        endpoint_url=floe.s3_endpoint,
        aws_access_key_id=table.io.properties["s3.access-key-id"],
        aws_secret_access_key=table.io.properties["s3.secret-access-key"],
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    key = table.location()[len("s3://demo/") :]
    listed = s3.list_objects_v2(Bucket="demo", Prefix=key + "/data/")
    assert listed["KeyCount"] >= 1
    other = catalog.create_table("quick.other", schema=pa.schema([("id", pa.int64())]))
    other_key = other.location()[len("s3://demo/") :]
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.list_objects_v2(Bucket="demo", Prefix=other_key + "/")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(s3.exceptions.ClientError) as denied:
        s3.put_object(Bucket="demo", Key=other_key + "/data/evil.parquet", Body=b"x")
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
