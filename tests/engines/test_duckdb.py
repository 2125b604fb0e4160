"""DuckDB 1.5.5 with its iceberg extension against Floe: DDL and DML through the REST catalog
(DuckDB stages every create and commits every change through `transactions/commit`), multi-table
transactions and rollback, and tables shared with PyIceberg in both directions."""

import datetime

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DoubleType, IntegerType, LongType, NestedField, StringType, TimestampType

from conftest import duckdb_with_iceberg


def pyiceberg_catalog(floe):
    return load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")


def connect(floe):
    """A fresh DuckDB connection with Floe's `demo` warehouse attached as `cat`."""
    con = duckdb_with_iceberg()
    con.execute(
        f"ATTACH 'demo' AS cat (TYPE iceberg, ENDPOINT '{floe.uri}', AUTHORIZATION_TYPE 'none')"
    )
    return con


@pytest.fixture
def con(floe):
    con = connect(floe)
    yield con
    con.close()


def fetch(con, sql):
    return con.execute(sql).fetchall()


def pyiceberg_rows(floe, identifier, sort_key="id"):
    table = pyiceberg_catalog(floe).load_table(identifier)
    return table.scan().to_arrow().sort_by(sort_key).to_pylist()


def test_attach_create_schema_and_table(floe, con):
    con.execute("CREATE SCHEMA cat.sales")
    con.execute("CREATE TABLE cat.sales.orders (id INTEGER, customer VARCHAR, amount DOUBLE)")

    catalog = pyiceberg_catalog(floe)
    assert ("sales",) in catalog.list_namespaces()
    assert catalog.list_tables("sales") == [("sales", "orders")]
    table = catalog.load_table("sales.orders")
    assert [(f.name, f.field_type) for f in table.schema().fields] == [
        ("id", IntegerType()),
        ("customer", StringType()),
        ("amount", DoubleType()),
    ]
    assert table.current_snapshot() is None
    assert fetch(con, "SELECT count(*) FROM cat.sales.orders") == [(0,)]
    tables = fetch(
        con,
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'cat'",
    )
    assert ("sales", "orders") in tables


def test_insert_update_delete(floe, con):
    con.execute("CREATE SCHEMA cat.dml")
    con.execute("CREATE TABLE cat.dml.t (id INTEGER, name VARCHAR)")
    assert fetch(con, "INSERT INTO cat.dml.t VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')") == [(4,)]
    assert fetch(con, "SELECT id, name FROM cat.dml.t ORDER BY id") == [
        (1, "a"), (2, "b"), (3, "c"), (4, "d"),
    ]

    assert fetch(con, "UPDATE cat.dml.t SET name = upper(name) WHERE id >= 3") == [(2,)]
    assert fetch(con, "SELECT id, name FROM cat.dml.t ORDER BY id") == [
        (1, "a"), (2, "b"), (3, "C"), (4, "D"),
    ]

    assert fetch(con, "DELETE FROM cat.dml.t WHERE id = 2") == [(1,)]
    assert fetch(con, "SELECT id, name FROM cat.dml.t ORDER BY id") == [
        (1, "a"), (3, "C"), (4, "D"),
    ]

    # A second DuckDB client (its own catalog state) sees the committed result.
    other = connect(floe)
    try:
        assert fetch(other, "SELECT id, name FROM cat.dml.t ORDER BY id") == [
            (1, "a"), (3, "C"), (4, "D"),
        ]
        assert fetch(other, "SELECT sum(id), count(*) FROM cat.dml.t") == [(8, 3)]
    finally:
        other.close()

    table = pyiceberg_catalog(floe).load_table("dml.t")
    assert len(table.snapshots()) >= 3  # insert, update, delete each committed a snapshot


def test_alter_table_add_column(floe, con):
    con.execute("CREATE SCHEMA cat.evo")
    con.execute("CREATE TABLE cat.evo.t (id INTEGER)")
    con.execute("INSERT INTO cat.evo.t VALUES (1), (2)")
    con.execute("ALTER TABLE cat.evo.t ADD COLUMN score DOUBLE")
    con.execute("INSERT INTO cat.evo.t VALUES (3, 1.5)")
    assert fetch(con, "SELECT id, score FROM cat.evo.t ORDER BY id") == [
        (1, None), (2, None), (3, 1.5),
    ]

    table = pyiceberg_catalog(floe).load_table("evo.t")
    assert [f.name for f in table.schema().fields] == ["id", "score"]
    assert table.schema().find_field("score").field_type == DoubleType()
    assert len(table.schemas()) == 2


