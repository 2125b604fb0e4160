"""The branching index end to end: git-like branches, tags and commits over a whole warehouse,
used by real engines (PyIceberg, DuckDB, Spark) through nothing but the catalog's `warehouse`
setting (`demo@dev`, `demo@<tag>`, `demo@<commit-id>`), and managed through the management API
(branches, tags, commit log, diff, reset, content-aware merge)."""

import concurrent.futures
import itertools
import logging
import os
import random
import threading
import time

import duckdb
import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    ForbiddenError,
    NoSuchTableError,
)
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType
from test_spark import spark  # noqa: F401 - the Spark suite's SparkSession fixture (module scope)

from conftest import duckdb_with_iceberg

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "label", StringType(), required=False),
)
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("label", pa.string())])


def rows(ids, label=None):
    """An Arrow table matching SCHEMA: one row per id, label `<label or 'row'>-<id>`."""
    ids = list(ids)
    return pa.Table.from_pydict(
        {"id": ids, "label": [f"{label or 'row'}-{i}" for i in ids]}, schema=ARROW_SCHEMA
    )


def catalog(floe, ref=None):
    """A PyIceberg catalog on `demo`, or on `demo@<ref>` (a branch, tag or commit id)."""
    warehouse = "demo" if ref is None else f"demo@{ref}"
    return load_catalog(f"floe-{ref or 'main'}", type="rest", uri=floe.uri, warehouse=warehouse)


def ids_of(table):
    return sorted(table.scan().to_arrow()["id"].to_pylist())


def content_of(table):
    """The rows of a table as sorted (id, label) pairs."""
    data = table.scan().to_arrow().to_pydict()
    return sorted(zip(data["id"], data["label"]))


def local_path(floe, location):
    """The file behind a location of the gateway-served `demo` warehouse."""
    assert location.startswith("s3://demo/"), location
    return os.path.join(floe.dir, "data", "warehouses", "demo", location[len("s3://demo/") :])


def files_under(folder):
    found = set()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            found.add(os.path.join(root, name))
    return found