def test_create_table_as_select(floe, con):
    con.execute("CREATE SCHEMA cat.ctas")
    con.execute("CREATE TABLE cat.ctas.src (id INTEGER, grp VARCHAR)")
    con.execute("INSERT INTO cat.ctas.src VALUES (1, 'x'), (2, 'y'), (3, 'x')")
    con.execute(
        "CREATE TABLE cat.ctas.summary AS "
        "SELECT grp, count(*) AS n, sum(id) AS total FROM cat.ctas.src GROUP BY grp"
    )
    assert fetch(con, "SELECT grp, n, total FROM cat.ctas.summary ORDER BY grp") == [
        ("x", 2, 4), ("y", 1, 2),
    ]
    assert pyiceberg_rows(floe, "ctas.summary", "grp") == [
        {"grp": "x", "n": 2, "total": 4},
        {"grp": "y", "n": 1, "total": 2},
    ]
    assert sorted(pyiceberg_catalog(floe).list_tables("ctas")) == [
        ("ctas", "src"), ("ctas", "summary"),
    ]


def test_multi_table_transaction_commits_both(floe, con):
    con.execute("CREATE SCHEMA cat.tx")
    con.execute("CREATE TABLE cat.tx.accounts (id INTEGER, balance INTEGER)")
    con.execute("CREATE TABLE cat.tx.ledger (account INTEGER, delta INTEGER)")
    con.execute("INSERT INTO cat.tx.accounts VALUES (1, 100), (2, 50)")
    catalog = pyiceberg_catalog(floe)
    before = {
        name: catalog.load_table(f"tx.{name}").metadata_location for name in ("accounts", "ledger")
    }

    con.execute("BEGIN")
    con.execute("INSERT INTO cat.tx.accounts VALUES (3, 10)")
    con.execute("INSERT INTO cat.tx.ledger VALUES (3, 10), (1, -5)")
    con.execute("CREATE TABLE cat.tx.audit AS SELECT 'opened' AS what, 3 AS account")
    # Nothing is visible to other clients until COMMIT.
    assert {
        name: catalog.load_table(f"tx.{name}").metadata_location for name in ("accounts", "ledger")
    } == before
    assert not catalog.table_exists("tx.audit")
    con.execute("COMMIT")

    assert fetch(con, "SELECT id, balance FROM cat.tx.accounts ORDER BY id") == [
        (1, 100), (2, 50), (3, 10),
    ]
    other = connect(floe)
    try:
        assert fetch(other, "SELECT account, delta FROM cat.tx.ledger ORDER BY account") == [
            (1, -5), (3, 10),
        ]
        assert fetch(other, "SELECT count(*) FROM cat.tx.accounts") == [(3,)]
        assert fetch(other, "SELECT what, account FROM cat.tx.audit") == [("opened", 3)]
    finally:
        other.close()
    assert [r["id"] for r in pyiceberg_rows(floe, "tx.accounts")] == [1, 2, 3]
    assert pyiceberg_rows(floe, "tx.ledger", "account") == [
        {"account": 1, "delta": -5},
        {"account": 3, "delta": 10},
    ]
    for name in ("accounts", "ledger"):
        assert catalog.load_table(f"tx.{name}").metadata_location != before[name]


def test_conflicting_multi_table_commit_changes_nothing(floe, con):
    con.execute("CREATE SCHEMA cat.atom")
    con.execute("CREATE TABLE cat.atom.a (id INTEGER)")
    con.execute("CREATE TABLE cat.atom.b (id INTEGER)")
    con.execute("INSERT INTO cat.atom.a VALUES (1)")
    con.execute("INSERT INTO cat.atom.b VALUES (1)")
    catalog = pyiceberg_catalog(floe)
    a_before = catalog.load_table("atom.a").metadata_location

    con.execute("BEGIN")
    con.execute("INSERT INTO cat.atom.a VALUES (2)")
    con.execute("DELETE FROM cat.atom.b WHERE id = 1")
    # Another client changes b before DuckDB commits: b's requirement fails, so a must not change.
    catalog.load_table("atom.b").append(pa.Table.from_pydict({"id": pa.array([5], pa.int32())}))
    with pytest.raises(duckdb.TransactionException, match="409|CommitFailedException"):
        con.execute("COMMIT")

    assert catalog.load_table("atom.a").metadata_location == a_before
    assert [r["id"] for r in pyiceberg_rows(floe, "atom.a")] == [1]
    assert [r["id"] for r in pyiceberg_rows(floe, "atom.b")] == [1, 5]


def test_rollback_leaves_nothing(floe, con):
    con.execute("CREATE SCHEMA cat.rb")
    con.execute("CREATE TABLE cat.rb.t (id INTEGER)")
    con.execute("INSERT INTO cat.rb.t VALUES (1), (2)")
    catalog = pyiceberg_catalog(floe)
    before = catalog.load_table("rb.t")

    con.execute("BEGIN")
    con.execute("INSERT INTO cat.rb.t VALUES (3)")
    con.execute("DELETE FROM cat.rb.t WHERE id = 1")
    con.execute("CREATE TABLE cat.rb.scratch (x INTEGER)")
    con.execute("INSERT INTO cat.rb.scratch VALUES (42)")
    con.execute("ROLLBACK")

    assert fetch(con, "SELECT id FROM cat.rb.t ORDER BY id") == [(1,), (2,)]
    after = catalog.load_table("rb.t")
    assert after.metadata_location == before.metadata_location
    assert after.current_snapshot().snapshot_id == before.current_snapshot().snapshot_id
    assert catalog.list_tables("rb") == [("rb", "t")]
    with pytest.raises(NoSuchTableError):
        catalog.load_table("rb.scratch")
    other = connect(floe)
    try:
        assert fetch(other, "SELECT id FROM cat.rb.t ORDER BY id") == [(1,), (2,)]
        with pytest.raises(duckdb.CatalogException):
            other.execute("SELECT * FROM cat.rb.scratch")
    finally:
        other.close()


def test_duckdb_reads_a_pyiceberg_table(floe, con):
    catalog = pyiceberg_catalog(floe)
    catalog.create_namespace("shared")
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "city", StringType(), required=False),
        NestedField(3, "temp", DoubleType(), required=False),
        NestedField(4, "seen_at", TimestampType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="city")
    )
    table = catalog.create_table("shared.weather", schema, partition_spec=spec)
    arrow_schema = pa.schema(
        [
            pa.field("id", pa.int64()),
            pa.field("city", pa.string()),
            pa.field("temp", pa.float64()),
            pa.field("seen_at", pa.timestamp("us")),
        ]
    )
    at = datetime.datetime(2024, 6, 1, 12, 0)
    table.append(
        pa.Table.from_pydict(
            {"id": [1, 2, 3], "city": ["oslo", "rome", "oslo"], "temp": [11.5, 27.0, 13.0],
             "seen_at": [at] * 3},
            schema=arrow_schema,
        )
    )
    table.append(
        pa.Table.from_pydict(
            {"id": [4], "city": ["lima"], "temp": [18.25], "seen_at": [at]}, schema=arrow_schema
        )
    )
    table.delete("id = 3")
    with table.update_schema() as update:
        update.rename_column("temp", "celsius")

    assert fetch(con, "SELECT id, city, celsius, seen_at FROM cat.shared.weather ORDER BY id") == [
        (1, "oslo", 11.5, at), (2, "rome", 27.0, at), (4, "lima", 18.25, at),
    ]
    assert fetch(
        con, "SELECT city, count(*) FROM cat.shared.weather GROUP BY city ORDER BY city"
    ) == [("lima", 1), ("oslo", 1), ("rome", 1)]
    assert fetch(con, "SELECT id FROM cat.shared.weather WHERE city = 'rome'") == [(2,)]


def test_pyiceberg_reads_a_duckdb_table(floe, con):
    con.execute("CREATE SCHEMA cat.fromduck")
    con.execute("CREATE TABLE cat.fromduck.t (id BIGINT, label VARCHAR, price DECIMAL(10, 2))")
    con.execute("INSERT INTO cat.fromduck.t SELECT i, 'item-' || i, i * 1.25 FROM range(1, 101) r(i)")
    con.execute("UPDATE cat.fromduck.t SET label = 'special' WHERE id = 50")
    con.execute("DELETE FROM cat.fromduck.t WHERE id > 90")
    con.execute("ALTER TABLE cat.fromduck.t ADD COLUMN note VARCHAR")
    con.execute("INSERT INTO cat.fromduck.t VALUES (1000, 'late', 9.99, 'added after alter')")

    table = pyiceberg_catalog(floe).load_table("fromduck.t")
    assert [f.name for f in table.schema().fields] == ["id", "label", "price", "note"]
    result = table.scan().to_arrow().sort_by("id").to_pydict()
    assert result["id"] == list(range(1, 91)) + [1000]
    assert result["label"][49] == "special"
    assert result["label"][0] == "item-1"
    assert [str(p) for p in result["price"][:2]] == ["1.25", "2.50"]
    assert result["note"][-1] == "added after alter"
    assert result["note"][:90] == [None] * 90
    filtered = table.scan(row_filter="id <= 3").to_arrow().sort_by("id").to_pydict()
    assert filtered["id"] == [1, 2, 3]
    assert fetch(con, "SELECT count(*), sum(id) FROM cat.fromduck.t") == [(91, sum(range(1, 91)) + 1000)]