class Mgmt:
    """The management API of `demo`'s branching index."""

    def __init__(self, floe, warehouse="demo"):
        response = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10)
        assert response.status_code == 200, response.text
        (self.id,) = [w["id"] for w in response.json()["warehouses"] if w["name"] == warehouse]
        self.url = f"{floe.base}/management/v1/warehouses/{self.id}"
        self.uri = floe.uri

    def get(self, path, **params):
        return requests.get(f"{self.url}/{path}", params=params, timeout=30)

    def post(self, path, body=None, data=None):
        if data is not None:
            return requests.post(
                f"{self.url}/{path}",
                data=data,
                headers={"content-type": "application/json"},
                timeout=60,
            )
        return requests.post(f"{self.url}/{path}", json=body, timeout=60)

    def delete(self, path):
        return requests.delete(f"{self.url}/{path}", timeout=30)

    def create(self, kind, name, source=None):
        body = {"name": name}
        if source is not None:
            body["from"] = source
        response = self.post(kind, body)
        assert response.status_code == 201, (response.status_code, response.text)
        made = response.json()
        assert made["name"] == name
        assert made["type"] == ("branch" if kind == "branches" else "tag")
        assert made["catalog-prefix"] == f"{self.id}@{name}"
        return made

    def branch(self, name, source=None):
        return self.create("branches", name, source)

    def tag(self, name, source=None):
        return self.create("tags", name, source)

    def head(self, name, kind="branches"):
        response = self.get(f"{kind}/{name}")
        assert response.status_code == 200, response.text
        return response.json()["commit-id"]

    def merge(self, source, target="main", expect=200, **extra):
        response = self.post("merge", {"source": source, "target": target, **extra})
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json()

    def log(self, ref="main", page_size=100):
        response = self.get("commits", ref=ref, **{"page-size": page_size})
        assert response.status_code == 200, response.text
        return response.json()

    def commit(self, commit_id):
        response = self.get(f"commits/{commit_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def config(self, warehouse):
        return requests.get(f"{self.uri}/v1/config", params={"warehouse": warehouse}, timeout=10)


def by_name(entries):
    """Merge or diff entries keyed by (kind, dotted namespace, name)."""
    keyed = {}
    for entry in entries:
        key = (entry["kind"], ".".join(entry["namespace"]), entry.get("name"))
        assert key not in keyed, entries
        keyed[key] = entry
    return keyed


def assert_error(response, status, error_type=None):
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == status, error
    assert error["message"], error
    if error_type is not None:
        assert error["type"] == error_type, error
    return error


# ---------------------------------------------------------------------------------------------
# 1. Branch, write, merge


def test_write_on_a_branch_then_merge_into_main(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("sales")
    main.create_table("sales.orders", SCHEMA).append(rows([1, 2, 3]))
    main_location = main.load_table("sales.orders").metadata_location

    made = api.branch("dev")
    assert made["commit-id"] == api.head("main")
    config = api.config("demo@dev")
    assert config.status_code == 200, config.text
    assert config.json()["overrides"]["prefix"] == f"{api.id}@dev"

    dev = catalog(floe, "dev")
    assert ids_of(dev.load_table("sales.orders")) == [1, 2, 3]
    dev.load_table("sales.orders").append(rows([4, 5], "dev"))
    dev.create_table("sales.returns", SCHEMA).append(rows([70], "ret"))
    dev.create_namespace("staging")
    dev.create_table("staging.events", SCHEMA).append(rows([100, 101], "ev"))

    # Main does not see any of it.
    main = catalog(floe)
    orders = main.load_table("sales.orders")
    assert orders.metadata_location == main_location
    assert ids_of(orders) == [1, 2, 3]
    assert main.list_tables("sales") == [("sales", "orders")]
    assert ("staging",) not in main.list_namespaces()
    with pytest.raises(NoSuchTableError):
        main.load_table("sales.returns")
    # Dev sees its own writes.
    assert ids_of(catalog(floe, "dev").load_table("sales.orders")) == [1, 2, 3, 4, 5]
    assert sorted(dev.list_namespaces()) == [("sales",), ("staging",)]

    main_head = api.head("main")
    dev_head = api.head("dev")
    merged = api.merge("dev", "main")
    assert merged["commit-id"] is not None
    assert merged["fast-forward"] is True
    tables = by_name(merged["tables"])
    assert set(tables) == {
        ("table", "sales", "orders"),
        ("table", "sales", "returns"),
        ("table", "staging", "events"),
        ("namespace", "staging", None),
    }, merged
    assert {entry["change"] for entry in tables.values()} == {"taken"}, merged
    assert api.head("main") == merged["commit-id"]
    assert set(api.commit(merged["commit-id"])["parents"]) == {main_head, dev_head}

    main = catalog(floe)
    assert content_of(main.load_table("sales.orders")) == [
        (1, "row-1"), (2, "row-2"), (3, "row-3"), (4, "dev-4"), (5, "dev-5"),
    ]
    assert sorted(main.list_tables("sales")) == [("sales", "orders"), ("sales", "returns")]
    assert content_of(main.load_table("sales.returns")) == [(70, "ret-70")]
    assert ("staging",) in main.list_namespaces()
    assert content_of(main.load_table("staging.events")) == [(100, "ev-100"), (101, "ev-101")]
    # A table taken from dev is dev's version exactly.
    assert (
        main.load_table("sales.orders").metadata_location
        == catalog(floe, "dev").load_table("sales.orders").metadata_location
    )

    # Merging again has nothing to do.
    again = api.merge("dev", "main")
    assert again["commit-id"] is None and again["tables"] == [], again
    assert api.head("main") == merged["commit-id"]

    # Main keeps working after the merge, and dev does not see main's new writes.
    main.load_table("sales.orders").append(rows([6]))
    assert ids_of(catalog(floe).load_table("sales.orders")) == [1, 2, 3, 4, 5, 6]
    assert ids_of(catalog(floe, "dev").load_table("sales.orders")) == [1, 2, 3, 4, 5]


def test_main_commits_to_a_table_taken_from_a_branch(floe):
    """A table dev committed to several times since the fork, taken by a fast-forward merge: main
    must be able to commit to it afterwards."""
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("ff")
    main.create_table("ff.t", SCHEMA).append(rows([1]))
    api.branch("dev")
    dev = catalog(floe, "dev")
    dev.load_table("ff.t").append(rows([2], "dev"))
    dev.load_table("ff.t").append(rows([3], "dev"))

    merged = api.merge("dev", "main")
    assert merged["fast-forward"] is True
    assert [(e["name"], e["change"]) for e in merged["tables"]] == [("t", "taken")], merged
    table = catalog(floe).load_table("ff.t")
    assert ids_of(table) == [1, 2, 3]
    head = table.current_snapshot().snapshot_id
    # A commit that asserts only the table's uuid (PyIceberg's set_properties) keeps the data.
    with table.transaction() as tx:
        tx.set_properties({"reviewed": "yes"})
    table = catalog(floe).load_table("ff.t")
    assert table.properties["reviewed"] == "yes"
    assert table.current_snapshot().snapshot_id == head
    assert ids_of(table) == [1, 2, 3]
    # An append (asserting main's snapshot) goes through.
    table.append(rows([4], "main"))
    assert ids_of(catalog(floe).load_table("ff.t")) == [1, 2, 3, 4]
    # Dev goes on too.
    catalog(floe, "dev").load_table("ff.t").append(rows([5], "dev"))
    assert ids_of(catalog(floe, "dev").load_table("ff.t")) == [1, 2, 3, 5]


# ---------------------------------------------------------------------------------------------
# 2. Appends on both sides


def test_appends_on_both_sides_merge_with_all_rows(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("m")
    main.create_table("m.t", SCHEMA).append(rows([1, 2]))
    api.branch("dev")

    main.load_table("m.t").append(rows([10, 11], "main"))
    dev = catalog(floe, "dev")
    dev.load_table("m.t").append(rows([20, 21], "dev"))
    dev.load_table("m.t").append(rows([22], "dev"))
    dev_location = dev.load_table("m.t").metadata_location
    main_head, dev_head = api.head("main"), api.head("dev")

    merged = api.merge("dev", "main", message="bring dev in")
    assert merged["fast-forward"] is False
    assert [(e["kind"], e["namespace"], e["name"], e["change"]) for e in merged["tables"]] == [
        ("table", ["m"], "t", "merged")
    ], merged

    table = catalog(floe).load_table("m.t")
    assert content_of(table) == [
        (1, "row-1"), (2, "row-2"), (10, "main-10"), (11, "main-11"),
        (20, "dev-20"), (21, "dev-21"), (22, "dev-22"),
    ]
    # The replayed appends continue main's history linearly.
    snapshots = table.snapshots()
    assert len(snapshots) == 4
    for parent, child in zip(snapshots, snapshots[1:]):
        assert child.parent_snapshot_id == parent.snapshot_id
    assert [s.sequence_number for s in snapshots] == [1, 2, 3, 4]
    assert table.current_snapshot().snapshot_id == snapshots[-1].snapshot_id

    # Dev is unchanged by the merge.
    assert api.head("dev") == dev_head
    dev_table = catalog(floe, "dev").load_table("m.t")
    assert dev_table.metadata_location == dev_location
    assert ids_of(dev_table) == [1, 2, 20, 21, 22]

    # The merge commit: two parents, the message, first on main's log.
    commit = api.commit(merged["commit-id"])
    assert commit["parents"][0] == main_head
    assert sorted(commit["parents"]) == sorted([main_head, dev_head])
    assert commit["message"] == "bring dev in"
    assert [(c["kind"], c["namespace"], c.get("name")) for c in commit["changes"]] == [
        ("table", ["m"], "t")
    ]
    log = api.log("main")["commits"]
    assert log[0]["id"] == merged["commit-id"]
    assert log[1]["id"] == main_head  # first-parent history
    assert dev_head not in [c["id"] for c in log]

    # Main still commits on top of the merged table.
    catalog(floe).load_table("m.t").append(rows([12], "main"))
    assert ids_of(catalog(floe).load_table("m.t")) == [1, 2, 10, 11, 12, 20, 21, 22]


def test_merging_a_branch_twice_keeps_mains_rows(floe):
    """Git-like workflow: merge dev, keep working on both, merge dev again."""
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("m")
    main.create_table("m.t", SCHEMA).append(rows([1]))
    api.branch("dev")
    main.load_table("m.t").append(rows([10], "main"))
    catalog(floe, "dev").load_table("m.t").append(rows([20], "dev"))
    first = api.merge("dev", "main")
    assert first["tables"][0]["change"] == "merged", first
    assert ids_of(catalog(floe).load_table("m.t")) == [1, 10, 20]

    # Only dev moves on; merging it again must keep every row main has.
    catalog(floe, "dev").load_table("m.t").append(rows([21], "dev"))
    second = api.merge("dev", "main")
    assert second["commit-id"] is not None, second
    assert ids_of(catalog(floe).load_table("m.t")) == [1, 10, 20, 21]

    # Both move on again, then a third merge.
    catalog(floe).load_table("m.t").append(rows([11], "main"))
    catalog(floe, "dev").load_table("m.t").append(rows([22], "dev"))
    api.merge("dev", "main")
    assert ids_of(catalog(floe).load_table("m.t")) == [1, 10, 11, 20, 21, 22]


def test_syncing_main_into_a_branch_then_merging_back_keeps_every_row(floe):
    """Merge dev into main, then main into dev while dev moved on, then dev into main again."""
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("s")
    main.create_table("s.t", SCHEMA).append(rows([1]))
    api.branch("dev")
    main.load_table("s.t").append(rows([10], "main"))
    catalog(floe, "dev").load_table("s.t").append(rows([20], "dev"))
    api.merge("dev", "main")
    catalog(floe, "dev").load_table("s.t").append(rows([21], "dev"))

    # main's replayed snapshot carries dev's id but main's rows too: dev gets main's 10.
    synced = api.merge("main", "dev")
    assert [(e["name"], e["change"]) for e in synced["tables"]] == [("t", "merged")], synced
    dev_table = catalog(floe, "dev").load_table("s.t")
    assert ids_of(dev_table) == [1, 10, 20, 21]
    ids = [s.snapshot_id for s in dev_table.snapshots()]
    assert len(ids) == len(set(ids))
    assert ids_of(catalog(floe).load_table("s.t")) == [1, 10, 20]

    catalog(floe).load_table("s.t").append(rows([11], "main"))
    catalog(floe, "dev").load_table("s.t").append(rows([22], "dev"))
    api.merge("dev", "main")
    assert ids_of(catalog(floe).load_table("s.t")) == [1, 10, 11, 20, 21, 22]
    # Nothing new on either side: merging again in either direction changes no rows.
    api.merge("main", "dev")
    assert ids_of(catalog(floe, "dev").load_table("s.t")) == [1, 10, 11, 20, 21, 22]
    again = api.merge("dev", "main")
    assert ids_of(catalog(floe).load_table("s.t")) == [1, 10, 11, 20, 21, 22], again


def test_property_and_column_changes_apart_compose(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("p")
    main.create_table("p.t", SCHEMA, properties={"owner": "a"}).append(rows([1]))
    api.branch("dev")

    dev_table = catalog(floe, "dev").load_table("p.t")
    with dev_table.update_schema() as update:
        update.add_column("note", StringType())
    with dev_table.transaction() as tx:
        tx.set_properties({"dev-key": "d"})
    with catalog(floe).load_table("p.t").transaction() as tx:
        tx.set_properties({"main-key": "m"})

    merged = api.merge("dev", "main")
    assert [e["change"] for e in merged["tables"]] == ["merged"], merged
    table = catalog(floe).load_table("p.t")
    assert [f.name for f in table.schema().fields] == ["id", "label", "note"]
    assert table.properties["main-key"] == "m"
    assert table.properties["dev-key"] == "d"
    assert table.properties["owner"] == "a"
    assert ids_of(table) == [1]

    # The same property changed differently on both sides does not compose.
    api.branch("dev2")
    with catalog(floe).load_table("p.t").transaction() as tx:
        tx.set_properties({"owner": "main-team"})
    with catalog(floe, "dev2").load_table("p.t").transaction() as tx:
        tx.set_properties({"owner": "dev-team"})
    before = catalog(floe).load_table("p.t").metadata_location
    conflict = api.merge("dev2", "main", expect=409)
    assert [(c["kind"], c["namespace"], c["name"]) for c in conflict["conflicts"]] == [
        ("table", ["p"], "t")
    ], conflict
    assert "owner" in conflict["conflicts"][0]["reason"]
    assert catalog(floe).load_table("p.t").metadata_location == before
    assert catalog(floe).load_table("p.t").properties["owner"] == "main-team"


# ---------------------------------------------------------------------------------------------
# 3. Conflicts


def test_conflicting_schema_changes_refuse_the_merge_then_source_wins(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("c")
    main.create_table("c.t", SCHEMA).append(rows([1, 2]))
    main.create_table("c.other", SCHEMA).append(rows([5]))
    api.branch("dev")

    with catalog(floe).load_table("c.t").update_schema() as update:
        update.add_column("from_main", StringType())
    dev = catalog(floe, "dev")
    with dev.load_table("c.t").update_schema() as update:
        update.add_column("from_dev", StringType())
    # A change on dev that alone would merge: it must not be applied either.
    dev.load_table("c.other").append(rows([6]))
    dev.create_table("c.fresh", SCHEMA)

    main_location = catalog(floe).load_table("c.t").metadata_location
    other_location = catalog(floe).load_table("c.other").metadata_location
    heads = (api.head("main"), api.head("dev"))
    main_log = [c["id"] for c in api.log("main")["commits"]]

    response = api.post("merge", {"source": "dev", "target": "main"})
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"]["type"] == "MergeConflictException"
    assert body["error"]["code"] == 409
    assert "c.t" in body["error"]["message"]
    assert [(c["kind"], c["namespace"], c["name"]) for c in body["conflicts"]] == [
        ("table", ["c"], "t")
    ], body
    assert "added columns" in body["conflicts"][0]["reason"]

    # Nothing changed.
    assert (api.head("main"), api.head("dev")) == heads
    assert [c["id"] for c in api.log("main")["commits"]] == main_log
    main = catalog(floe)
    assert main.load_table("c.t").metadata_location == main_location
    assert main.load_table("c.other").metadata_location == other_location
    assert ids_of(main.load_table("c.other")) == [5]
    assert not main.table_exists("c.fresh")
    assert [f.name for f in main.load_table("c.t").schema().fields] == ["id", "label", "from_main"]

    # source-wins takes dev's table.
    merged = api.merge("dev", "main", strategy="source-wins")
    assert merged["commit-id"] is not None
    changes = {(e["name"], e["change"]) for e in merged["tables"]}
    assert changes == {("t", "taken"), ("other", "taken"), ("fresh", "taken")}, merged
    main = catalog(floe)
    dev = catalog(floe, "dev")
    table = main.load_table("c.t")
    assert [f.name for f in table.schema().fields] == ["id", "label", "from_dev"]
    assert table.metadata_location == dev.load_table("c.t").metadata_location
    assert ids_of(table) == [1, 2]
    assert ids_of(main.load_table("c.other")) == [5, 6]
    assert main.table_exists("c.fresh")
    assert len(api.commit(merged["commit-id"])["parents"]) == 2


def test_target_wins_keeps_the_target_version(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("c")
    main.create_table("c.t", SCHEMA).append(rows([1]))
    api.branch("dev")
    with catalog(floe).load_table("c.t").update_schema() as update:
        update.add_column("from_main", StringType())
    dev = catalog(floe, "dev")
    with dev.load_table("c.t").update_schema() as update:
        update.add_column("from_dev", StringType())
    dev.create_table("c.fresh", SCHEMA).append(rows([9]))
    main_location = catalog(floe).load_table("c.t").metadata_location

    merged = api.merge("dev", "main", strategy="target-wins")
    assert merged["commit-id"] is not None
    assert {(e["name"], e["change"]) for e in merged["tables"]} == {("fresh", "taken")}, merged
    main = catalog(floe)
    assert main.load_table("c.t").metadata_location == main_location
    assert ids_of(main.load_table("c.fresh")) == [9]


def test_drop_versus_change_and_double_create_conflict(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("c")
    main.create_table("c.doomed", SCHEMA).append(rows([1]))
    main.create_table("c.quiet", SCHEMA).append(rows([2]))
    api.branch("dev")

    dev = catalog(floe, "dev")
    dev.drop_table("c.doomed")
    dev.drop_table("c.quiet")
    dev.create_table("c.twice", SCHEMA).append(rows([30], "dev"))
    main.load_table("c.doomed").append(rows([3]))
    main.create_table("c.twice", SCHEMA).append(rows([40], "main"))
    heads = (api.head("main"), api.head("dev"))

    conflict = api.merge("dev", "main", expect=409)
    reasons = {c["name"]: c["reason"] for c in conflict["conflicts"]}
    assert set(reasons) == {"doomed", "twice"}, conflict
    assert "dropped" in reasons["doomed"], reasons
    assert "created" in reasons["twice"], reasons
    assert (api.head("main"), api.head("dev")) == heads
    main = catalog(floe)
    assert ids_of(main.load_table("c.doomed")) == [1, 3]
    assert ids_of(main.load_table("c.quiet")) == [2]  # dev's uncontested drop was not applied
    assert ids_of(main.load_table("c.twice")) == [40]

    merged = api.merge("dev", "main", strategy="source-wins")
    assert {(e["name"], e["change"]) for e in merged["tables"]} == {
        ("doomed", "removed"), ("quiet", "removed"), ("twice", "taken"),
    }, merged
    main = catalog(floe)
    assert main.list_tables("c") == [("c", "twice")]
    assert content_of(main.load_table("c.twice")) == [(30, "dev-30")]


# ---------------------------------------------------------------------------------------------
# 4. Tags and commits are read-only points in time


def test_tags_and_commits_read_the_past_and_refuse_writes(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("h")
    main.create_table("h.t", SCHEMA).append(rows([1, 2]))
    tag = api.tag("v1")
    point = api.head("main")
    assert tag["commit-id"] == point
    assert api.head("v1", "tags") == point
    assert [r["name"] for r in api.get("tags").json()["refs"]] == ["v1"]
    assert api.config("demo@v1").json()["overrides"]["prefix"] == f"{api.id}@v1"

    main.load_table("h.t").append(rows([3]))
    main.create_table("h.later", SCHEMA)
    main.create_namespace("later")
    main_location = catalog(floe).load_table("h.t").metadata_location

    for ref in ("v1", point):
        old = catalog(floe, ref)
        table = old.load_table("h.t")
        assert ids_of(table) == [1, 2], ref
        assert old.list_tables("h") == [("h", "t")], ref
        assert ("later",) not in old.list_namespaces(), ref

        head_before = api.head("main")
        # The key the tag vends cannot write the data files; the catalog refuses the commit.
        with pytest.raises(OSError, match="read-only"):
            table.append(rows([99]))
        with pytest.raises(ForbiddenError):
            old.create_table("h.new", SCHEMA)
        with pytest.raises(ForbiddenError):
            old.create_namespace("new")
        with pytest.raises(ForbiddenError):
            old.drop_table("h.t")
        with pytest.raises(ForbiddenError):
            old.rename_table("h.t", "h.moved")
        with pytest.raises(ForbiddenError):
            old.load_table("h.t").transaction().set_properties({"k": "v"}).commit_transaction()

        # Nothing changed, anywhere.
        assert api.head("main") == head_before
        assert api.head("v1", "tags") == point
        again = catalog(floe, ref)
        assert ids_of(again.load_table("h.t")) == [1, 2]
        assert again.list_tables("h") == [("h", "t")]
        assert ("new",) not in again.list_namespaces()
        assert "k" not in again.load_table("h.t").properties
        main = catalog(floe)
        assert main.load_table("h.t").metadata_location == main_location
        assert ids_of(main.load_table("h.t")) == [1, 2, 3]
        assert sorted(main.list_tables("h")) == [("h", "later"), ("h", "t")]
        assert ("new",) not in main.list_namespaces()

    # A raw write through the tag's prefix: 403 ForbiddenException.
    response = requests.post(
        f"{floe.uri}/v1/{api.id}@v1/namespaces", json={"namespace": ["raw"]}, timeout=10
    )
    assert_error(response, 403, "ForbiddenException")
    assert ("raw",) not in catalog(floe).list_namespaces()

    # A tag cannot be merged into (it is not a branch) nor reset; it can be merged from.
    assert api.post("merge", {"source": "main", "target": "v1"}).status_code == 404
    assert api.post("branches/v1/reset", {"to": "main"}).status_code == 404
    # A branch from a tag starts at the tag.
    api.branch("fix", "v1")
    assert api.head("fix") == point
    assert ids_of(catalog(floe, "fix").load_table("h.t")) == [1, 2]
    # Deleting the tag.
    assert api.delete("tags/v1").status_code == 204
    assert api.get("tags/v1").status_code == 404
    assert api.config("demo@v1").status_code == 404
    # The commit stays readable by id.
    assert ids_of(catalog(floe, point).load_table("h.t")) == [1, 2]


# ---------------------------------------------------------------------------------------------
# 5. Concurrent commits on many branches


def test_concurrent_commits_on_many_branches_do_not_interfere(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("cc")
    main.create_table("cc.t", SCHEMA).append(rows([-1]))
    main_location = main.load_table("cc.t").metadata_location
    main_head = api.head("main")
    branches = [f"b{k}" for k in range(10)]
    for name in branches:
        api.branch(name)
    catalogs = {name: catalog(floe, name) for name in branches}
    retries = []
    unexplained = []
    lock = threading.Lock()
    # The appends in flight on each branch, and every append that overlapped another on its own
    # branch: only those may be refused (branches never conflict with each other).
    running = {name: set() for name in branches}
    overlapped = set()
    current = threading.local()  # the append this thread is making

    class CountRetries(logging.Handler):
        """PyIceberg retries a failed commit by itself (refresh, re-apply): those must come from
        appends overlapping on one branch too."""

        def emit(self, record):
            if "concurrent update" in record.getMessage():
                with lock:
                    retries.append("pyiceberg")
                    value = getattr(current, "value", None)
                    if value not in overlapped:
                        unexplained.append(f"{value}: {record.getMessage()}")

    counter = CountRetries()
    logging.getLogger("pyiceberg.table").addHandler(counter)

    def append(branch, value):
        batch = rows([value], branch)
        current.value = value
        with lock:
            running[branch].add(value)
            if len(running[branch]) > 1:
                overlapped.update(running[branch])
        try:
            for _attempt in range(50):
                try:
                    catalogs[branch].load_table("cc.t").append(batch)
                    return value
                except CommitFailedException as e:
                    # PyIceberg does not retry an append itself: reload and append again.
                    with lock:
                        retries.append(branch)
                        if value not in overlapped:
                            unexplained.append(f"{branch}/{value}: {e}")
            raise AssertionError(f"an append on {branch} kept failing")
        finally:
            with lock:
                running[branch].discard(value)

    # Shuffled: the pool's 10 workers mostly hit different branches, sometimes the same one.
    jobs = [(b, k * 100 + i) for i in range(10) for k, b in enumerate(branches)]
    random.Random(7).shuffle(jobs)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
            done = list(pool.map(lambda job: append(*job), jobs))
    finally:
        logging.getLogger("pyiceberg.table").removeHandler(counter)
    assert sorted(done) == sorted(v for _, v in jobs)

    for k, name in enumerate(branches):
        table = catalog(floe, name).load_table("cc.t")
        assert content_of(table) == [(-1, "row--1")] + [
            (k * 100 + i, f"{name}-{k * 100 + i}") for i in range(10)
        ], name
        snapshots = table.snapshots()
        assert len(snapshots) == 11, name
        for parent, child in zip(snapshots, snapshots[1:]):
            assert child.parent_snapshot_id == parent.snapshot_id
        log = api.log(name, page_size=11)["commits"]
        assert [(c["changes"][0]["name"], c["changes"][0]["op"]) for c in log[:10]] == [
            ("t", "update")
        ] * 10, name
        assert log[10]["id"] == main_head, name
    table = catalog(floe).load_table("cc.t")
    assert table.metadata_location == main_location
    assert ids_of(table) == [-1]
    assert api.head("main") == main_head
    # Refusals only ever came from appends racing on the same branch.
    assert not unexplained, unexplained
    print(f"commit retries on {floe.backend}: {len(retries)} ({len(overlapped)} appends overlapped on a branch)")


# ---------------------------------------------------------------------------------------------
# 6. Purge on a branch spares what main and tags use


def test_purge_on_a_branch_keeps_mains_files(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("p")
    shared = main.create_table("p.shared", SCHEMA)
    shared.append(rows([1, 2, 3]))
    shared.append(rows([4]))
    shared_folder = local_path(floe, main.load_table("p.shared").location())
    shared_files = files_under(shared_folder)
    assert len(shared_files) >= 6
    api.branch("dev")

    dev = catalog(floe, "dev")
    # A table only dev has.
    scratch = dev.create_table("p.scratch", SCHEMA)
    scratch.append(rows([50]))
    scratch_folder = local_path(floe, dev.load_table("p.scratch").location())
    assert files_under(scratch_folder)

    shared_uuid = dev.load_table("p.shared").metadata.table_uuid
    scratch_uuid = dev.load_table("p.scratch").metadata.table_uuid
    dev.purge_table("p.shared")
    dev.purge_table("p.scratch")
    assert not dev.table_exists("p.shared")
    assert not dev.table_exists("p.scratch")
    assert dev.list_tables("p") == []

    # Purges finish after the response: wait until each is done, then look.
    assert floe.purge_outcomes(scratch_uuid) == ["deleted"]
    assert not os.path.exists(scratch_folder), files_under(scratch_folder)
    assert floe.purge_outcomes(shared_uuid) == ["kept: other refs still use the files"]
    assert files_under(shared_folder) >= shared_files
    main = catalog(floe)
    assert main.list_tables("p") == [("p", "shared")]
    assert content_of(main.load_table("p.shared")) == [
        (1, "row-1"), (2, "row-2"), (3, "row-3"), (4, "row-4"),
    ]
    main.load_table("p.shared").append(rows([5]))
    assert ids_of(catalog(floe).load_table("p.shared")) == [1, 2, 3, 4, 5]


def test_purge_on_main_keeps_files_a_tag_uses(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("p")
    main.create_table("p.old", SCHEMA).append(rows([7, 8]))
    folder = local_path(floe, main.load_table("p.old").location())
    files = files_under(folder)
    api.tag("before-purge")
    table_uuid = main.load_table("p.old").metadata.table_uuid

    main.purge_table("p.old")
    assert not catalog(floe).table_exists("p.old")
    assert floe.purge_outcomes(table_uuid) == ["kept: other refs still use the files"]
    assert files_under(folder) >= files
    assert content_of(catalog(floe, "before-purge").load_table("p.old")) == [
        (7, "row-7"), (8, "row-8"),
    ]


# ---------------------------------------------------------------------------------------------
# 7. Diff and log


def test_diff_and_paged_log(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("a")
    main.create_table("a.t1", SCHEMA).append(rows([1]))
    main.create_table("a.t2", SCHEMA)
    main.create_table("a.same", SCHEMA)
    fork = api.head("main")
    api.branch("dev")

    dev = catalog(floe, "dev")
    dev.load_table("a.t1").append(rows([2]))
    dev.create_table("a.t3", SCHEMA)
    dev.drop_table("a.t2")
    dev.create_namespace("b")
    main.create_table("a.t4", SCHEMA)  # on main only, after the fork

    response = api.get("diff", **{"from": "main", "to": "dev"})
    assert response.status_code == 200, response.text
    changes = by_name(response.json()["changes"])
    assert {key: entry["change"] for key, entry in changes.items()} == {
        ("table", "a", "t1"): "changed",
        ("table", "a", "t2"): "removed",
        ("table", "a", "t3"): "added",
        ("table", "a", "t4"): "removed",
        ("namespace", "b", None): "added",
    }, changes
    t1 = changes[("table", "a", "t1")]
    assert t1["from-metadata-location"] == catalog(floe).load_table("a.t1").metadata_location
    assert t1["to-metadata-location"] == catalog(floe, "dev").load_table("a.t1").metadata_location
    assert changes[("table", "a", "t3")]["to-metadata-location"] == (
        catalog(floe, "dev").load_table("a.t3").metadata_location
    )
    assert "from-metadata-location" not in changes[("table", "a", "t3")]
    # The other way round: added and removed swap.
    reverse = by_name(api.get("diff", **{"from": "dev", "to": "main"}).json()["changes"])
    assert {key: entry["change"] for key, entry in reverse.items()} == {
        ("table", "a", "t1"): "changed",
        ("table", "a", "t2"): "added",
        ("table", "a", "t3"): "removed",
        ("table", "a", "t4"): "added",
        ("namespace", "b", None): "removed",
    }, reverse
    # Against the fork commit: only dev's changes.
    since_fork = by_name(api.get("diff", **{"from": fork, "to": "dev"}).json()["changes"])
    assert set(since_fork) == {
        ("table", "a", "t1"), ("table", "a", "t2"), ("table", "a", "t3"), ("namespace", "b", None),
    }
    same = api.get("diff", **{"from": "dev", "to": "dev"})
    assert same.status_code == 200 and same.json()["changes"] == [], same.text

    # The log of dev: its own commits, then main's before the fork, newest first.
    full = api.log("dev", page_size=100)
    assert "next-page-token" not in full
    commits = full["commits"]
    summary = [
        [(c["kind"], c["namespace"], c.get("name"), c["op"]) for c in commit["changes"]]
        for commit in commits
    ]
    assert summary == [
        [("namespace", ["b"], None, "create")],
        [("table", ["a"], "t2", "drop")],
        [("table", ["a"], "t3", "create")],
        [("table", ["a"], "t1", "update")],
        [("table", ["a"], "same", "create")],
        [("table", ["a"], "t2", "create")],
        [("table", ["a"], "t1", "update")],
        [("table", ["a"], "t1", "create")],
        [("namespace", ["a"], None, "create")],
        [],  # the warehouse's first commit
    ], summary
    assert commits[4]["id"] == fork
    for child, parent in zip(commits, commits[1:]):
        assert child["parents"][0] == parent["id"]
        assert child["time"] >= parent["time"]
    assert commits[-1]["parents"] == []
    t1_update = commits[3]["changes"][0]
    assert t1_update["metadata-location"].startswith("s3://demo/")
    assert [c["id"] for c in api.log("main")["commits"]][1:] == [c["id"] for c in commits[4:]]

    # Paging with page-size 2: every commit once, in order, and then no token.
    seen = []
    pages = 0
    token = None
    while True:
        params = {"ref": "dev", "page-size": 2}
        if token:
            params["page-token"] = token
        response = api.get("commits", **params)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert 1 <= len(page["commits"]) <= 2, page
        seen.extend(c["id"] for c in page["commits"])
        token = page.get("next-page-token")
        if not token:
            break
        assert pages < 20, "paging does not end"
    assert seen == [c["id"] for c in commits]
    assert len(set(seen)) == len(seen)
    assert pages == 5
    assert api.commit(commits[3]["id"]) == commits[3]
    bad = api.get("commits", **{"ref": "dev", "page-token": "garbage"})
    assert_error(bad, 400)


# ---------------------------------------------------------------------------------------------
# 8. Deleting and resetting branches


def test_delete_and_reset_branches(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("r")
    main.create_table("r.t", SCHEMA).append(rows([1]))

    api.branch("dev")
    catalog(floe, "dev").load_table("r.t").append(rows([2]))
    dev_head = api.head("dev")
    assert sorted(r["name"] for r in api.get("branches").json()["refs"]) == ["dev", "main"]
    assert api.delete("branches/dev").status_code == 204
    assert sorted(r["name"] for r in api.get("branches").json()["refs"]) == ["main"]
    assert_error(api.get("branches/dev"), 404)
    assert_error(api.config("demo@dev"), 404)
    assert_error(api.delete("branches/dev"), 404)
    with pytest.raises(Exception):
        catalog(floe, "dev").load_table("r.t")
    # Its commits stay readable by id, and as a catalog.
    assert api.commit(dev_head)["id"] == dev_head
    assert ids_of(catalog(floe, dev_head).load_table("r.t")) == [1, 2]
    # The name can be used again: a fresh branch from main.
    api.branch("dev")
    assert ids_of(catalog(floe, "dev").load_table("r.t")) == [1]
    assert_error(api.delete("branches/main"), 409)
    assert api.head("main")

    # Reset.
    api.branch("feature")
    feature = catalog(floe, "feature")
    feature.load_table("r.t").append(rows([10]))
    a = api.head("feature")
    feature.load_table("r.t").append(rows([11]))
    feature.create_table("r.extra", SCHEMA)
    b = api.head("feature")
    assert ids_of(catalog(floe, "feature").load_table("r.t")) == [1, 10, 11]

    response = api.post("branches/feature/reset", {"to": a})
    assert response.status_code == 200, response.text
    assert response.json()["commit-id"] == a
    assert api.head("feature") == a
    feature = catalog(floe, "feature")
    assert ids_of(feature.load_table("r.t")) == [1, 10]
    assert not feature.table_exists("r.extra")
    # The branch goes on from there.
    feature.load_table("r.t").append(rows([12]))
    assert ids_of(catalog(floe, "feature").load_table("r.t")) == [1, 10, 12]
    log = api.log("feature")["commits"]
    assert log[1]["id"] == a
    assert b not in [c["id"] for c in log]
    # The commits left behind are still readable.
    assert ids_of(catalog(floe, b).load_table("r.t")) == [1, 10, 11]

    # Reset to a branch name.
    response = api.post("branches/feature/reset", {"to": "main"})
    assert response.status_code == 200, response.text
    assert api.head("feature") == api.head("main")
    assert ids_of(catalog(floe, "feature").load_table("r.t")) == [1]
    assert ids_of(catalog(floe).load_table("r.t")) == [1]

    assert_error(api.post("branches/main/reset", {"to": a}), 409)
    assert_error(api.post("branches/nope/reset", {"to": "main"}), 404)
    assert_error(api.post("branches/feature/reset", {"to": "nope"}), 404)
    assert ids_of(catalog(floe).load_table("r.t")) == [1]


# ---------------------------------------------------------------------------------------------
# 9. DuckDB on a branch


def duckdb_on(floe, warehouse):
    con = duckdb_with_iceberg()
    con.execute(
        f"ATTACH '{warehouse}' AS cat (TYPE iceberg, ENDPOINT '{floe.uri}', "
        "AUTHORIZATION_TYPE 'none')"
    )
    return con


def test_duckdb_reads_and_writes_a_branch(floe):
    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("d")
    main.create_table("d.t", SCHEMA).append(rows([1, 2]))
    api.branch("dev")
    catalog(floe, "dev").load_table("d.t").append(rows([3, 4, 5], "dev"))

    on_dev = duckdb_on(floe, "demo@dev")
    on_main = duckdb_on(floe, "demo")
    try:
        assert on_dev.execute("SELECT id, label FROM cat.d.t ORDER BY id").fetchall() == [
            (1, "row-1"), (2, "row-2"), (3, "dev-3"), (4, "dev-4"), (5, "dev-5"),
        ]
        assert on_main.execute("SELECT count(*), sum(id) FROM cat.d.t").fetchall() == [(2, 3)]

        # DuckDB's writes (through transactions/commit) land on dev only.
        on_dev.execute("INSERT INTO cat.d.t VALUES (6, 'duck-6')")
        on_dev.execute("CREATE TABLE cat.d.duck (x INTEGER)")
        on_dev.execute("INSERT INTO cat.d.duck VALUES (42)")
        assert ids_of(catalog(floe, "dev").load_table("d.t")) == [1, 2, 3, 4, 5, 6]
        assert catalog(floe, "dev").table_exists("d.duck")
        assert ids_of(catalog(floe).load_table("d.t")) == [1, 2]
        assert not catalog(floe).table_exists("d.duck")
    finally:
        on_dev.close()
        on_main.close()

    # A tag is read-only for DuckDB too.
    api.tag("v1", "dev")
    on_tag = duckdb_on(floe, "demo@v1")
    try:
        assert on_tag.execute("SELECT count(*) FROM cat.d.t").fetchall() == [(6,)]
        with pytest.raises(duckdb.Error, match="403|Forbidden|read-only"):
            on_tag.execute("INSERT INTO cat.d.t VALUES (7, 'no')")
    finally:
        on_tag.close()
    assert ids_of(catalog(floe, "v1").load_table("d.t")) == [1, 2, 3, 4, 5, 6]
    assert ids_of(catalog(floe, "dev").load_table("d.t")) == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------------------------------------
# 10. Bad input


def test_bad_input_is_refused_and_changes_nothing(floe):
    api = Mgmt(floe)
    api.branch("dev")
    head = api.head("main")

    for name in ("a/b", "..", "", "x" * 200, "a b", "-lead", "dev@x", "a..b", head):
        for kind in ("branches", "tags"):
            assert_error(api.post(kind, {"name": name}), 400, "BadRequestException")
    # 128 bytes is the longest name.
    api.branch("y" * 128)
    assert_error(api.post("branches", {"name": "dev"}), 409)
    assert_error(api.post("tags", {"name": "dev"}), 409)
    assert_error(api.post("branches", {"name": "new", "from": "nope"}), 404)
    no_commit = "00000000-0000-0000-0000-000000000000"
    assert_error(api.post("branches", {"name": "new", "from": no_commit}), 404)

    assert_error(api.config("demo@nope"), 404)
    assert_error(api.config("nowhere@dev"), 404)
    assert_error(api.get("branches/nope"), 404)
    assert_error(api.get("tags/dev"), 404)  # a branch, not a tag
    assert_error(api.get("commits", ref="nope"), 404)
    assert_error(api.get("diff", **{"from": "main", "to": "nope"}), 404)
    assert_error(api.get(f"commits/{no_commit}"), 404)

    assert_error(api.post("merge", {"source": "nope", "target": "main"}), 404)
    assert_error(api.post("merge", {"source": "dev", "target": "nope"}), 404)
    assert_error(api.post("merge", {"source": "dev", "target": "main", "strategy": "x"}), 400)
    assert_error(api.post("merge", {"source": "dev"}), 400)

    for path in ("branches", "tags", "merge", "branches/dev/reset"):
        assert_error(api.post(path, data="{not json"), 400)
        assert_error(api.post(path, data="[]"), 400)
    assert_error(api.post("branches", {"name": "ok", "unexpected": 1}), 400)

    # None of it created or moved anything.
    assert sorted(r["name"] for r in api.get("branches").json()["refs"]) == sorted(
        ["main", "dev", "y" * 128]
    )
    assert api.get("tags").json()["refs"] == []
    assert api.head("main") == head
    assert api.head("dev") == head


# ---------------------------------------------------------------------------------------------
# 11. Spark on a branch (the plain local warehouse: Spark here has no S3 client)

_spark_names = itertools.count()


def spark_catalog(spark, floe, warehouse):
    name = f"br_{floe.backend}_{next(_spark_names)}"
    prefix = f"spark.sql.catalog.{name}"
    spark.conf.set(prefix, "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"{prefix}.type", "rest")
    spark.conf.set(f"{prefix}.uri", floe.uri)
    spark.conf.set(f"{prefix}.warehouse", warehouse)
    spark.conf.set(f"{prefix}.cache-enabled", "false")
    return name


def test_spark_writes_on_a_branch_then_merge(spark, floe):
    warehouse = floe.file_warehouse()
    api = Mgmt(floe, warehouse)
    main = spark_catalog(spark, floe, warehouse)
    spark.sql(f"CREATE NAMESPACE {main}.db")
    spark.sql(f"CREATE TABLE {main}.db.t (id BIGINT, label STRING) USING iceberg")
    spark.sql(f"INSERT INTO {main}.db.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    api.branch("dev")
    dev = spark_catalog(spark, floe, f"{warehouse}@dev")

    spark.sql(f"INSERT INTO {dev}.db.t VALUES (4, 'd')")
    spark.sql(f"DELETE FROM {dev}.db.t WHERE id = 1")
    spark.sql(f"UPDATE {dev}.db.t SET label = 'B' WHERE id = 2")
    spark.sql(f"CREATE VIEW {dev}.db.v AS SELECT id FROM {dev}.db.t WHERE id > 2")
    spark.sql(f"CREATE TABLE {dev}.db.n USING iceberg AS SELECT id * 10 AS x FROM {dev}.db.t")

    def select(sql):
        return [tuple(r) for r in spark.sql(sql).collect()]

    assert select(f"SELECT id, label FROM {dev}.db.t ORDER BY id") == [(2, "B"), (3, "c"), (4, "d")]
    assert select(f"SELECT id FROM {dev}.db.v ORDER BY id") == [(3,), (4,)]
    assert select(f"SELECT id, label FROM {main}.db.t ORDER BY id") == [
        (1, "a"), (2, "b"), (3, "c"),
    ]
    assert [r[1] for r in select(f"SHOW VIEWS IN {main}.db") if not r[2]] == []
    assert [r[1] for r in select(f"SHOW TABLES IN {main}.db")] == ["t"]

    merged = api.merge("dev", "main")
    assert {(e["kind"], e["name"], e["change"]) for e in merged["tables"]} == {
        ("table", "t", "taken"), ("table", "n", "taken"), ("view", "v", "taken"),
    }, merged
    assert select(f"SELECT id, label FROM {main}.db.t ORDER BY id") == [
        (2, "B"), (3, "c"), (4, "d"),
    ]
    assert select(f"SELECT x FROM {main}.db.n ORDER BY x") == [(20,), (30,), (40,)]
    assert [r[1] for r in select(f"SHOW VIEWS IN {main}.db") if not r[2]] == ["v"]

    # Spark on a tag reads and cannot write.
    api.tag("v1")
    tagged = spark_catalog(spark, floe, f"{warehouse}@v1")
    assert select(f"SELECT count(*) FROM {tagged}.db.t") == [(3,)]
    with pytest.raises(Exception, match="403|Forbidden|read-only"):
        spark.sql(f"INSERT INTO {tagged}.db.t VALUES (6, 'f')")
    assert select(f"SELECT count(*) FROM {tagged}.db.t") == [(3,)]

    # Main goes on from the merged table; the tag does not move.
    spark.sql(f"INSERT INTO {main}.db.t VALUES (5, 'e')")
    assert select(f"SELECT count(*) FROM {main}.db.t") == [(4,)]
    assert select(f"SELECT count(*) FROM {tagged}.db.t") == [(3,)]


def test_signing_and_keys_follow_the_branch_and_tags_only_read(floe):
    """Remote signing for a table only a branch has, and read-only keys through a tag."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    api = Mgmt(floe)
    main = catalog(floe)
    main.create_namespace("sg")
    main.create_table("sg.shared", SCHEMA).append(rows([1]))

    def client_of(table):
        props = table.io.properties
        return boto3.client(
            "s3",
            endpoint_url=props["s3.endpoint"],
            aws_access_key_id=props["s3.access-key-id"],
            aws_secret_access_key=props["s3.secret-access-key"],
            region_name=props["s3.region"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    shared = main.load_table("sg.shared")
    bucket, _, folder = shared.location().removeprefix("s3://").partition("/")
    scratch = f"{folder}/data/scratch.bin"
    # Only main: a table's key writes and deletes.
    s3 = client_of(shared)
    s3.put_object(Bucket=bucket, Key=scratch, Body=b"x")
    s3.delete_object(Bucket=bucket, Key=scratch)

    api.branch("dev")
    # With a branch: keys (on any line) write but delete nothing, one by one or in bulk, since
    # a file one line dropped may be one another line reads.
    s3 = client_of(main.load_table("sg.shared"))
    s3.put_object(Bucket=bucket, Key=scratch, Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=bucket, Key=scratch)
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as e:
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": scratch}]})
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=bucket, Key=scratch)["ContentLength"] == 1

    signing = load_catalog(
        "floe-dev-signing",
        type="rest",
        uri=floe.uri,
        warehouse="demo@dev",
        **{"header.X-Iceberg-Access-Delegation": "remote-signing"},
    )
    only_dev = signing.create_table("sg.only_dev", SCHEMA)
    assert "@dev/" in only_dev.io.properties["s3.signer.endpoint"], only_dev.io.properties
    assert "s3.access-key-id" not in only_dev.io.properties
    only_dev.append(rows([5], "dev"))
    assert ids_of(signing.load_table("sg.only_dev")) == [5]
    with pytest.raises(NoSuchTableError):
        main.load_table("sg.only_dev")
    # Signing refuses deletes too, and still signs writes.
    sign_url = f"{floe.uri}/{only_dev.io.properties['s3.signer.endpoint']}"
    object_url = f"{only_dev.io.properties['s3.endpoint']}/{only_dev.location().removeprefix('s3://')}/data/x"

    def sign(method):
        return requests.post(
            sign_url,
            json={"method": method, "uri": object_url, "headers": {}, "region": "us-east-1"},
            timeout=10,
        )

    assert sign("PUT").status_code == 200, sign("PUT").text
    refused = sign("DELETE")
    assert refused.status_code == 403, refused.text
    assert "delete" in refused.json()["error"]["message"], refused.text

    # Through a tag: the key reads the table's files and cannot write them.
    api.tag("v1")
    tagged = catalog(floe, "v1").load_table("sg.shared")
    assert ids_of(tagged) == [1]
    props = tagged.io.properties
    s3 = client_of(tagged)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=folder + "/")
    assert listed["KeyCount"] > 0
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=f"{folder}/data/intruder.parquet", Body=b"x")
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # The same table through main gets a key that writes.
    writable = catalog(floe).load_table("sg.shared").io.properties
    assert writable["s3.access-key-id"] != props["s3.access-key-id"]
