"""Apache Spark 3.5 + Iceberg 1.10 against Floe's REST catalog, on SQLite and on PostgreSQL.

One SparkSession (local[2], one JVM) serves the whole module. Every test gets a fresh Floe (the
parametrized `floe` fixture) and registers its own Spark catalog name pointing at it, because a
Spark catalog reads its `uri` once, when it is first used.

The jars come from tests/engines/spark/prepare.sh (the Iceberg runtime and extensions jars of the
`snowpark-connect-deps-iceberg` wheel, plus the relocated Jackson/httpclient5 classes that runtime
jar lacks); it installs what it needs and fails loudly, so a broken setup fails this suite rather
than skipping it.
"""

import datetime
import itertools
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog

from conftest import grant, list_tasks, warehouse_id

PREPARE = Path(__file__).parent / "spark" / "prepare.sh"


def _spark_jars():
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run(
        ["bash", str(PREPARE)], env=env, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        pytest.fail(
            f"{PREPARE} failed (exit {result.returncode}):\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    jars = result.stdout.strip().splitlines()[-1]
    for jar in jars.split(","):
        assert Path(jar).is_file(), f"prepare.sh printed a missing jar: {jar}"
    return jars


@pytest.fixture(scope="module")
def spark():
    jars = _spark_jars()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("floe-engine-tests")
        .config("spark.jars", jars)
        .config(
            "spark.sql.extensions",
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        )
        # A lean JVM for a 2-core machine.
        .config("spark.driver.memory", "1g")
        .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


_catalog_names = itertools.count()


def register_catalog(spark, floe, kind="floe", **options):
    """A new Spark catalog name for `floe`'s plain local warehouse, with extra catalog options."""
    name = f"{kind}_{floe.backend}_{next(_catalog_names)}"
    prefix = f"spark.sql.catalog.{name}"
    spark.conf.set(prefix, "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"{prefix}.type", "rest")
    spark.conf.set(f"{prefix}.uri", floe.uri)
    spark.conf.set(f"{prefix}.warehouse", floe.file_warehouse())
    # Always load from the catalog: other clients (PyIceberg) change tables under Spark.
    spark.conf.set(f"{prefix}.cache-enabled", "false")
    for key, value in options.items():
        spark.conf.set(f"{prefix}.{key}", value)
    return name


@pytest.fixture
def cat(spark, floe):
    """A Spark catalog name for this test's Floe, with a namespace `db` in it."""
    name = register_catalog(spark, floe)
    spark.sql(f"CREATE NAMESPACE {name}.db")
    return name


def rows(spark, sql):
    return [tuple(row) for row in spark.sql(sql).collect()]


def scalar(spark, sql):
    return spark.sql(sql).collect()[0][0]


def snapshot_ids(spark, table):
    return [r[0] for r in rows(spark, f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at")]


def catalog_views(spark, namespace):
    """Names of the catalog's views (SHOW VIEWS also lists the session's temporary views)."""
    return sorted(r[1] for r in rows(spark, f"SHOW VIEWS IN {namespace}") if not r[2])


def refs_of(spark, table):
    return {r[0]: (r[1], r[2]) for r in rows(spark, f"SELECT name, type, snapshot_id FROM {table}.refs")}


def table_location(spark, table):
    """The table's root directory on local disk (the Spark tests use a plain local warehouse)."""
    info = {r[0]: r[1] for r in rows(spark, f"DESCRIBE TABLE EXTENDED {table}")}
    location = info["Location"]
    parsed = urlparse(location)
    assert parsed.scheme == "file", location
    return Path(parsed.path)


def files_under(path):
    return sorted(p for p in Path(path).rglob("*") if p.is_file())


# --- tests -------------------------------------------------------------------------------------


def test_create_insert_select(spark, cat, floe):
    t = f"{cat}.db.events"
    spark.sql(
        f"""CREATE TABLE {t} (id BIGINT NOT NULL, kind STRING, amount DECIMAL(10, 2), ts TIMESTAMP)
            USING iceberg PARTITIONED BY (kind, days(ts))
            TBLPROPERTIES ('team' = 'spark-tests')"""
    )
    assert rows(spark, f"SHOW TABLES IN {cat}.db") == [("db", "events", False)]

    spark.sql(
        f"""INSERT INTO {t} VALUES
            (1, 'click', 1.50, TIMESTAMP '2024-01-01 10:00:00'),
            (2, 'view',  2.25, TIMESTAMP '2024-01-01 11:00:00'),
            (3, 'click', 3.00, TIMESTAMP '2024-01-02 09:30:00')"""
    )
    spark.sql(f"INSERT INTO {t} VALUES (4, 'buy', 10.00, TIMESTAMP '2024-01-02 12:00:00')")

    assert rows(spark, f"SELECT id, kind FROM {t} ORDER BY id") == [
        (1, "click"), (2, "view"), (3, "click"), (4, "buy"),
    ]
    assert rows(spark, f"SELECT kind, count(*), sum(amount) FROM {t} GROUP BY kind ORDER BY kind") == [
        ("buy", 1, Decimal("10.00")), ("click", 2, Decimal("4.50")), ("view", 1, Decimal("2.25")),
    ]
    # Partition pruning sees the partitions Floe stored in the metadata.
    assert scalar(spark, f"SELECT count(*) FROM {t}.partitions") == 4
    assert len(snapshot_ids(spark, t)) == 2
    assert scalar(spark, f"SELECT count(*) FROM {t}.files") == 4

    props = dict(rows(spark, f"SHOW TBLPROPERTIES {t}"))
    assert props["team"] == "spark-tests"

    # The data landed in Floe's local warehouse, under this server's data directory.
    location = table_location(spark, t)
    assert str(location).startswith(floe.dir)
    assert any(p.suffix == ".parquet" for p in files_under(location / "data"))
    assert any(p.name.endswith(".metadata.json") for p in files_under(location / "metadata"))

    # A second catalog instance (another client) sees the same state.
    spark.conf.set(f"spark.sql.catalog.{cat}_b", "org.apache.iceberg.spark.SparkCatalog")
    spark.conf.set(f"spark.sql.catalog.{cat}_b.type", "rest")
    spark.conf.set(f"spark.sql.catalog.{cat}_b.uri", floe.uri)
    spark.conf.set(f"spark.sql.catalog.{cat}_b.warehouse", floe.file_warehouse())
    assert scalar(spark, f"SELECT count(*) FROM {cat}_b.db.events") == 4


def test_merge_update_delete(spark, cat):
    t = f"{cat}.db.accounts"
    spark.sql(f"CREATE TABLE {t} (id INT, owner STRING, balance INT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'ann', 100), (2, 'bob', 200), (3, 'cy', 300)")

    spark.sql(f"UPDATE {t} SET balance = balance + 5 WHERE id = 2")
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [
        (1, "ann", 100), (2, "bob", 205), (3, "cy", 300),
    ]

    spark.sql(f"DELETE FROM {t} WHERE owner = 'cy'")
    assert rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]

    spark.createDataFrame(
        [(1, "ann", 150), (4, "dee", 400)], "id INT, owner STRING, balance INT"
    ).createOrReplaceTempView("changes")
    spark.sql(
        f"""MERGE INTO {t} AS target USING changes AS source ON target.id = source.id
            WHEN MATCHED THEN UPDATE SET target.balance = source.balance
            WHEN NOT MATCHED THEN INSERT *"""
    )
    spark.catalog.dropTempView("changes")
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [
        (1, "ann", 150), (2, "bob", 205), (4, "dee", 400),
    ]

    # Merge-on-read: position delete files instead of rewritten data files.
    spark.sql(
        f"""ALTER TABLE {t} SET TBLPROPERTIES (
            'write.delete.mode' = 'merge-on-read',
            'write.update.mode' = 'merge-on-read',
            'write.merge.mode' = 'merge-on-read')"""
    )
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    spark.sql(f"UPDATE {t} SET owner = 'ANN' WHERE id = 1")
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "ANN", 150), (4, "dee", 400)]
    assert scalar(spark, f"SELECT count(*) FROM {t}.delete_files") >= 1

    operations = [r[0] for r in rows(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at")]
    assert operations[0] == "append"
    assert len(operations) == 6
    assert set(operations[1:]) <= {"overwrite", "delete"}


def test_alter_table(spark, cat):
    t = f"{cat}.db.people"
    spark.sql(f"CREATE TABLE {t} (id INT, name STRING) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'ann')")

    spark.sql(f"ALTER TABLE {t} ADD COLUMN age INT COMMENT 'years'")
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN name TO full_name")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN id TYPE BIGINT")
    spark.sql(f"ALTER TABLE {t} ADD PARTITION FIELD bucket(4, id)")
    spark.sql(f"ALTER TABLE {t} SET TBLPROPERTIES ('note' = 'people table', 'k' = 'v')")
    spark.sql(f"ALTER TABLE {t} UNSET TBLPROPERTIES ('k')")
    spark.sql(f"INSERT INTO {t} VALUES (2, 'bob', 42)")

    columns = [(r[0], r[1]) for r in rows(spark, f"DESCRIBE TABLE {t}") if r[0] and not r[0].startswith("#")]
    assert columns[:3] == [("id", "bigint"), ("full_name", "string"), ("age", "int")]
    assert rows(spark, f"SELECT id, full_name, age FROM {t} ORDER BY id") == [
        (1, "ann", None), (2, "bob", 42),
    ]
    props = dict(rows(spark, f"SHOW TBLPROPERTIES {t}"))
    assert props.get("note") == "people table"
    assert "k" not in props
    # The new partition spec is used for new data.
    spec_ids = sorted(r[0] for r in rows(spark, f"SELECT DISTINCT spec_id FROM {t}.files"))
    assert spec_ids == [0, 1]

    spark.sql(f"ALTER TABLE {t} DROP COLUMN age")
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "ann"), (2, "bob")]


def test_branches_and_tags(spark, cat):
    t = f"{cat}.db.orders"
    spark.sql(f"CREATE TABLE {t} (id INT, status STRING) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'new'), (2, 'new')")
    first = snapshot_ids(spark, t)[-1]

    spark.sql(f"ALTER TABLE {t} CREATE TAG v1 RETAIN 7 DAYS")
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH dev")
    spark.sql(f"INSERT INTO {t}.branch_dev VALUES (3, 'dev-only')")
    spark.sql(f"UPDATE {t}.branch_dev SET status = 'shipped' WHERE id = 1")
    spark.sql(f"INSERT INTO {t} VALUES (4, 'main-only')")

    refs = refs_of(spark, t)
    assert set(refs) == {"main", "v1", "dev"}
    assert refs["v1"] == ("TAG", first)
    assert refs["dev"][0] == "BRANCH" and refs["dev"][1] != first

    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "new"), (2, "new"), (4, "main-only")]
    assert rows(spark, f"SELECT * FROM {t}.branch_dev ORDER BY id") == [
        (1, "shipped"), (2, "new"), (3, "dev-only"),
    ]
    assert rows(spark, f"SELECT * FROM {t} VERSION AS OF 'dev' ORDER BY id") == [
        (1, "shipped"), (2, "new"), (3, "dev-only"),
    ]
    assert rows(spark, f"SELECT * FROM {t}.tag_v1 ORDER BY id") == [(1, "new"), (2, "new")]
    assert rows(spark, f"SELECT * FROM {t} VERSION AS OF 'v1' ORDER BY id") == [(1, "new"), (2, "new")]

    # Reset a branch, then fast-forward another branch to it.
    spark.sql(f"ALTER TABLE {t} REPLACE BRANCH dev AS OF VERSION {first}")
    assert rows(spark, f"SELECT * FROM {t}.branch_dev ORDER BY id") == [(1, "new"), (2, "new")]
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH staging AS OF VERSION {first}")
    spark.sql(f"INSERT INTO {t}.branch_dev VALUES (5, 'ff')")
    dev_head = refs_of(spark, t)["dev"][1]
    result = rows(spark, f"CALL {cat}.system.fast_forward('db.orders', 'staging', 'dev')")
    assert result == [("staging", first, dev_head)]
    assert rows(spark, f"SELECT id FROM {t}.branch_staging ORDER BY id") == [(1,), (2,), (5,)]

    spark.sql(f"ALTER TABLE {t} DROP TAG v1")
    spark.sql(f"ALTER TABLE {t} DROP BRANCH dev")
    names = sorted(r[0] for r in rows(spark, f"SELECT name FROM {t}.refs"))
    assert names == ["main", "staging"]


def test_time_travel(spark, cat):
    t = f"{cat}.db.metrics"
    spark.sql(f"CREATE TABLE {t} (k STRING, v INT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES ('a', 1)")
    spark.sql(f"INSERT INTO {t} VALUES ('b', 2)")
    spark.sql(f"DELETE FROM {t} WHERE k = 'a'")
    s1, s2, s3 = snapshot_ids(spark, t)

    assert rows(spark, f"SELECT * FROM {t} VERSION AS OF {s1}") == [("a", 1)]
    assert rows(spark, f"SELECT * FROM {t} VERSION AS OF {s2} ORDER BY k") == [("a", 1), ("b", 2)]
    assert rows(spark, f"SELECT * FROM {t} FOR SYSTEM_VERSION AS OF {s3}") == [("b", 2)]
    stamp = scalar(
        spark,
        f"""SELECT date_format(committed_at + INTERVAL 1 MILLISECOND, 'yyyy-MM-dd HH:mm:ss.SSS')
            FROM {t}.snapshots WHERE snapshot_id = {s2}""",
    )
    assert rows(spark, f"SELECT * FROM {t} TIMESTAMP AS OF '{stamp}' ORDER BY k") == [("a", 1), ("b", 2)]
    history = rows(spark, f"SELECT snapshot_id, parent_id, is_current_ancestor FROM {t}.history ORDER BY made_current_at")
    assert history == [(s1, None, True), (s2, s1, True), (s3, s2, True)]

    spark.sql(f"CALL {cat}.system.rollback_to_snapshot('db.metrics', {s2})")
    assert rows(spark, f"SELECT * FROM {t} ORDER BY k") == [("a", 1), ("b", 2)]
    assert scalar(spark, f"SELECT snapshot_id FROM {t}.refs WHERE name = 'main'") == s2


def test_procedures_rewrite_and_expire(spark, cat):
    t = f"{cat}.db.logs"
    spark.sql(f"CREATE TABLE {t} (id INT, msg STRING) USING iceberg")
    for i in range(4):
        spark.sql(f"INSERT INTO {t} VALUES ({i}, 'm{i}')")
    assert scalar(spark, f"SELECT count(*) FROM {t}.files") == 4
    location = table_location(spark, t)

    rewritten = spark.sql(
        f"CALL {cat}.system.rewrite_data_files(table => 'db.logs', options => map('min-input-files', '2'))"
    ).collect()[0]
    assert rewritten["rewritten_data_files_count"] == 4
    assert rewritten["added_data_files_count"] == 1
    assert scalar(spark, f"SELECT count(*) FROM {t}.files") == 1
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(i, f"m{i}") for i in range(4)]
    assert len(snapshot_ids(spark, t)) == 5
    assert len([p for p in files_under(location / "data") if p.suffix == ".parquet"]) == 5

    expired = spark.sql(
        f"""CALL {cat}.system.expire_snapshots(
                table => 'db.logs', older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)"""
    ).collect()[0]
    assert expired["deleted_data_files_count"] == 4
    assert expired["deleted_manifest_lists_count"] == 4
    assert len(snapshot_ids(spark, t)) == 1
    assert len([p for p in files_under(location / "data") if p.suffix == ".parquet"]) == 1
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(i, f"m{i}") for i in range(4)]


def test_ctas_and_rtas(spark, cat):
    src = f"{cat}.db.src"
    spark.sql(f"CREATE TABLE {src} (id INT, grp STRING) USING iceberg")
    spark.sql(f"INSERT INTO {src} VALUES (1, 'x'), (2, 'y'), (3, 'x')")

    t = f"{cat}.db.summary"
    spark.sql(
        f"""CREATE TABLE {t} USING iceberg PARTITIONED BY (grp) TBLPROPERTIES ('made-by' = 'ctas')
            AS SELECT grp, count(*) AS n FROM {src} GROUP BY grp"""
    )
    assert rows(spark, f"SELECT * FROM {t} ORDER BY grp") == [("x", 2), ("y", 1)]
    assert dict(rows(spark, f"SHOW TBLPROPERTIES {t}"))["made-by"] == "ctas"
    first = snapshot_ids(spark, t)
    assert len(first) == 1

    # CTAS onto an existing table fails cleanly.
    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE TABLE {t} USING iceberg AS SELECT 1 AS one")

    spark.sql(
        f"""CREATE OR REPLACE TABLE {t} USING iceberg
            AS SELECT id, upper(grp) AS grp, id * 10 AS score FROM {src}"""
    )
    assert rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "X", 10), (2, "Y", 20), (3, "X", 30)]
    columns = [r[0] for r in rows(spark, f"DESCRIBE TABLE {t}") if r[0] and not r[0].startswith("#")]
    assert columns[:3] == ["id", "grp", "score"]
    # REPLACE keeps the table's history.
    snapshots = snapshot_ids(spark, t)
    assert len(snapshots) == 2 and snapshots[0] == first[0]

    # RTAS of a table that does not exist yet creates it.
    spark.sql(f"CREATE OR REPLACE TABLE {cat}.db.fresh USING iceberg AS SELECT * FROM {src} WHERE grp = 'y'")
    assert rows(spark, f"SELECT * FROM {cat}.db.fresh") == [(2, "y")]


def test_views(spark, cat):
    t = f"{cat}.db.sales"
    spark.sql(f"CREATE TABLE {t} (region STRING, amount INT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES ('eu', 10), ('eu', 5), ('us', 7)")

    v = f"{cat}.db.sales_by_region"
    spark.sql(
        f"""CREATE VIEW {v} (region, total) COMMENT 'totals per region'
            AS SELECT region, sum(amount) FROM {t} GROUP BY region"""
    )
    assert rows(spark, f"SELECT * FROM {v} ORDER BY region") == [("eu", 15), ("us", 7)]
    assert catalog_views(spark, f"{cat}.db") == ["sales_by_region"]
    # Views see new data.
    spark.sql(f"INSERT INTO {t} VALUES ('us', 1)")
    assert rows(spark, f"SELECT total FROM {v} WHERE region = 'us'") == [(8,)]

    spark.sql(f"CREATE OR REPLACE VIEW {v} AS SELECT region FROM {t} WHERE amount > 6")
    assert rows(spark, f"SELECT * FROM {v} ORDER BY region") == [("eu",), ("us",)]

    spark.sql(f"ALTER VIEW {v} SET TBLPROPERTIES ('team' = 'bi')")
    assert dict(rows(spark, f"SHOW TBLPROPERTIES {v}"))["team"] == "bi"

    # Unlike ALTER TABLE ... RENAME, Iceberg's view rename takes a catalog-qualified new name.
    spark.sql(f"ALTER VIEW {v} RENAME TO {cat}.db.big_regions")
    assert rows(spark, f"SELECT count(*) FROM {cat}.db.big_regions") == [(2,)]
    spark.sql(f"DROP VIEW {cat}.db.big_regions")
    assert catalog_views(spark, f"{cat}.db") == []


def test_rename_and_drop_purge(spark, cat, floe):
    t = f"{cat}.db.old_name"
    spark.sql(f"CREATE TABLE {t} (id INT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1), (2)")
    location = table_location(spark, t)

    # Spark resolves the new name inside the table's catalog: no catalog prefix.
    spark.sql(f"ALTER TABLE {t} RENAME TO db.new_name")
    assert rows(spark, f"SHOW TABLES IN {cat}.db") == [("db", "new_name", False)]
    assert rows(spark, f"SELECT * FROM {cat}.db.new_name ORDER BY id") == [(1,), (2,)]
    with pytest.raises(Exception, match="(?i)table or view .*cannot be found|not found"):
        spark.sql(f"SELECT * FROM {t}").collect()
    spark.sql(f"INSERT INTO {cat}.db.new_name VALUES (3)")
    assert scalar(spark, f"SELECT count(*) FROM {cat}.db.new_name") == 3

    # A plain DROP keeps the files; DROP ... PURGE deletes them.
    spark.sql(f"CREATE TABLE {cat}.db.kept (id INT) USING iceberg")
    spark.sql(f"INSERT INTO {cat}.db.kept VALUES (1)")
    kept_location = table_location(spark, f"{cat}.db.kept")
    spark.sql(f"DROP TABLE {cat}.db.kept")
    assert any(p.suffix == ".parquet" for p in files_under(kept_location))

    assert files_under(location / "data")
    spark.sql(f"DROP TABLE {cat}.db.new_name PURGE")
    assert rows(spark, f"SHOW TABLES IN {cat}.db") == []
    assert [p for p in files_under(location) if p.suffix in (".parquet", ".avro")] == []
    assert [p for p in files_under(location) if p.name.endswith(".metadata.json")] == []

    spark.sql(f"DROP NAMESPACE {cat}.db")
    assert ("db",) not in rows(spark, f"SHOW NAMESPACES IN {cat}")


def test_pyiceberg_and_spark_read_each_other(spark, cat, floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse=floe.file_warehouse())

    # Written by PyIceberg, read by Spark.
    data = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "city": pa.array(["Oslo", "Lima", "Pune"], pa.string()),
            "temp": pa.array([-3.5, 18.0, 31.25], pa.float64()),
        }
    )
    py_table = catalog.create_table("db.from_pyiceberg", schema=data.schema)
    py_table.append(data)
    py_table.append(pa.table({"id": pa.array([4], pa.int64()), "city": ["Nuuk"], "temp": [-10.0]}))
    assert rows(spark, f"SELECT id, city, temp FROM {cat}.db.from_pyiceberg ORDER BY id") == [
        (1, "Oslo", -3.5), (2, "Lima", 18.0), (3, "Pune", 31.25), (4, "Nuuk", -10.0),
    ]
    # Spark writes on top of PyIceberg's table, PyIceberg sees it.
    spark.sql(f"DELETE FROM {cat}.db.from_pyiceberg WHERE id = 2")
    spark.sql(f"INSERT INTO {cat}.db.from_pyiceberg VALUES (5, 'Baku', 25.0)")
    reloaded = catalog.load_table("db.from_pyiceberg")
    assert sorted(reloaded.scan().to_arrow().column("id").to_pylist()) == [1, 3, 4, 5]
    assert len(reloaded.snapshots()) == 4

    # Written by Spark, read by PyIceberg.
    spark.sql(
        f"""CREATE TABLE {cat}.db.from_spark (id BIGINT, tags ARRAY<STRING>, at DATE)
            USING iceberg PARTITIONED BY (months(at))"""
    )
    spark.sql(
        f"""INSERT INTO {cat}.db.from_spark VALUES
            (1, array('a', 'b'), DATE '2024-03-01'), (2, array(), DATE '2024-04-15')"""
    )
    spark.sql(f"UPDATE {cat}.db.from_spark SET tags = array('z') WHERE id = 2")
    spark.sql(f"ALTER TABLE {cat}.db.from_spark ADD COLUMN note STRING")
    spark.sql(f"INSERT INTO {cat}.db.from_spark VALUES (3, NULL, DATE '2024-04-20', 'late')")

    table = catalog.load_table("db.from_spark")
    assert [f.name for f in table.schema().fields] == ["id", "tags", "at", "note"]
    assert table.spec().fields[0].name == "at_month"
    result = table.scan().to_arrow().sort_by("id").to_pylist()
    assert result == [
        {"id": 1, "tags": ["a", "b"], "at": datetime.date(2024, 3, 1), "note": None},
        {"id": 2, "tags": ["z"], "at": datetime.date(2024, 4, 15), "note": None},
        {"id": 3, "tags": None, "at": datetime.date(2024, 4, 20), "note": "late"},
    ]
    filtered = table.scan(row_filter="at >= '2024-04-01'", selected_fields=("id",)).to_arrow()
    assert sorted(filtered.column("id").to_pylist()) == [2, 3]


def test_spark_signs_in_through_the_identity_provider(spark, secure_floe, idp):
    """Spark's REST catalog gets its token from the IdP (`credential`, `oauth2-server-uri`,
    `scope`) and round-trips data through a Floe that refuses anonymous callers."""
    name = register_catalog(
        spark,
        secure_floe,
        kind="floe_authn",
        **{"credential": "spark-etl:spark-secret", "oauth2-server-uri": idp.token_url, "scope": "catalog"},
    )
    # Spark's client may create in the warehouse, and owns what it creates.
    files = warehouse_id(secure_floe, idp.token(), name=secure_floe.file_warehouse())
    grant(secure_floe, idp.token(), "warehouse", files, "user:idp~spark-etl", "create")
    spark.sql(f"CREATE NAMESPACE {name}.secure")
    spark.sql(f"CREATE TABLE {name}.secure.t (id BIGINT, v STRING) USING iceberg")
    spark.sql(f"INSERT INTO {name}.secure.t VALUES (1, 'a'), (2, 'b')")
    assert rows(spark, f"SELECT id, v FROM {name}.secure.t ORDER BY id") == [(1, "a"), (2, "b")]
    # The catalog saw Spark's client as the caller.
    users = requests.get(
        f"{secure_floe.base}/management/v1/users?name=spark-etl",
        headers={"authorization": f"Bearer {idp.token()}"},
        timeout=30,
    ).json()["users"]
    assert [(u["id"], u["kind"]) for u in users] == [("idp~spark-etl", "machine")]


def test_spark_reads_every_snapshot_maintenance_kept(spark, cat, floe):
    """A table written by PyIceberg (60 appends and an overwrite, then 4 recent appends) under a
    maintenance policy: after Floe's expiry Spark lists only the kept snapshots, reads each with
    the rows it had, and the files of the expired ones are gone from disk."""
    import time

    t = f"{cat}.db.maintained"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg")
    catalog = load_catalog("py", type="rest", uri=floe.uri, warehouse=floe.file_warehouse())
    table = catalog.load_table("db.maintained")
    batch = lambda start, n=5: pa.table({"id": pa.array(range(start, start + n), pa.int64())})  # noqa: E731
    for i in range(60):
        table.append(batch(i * 5))
    table.overwrite(batch(100000))
    old = {s.snapshot_id for s in table.metadata.snapshots}
    old_lists = [Path(urlparse(s.manifest_list).path) for s in table.metadata.snapshots]
    time.sleep(6)
    for i in range(4):
        table.append(batch(200000 + i * 5))
    recent = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in old]
    maintain(floe, "maintained", min_keep=2)

    assert sorted(snapshot_ids(spark, t)) == sorted(recent)
    for k, sid in enumerate(recent):
        assert scalar(spark, f"SELECT count(*) FROM {t} VERSION AS OF {sid}") == 5 + 5 * (k + 1)
    assert scalar(spark, f"SELECT count(*) FROM {t}") == 25
    assert not any(p.exists() for p in old_lists), "the expired snapshots' manifest lists are gone"
    data = [p for p in files_under(table_location(spark, t) / "data")]
    assert len(data) == 5, "the overwrite's and the recent appends' data files only"


SNAPSHOTS = int(os.environ.get("FLOE_MAINTENANCE_SNAPSHOTS", "5000"))


def maintain(floe, table, min_keep, timeout=60):
    """Sets the file warehouse's policy (snapshots older than 5 s expire, `min_keep` kept), runs
    maintenance of `db.<table>` and waits for it to succeed; returns the maintenance tasks."""
    import time

    listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=30).json()["warehouses"]
    wid = next(w["id"] for w in listed if w["name"] == floe.file_warehouse())
    manage = f"{floe.base}/management/v1/warehouses/{wid}"
    r = requests.put(
        f"{manage}/maintenance",
        json={"enabled": True, "properties": {
            "history.expire.max-snapshot-age-ms": "5000", "history.expire.min-snapshots-to-keep": str(min_keep)}},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = requests.post(f"{manage}/maintenance/run", json={"namespace": ["db"], "table": table}, timeout=30)
    assert r.json()["enqueued"] == 1
    deadline = time.monotonic() + timeout
    while True:
        tasks = list_tasks(f"{manage}/tasks?queue=maintenance")
        if tasks and tasks[0]["status"] in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    assert tasks[0]["status"] == "succeeded", tasks
    return tasks


def commit_replacing_snapshots(floe, table, ids, batch=100):
    """Commits one snapshot per id through the REST API, each replacing the table's rows with a
    data file of its own (`[3 * id, 3 * id + 3)`) listed by a manifest and a manifest list of its
    own, written here with PyIceberg's writers (PyIceberg's own transactions take minutes for
    thousands of snapshots). Returns what each snapshot uses: {snapshot id: {its files}}."""
    import random
    import time

    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import parquet_file_to_data_file
    from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus, write_manifest, write_manifest_list

    metadata = table.metadata
    location = metadata.location
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": floe.file_warehouse()}, timeout=30).json()[
        "overrides"
    ]["prefix"]
    url = f"{floe.uri}/v1/{prefix}/namespaces/db/tables/{table.name()[-1]}"
    os.makedirs(urlparse(f"{location}/data").path, exist_ok=True)
    parent = metadata.current_snapshot_id
    sequence = metadata.last_sequence_number
    uses = {}
    for start in range(0, len(ids), batch):
        updates = []
        first_parent = parent
        for n in ids[start : start + batch]:
            snapshot_id = random.randrange(1, 2**62)
            sequence += 1
            data = f"{location}/data/replace-{n:05d}.parquet"
            rows_of = pa.table(
                [pa.array(range(3 * n, 3 * n + 3), pa.int64())],
                schema=pa.schema([pa.field("id", pa.int64(), metadata={b"PARQUET:field_id": b"1"})]),
            )
            pq.write_table(rows_of, urlparse(data).path)
            data_file = parquet_file_to_data_file(table.io, metadata, data)
            manifest_path = f"{location}/metadata/replace-{n:05d}-m0.avro"
            with write_manifest(
                format_version=2,
                spec=metadata.spec(),
                schema=metadata.schema(),
                output_file=table.io.new_output(manifest_path),
                snapshot_id=snapshot_id,
                avro_compression="deflate",
            ) as writer:
                writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=snapshot_id, data_file=data_file))
            manifest = writer.to_manifest_file()
            list_path = f"{location}/metadata/snap-{snapshot_id}-replace-{n:05d}.avro"
            with write_manifest_list(
                format_version=2,
                output_file=table.io.new_output(list_path),
                snapshot_id=snapshot_id,
                parent_snapshot_id=parent,
                sequence_number=sequence,
                avro_compression="deflate",
            ) as lists:
                lists.add_manifests([manifest])
            updates.append({
                "action": "add-snapshot",
                "snapshot": {
                    "snapshot-id": snapshot_id,
                    **({"parent-snapshot-id": parent} if parent is not None else {}),
                    "sequence-number": sequence,
                    "timestamp-ms": int(time.time() * 1000),
                    "manifest-list": list_path,
                    "summary": {"operation": "overwrite", "added-data-files": "1", "added-records": "3"},
                    "schema-id": metadata.current_schema_id,
                },
            })
            uses[snapshot_id] = {urlparse(f).path for f in (data, manifest_path, list_path)}
            parent = snapshot_id
        updates.append({"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": parent})
        body = {
            "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": first_parent}],
            "updates": updates,
        }
        r = requests.post(url, json=body, timeout=120)
        assert r.status_code == 200, r.text[:2000]
    return uses


def test_five_thousand_snapshots_expire_to_the_kept_ones(spark, cat, floe):
    """A table with 5,000 snapshots (committed 100 at a time, each replacing the rows) under an
    expiry policy: Floe's maintenance leaves the kept snapshots only, each read back by Spark and
    PyIceberg with the rows it had, and the files deleted are exactly those the expired
    snapshots used and the kept ones do not, as the test itself recorded them while writing."""
    import time

    t = f"{cat}.db.long_history"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg")
    catalog = load_catalog("py", type="rest", uri=floe.uri, warehouse=floe.file_warehouse())
    table = catalog.load_table("db.long_history")
    recent_count = 10
    started = time.monotonic()
    old = commit_replacing_snapshots(floe, table, list(range(SNAPSHOTS - recent_count)))
    built = time.monotonic() - started
    time.sleep(6)
    table = catalog.load_table("db.long_history")
    recent_ids = list(range(SNAPSHOTS - recent_count, SNAPSHOTS))
    recent = commit_replacing_snapshots(floe, table, recent_ids)
    table = catalog.load_table("db.long_history")
    assert len(table.metadata.snapshots) == SNAPSHOTS
    expected = set().union(*old.values()) - set().union(*recent.values())
    assert len(expected) == 3 * (SNAPSHOTS - recent_count)
    location = table_location(spark, t)
    before = {str(p) for p in files_under(location) if not p.name.endswith(".metadata.json")}
    assert expected <= before

    started = time.monotonic()
    tasks = maintain(floe, "long_history", min_keep=3, timeout=600)
    maintained = time.monotonic() - started
    print(f"\n{SNAPSHOTS} snapshots: committed in {built:.0f} s; maintenance took {maintained:.1f} s: {tasks[0]['progress']}")

    after = {str(p) for p in files_under(location) if not p.name.endswith(".metadata.json")}
    gone = before - after
    assert gone == expected, (sorted(gone - expected)[:5], sorted(expected - gone)[:5])
    assert tasks[0]["progress"]["files-deleted"] == len(expected)

    kept = sorted(recent)
    assert sorted(snapshot_ids(spark, t)) == kept
    table = catalog.load_table("db.long_history")
    assert sorted(s.snapshot_id for s in table.metadata.snapshots) == kept
    for n, snapshot_id in zip(recent_ids, recent):
        ids = list(range(3 * n, 3 * n + 3))
        assert [r[0] for r in rows(spark, f"SELECT id FROM {t} VERSION AS OF {snapshot_id} ORDER BY id")] == ids
        assert sorted(table.scan(snapshot_id=snapshot_id).to_arrow().column("id").to_pylist()) == ids


# ---------------------------------------------------------------------------------------------
# Format v3: row lineage and deletion vectors


def table_metadata(floe, cat_table, warehouse=None):
    """The table's metadata as Floe serves it (raw REST), for `db.<name>`."""
    prefix = requests.get(
        f"{floe.uri}/v1/config", params={"warehouse": warehouse or floe.file_warehouse()}, timeout=30
    ).json()["overrides"]["prefix"]
    name = cat_table.rsplit(".", 1)[1]
    r = requests.get(f"{floe.uri}/v1/{prefix}/namespaces/db/tables/{name}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["metadata"]


def row_ids(spark, table):
    return rows(spark, f"SELECT id, _row_id FROM {table} ORDER BY id")


def assert_lineage(metadata):
    """Every snapshot's row range follows the previous one's in commit order, and the table's
    next-row-id follows the last."""
    assert metadata["format-version"] == 3
    expected = 0
    for snapshot in sorted(metadata["snapshots"], key=lambda s: s["sequence-number"]):
        assert snapshot["first-row-id"] >= expected, (snapshot, expected)
        expected = snapshot["first-row-id"] + snapshot["added-rows"]
    assert metadata["next-row-id"] == expected, (metadata["next-row-id"], expected)


def test_format_v3_row_lineage_and_deletion_vectors(spark, cat, floe):
    t = f"{cat}.db.lineage"
    spark.sql(
        f"CREATE TABLE {t} (id BIGINT, name STRING) USING iceberg TBLPROPERTIES ("
        "'format-version'='3', 'write.delete.mode'='merge-on-read', "
        "'write.update.mode'='merge-on-read', 'write.merge.mode'='merge-on-read')"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    spark.sql(f"INSERT INTO {t} VALUES (4, 'd'), (5, 'e')")
    before = dict(row_ids(spark, t))
    assert sorted(before.values()) == [0, 1, 2, 3, 4], before
    # Server-side planning hands out each data file's first row id (inherited from its
    # manifest) and data sequence number: the first _row_id Spark reads from that file.
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": floe.file_warehouse()}, timeout=30).json()[
        "overrides"
    ]["prefix"]
    planned = requests.post(f"{floe.uri}/v1/{prefix}/namespaces/db/tables/lineage/plan", json={}, timeout=30).json()
    first_ids = {
        urlparse(task["data-file"]["file-path"]).path: task["data-file"]["first-row-id"]
        for task in planned["file-scan-tasks"]
    }
    by_file = rows(spark, f"SELECT _file, min(_row_id) FROM {t} GROUP BY _file")
    assert {urlparse(f).path: r for f, r in by_file} == first_ids, (by_file, first_ids)
    assert all(task["data-file"]["data-sequence-number"] in (1, 2) for task in planned["file-scan-tasks"])
    # A delete and an update, merge-on-read: deletion vectors (Puffin) and a moved row that keeps
    # its row id.
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    spark.sql(f"UPDATE {t} SET name = 'D' WHERE id = 4")
    formats = {r[0] for r in rows(spark, f"SELECT file_format FROM {t}.delete_files")}
    assert formats == {"PUFFIN"}, formats
    after = dict(row_ids(spark, t))
    assert after == {i: before[i] for i in (1, 3, 4, 5)}, (before, after)
    assert rows(spark, f"SELECT id, name FROM {t} ORDER BY id") == [(1, "a"), (3, "c"), (4, "D"), (5, "e")]
    metadata = table_metadata(floe, t)
    assert_lineage(metadata)
    assert metadata["next-row-id"] >= 6  # the updated row was written again
    # PyIceberg reads the table Floe serves (the snapshot before the deletion vectors: PyIceberg
    # 0.12 does not apply them).
    catalog = load_catalog("py", type="rest", uri=floe.uri, warehouse=floe.file_warehouse())
    table = catalog.load_table("db.lineage")
    assert table.format_version == 3
    appended = sorted(metadata["snapshots"], key=lambda s: s["sequence-number"])[1]["snapshot-id"]
    assert sorted(table.scan(snapshot_id=appended).to_arrow().column("id").to_pylist()) == [1, 2, 3, 4, 5]


def test_java_keeps_the_v3_types_floes_model_cannot_parse(spark, cat, floe):
    """variant, geometry, geography and unknown, which Floe's own metadata model (the iceberg
    crate 0.10) cannot parse: Iceberg's Java API (1.10, the catalog client Spark uses) creates a
    table with them, evolves it and appends a file, and reads each type back as it wrote it.
    Spark 3.5's SQL has no such types, so the Java API is driven directly."""
    jvm = spark._jvm
    iceberg = jvm.org.apache.iceberg

    def types(name):
        return getattr(iceberg.types, f"Types${name}")

    field = types("NestedField")
    columns = jvm.java.util.ArrayList()
    columns.add(field.required(1, "id", types("LongType").get()))
    columns.add(field.optional(2, "v", types("VariantType").get()))
    columns.add(field.optional(3, "g", types("GeometryType").of("srid:4326")))
    columns.add(field.optional(4, "geo", types("GeographyType").of("srid:4269", iceberg.types.EdgeAlgorithm.KARNEY)))
    columns.add(field.optional(5, "u", types("UnknownType").get()))
    columns.add(
        field.optional(6, "tags", types("MapType").ofOptional(7, 8, types("StringType").get(), types("VariantType").get()))
    )
    schema = iceberg.Schema(columns)
    properties = jvm.java.util.HashMap()
    properties.put("format-version", "3")
    catalog = spark._jsparkSession.sessionState().catalogManager().catalog(cat).icebergCatalog()
    ident = iceberg.catalog.TableIdentifier.parse("db.java_v3")
    table = catalog.createTable(ident, schema, iceberg.PartitionSpec.unpartitioned(), properties)
    table.updateSchema().addColumn("v2", types("VariantType").get()).addColumn(
        "outline", types("GeometryType").crs84()
    ).commit()
    data_file = (
        iceberg.DataFiles.builder(iceberg.PartitionSpec.unpartitioned())
        .withPath(table.location() + "/data/00000-0.parquet")
        .withFileSizeInBytes(1024)
        .withRecordCount(3)
        .withFormat("PARQUET")
        .build()
    )
    table.newFastAppend().appendFile(data_file).commit()

    loaded = catalog.loadTable(ident)

    def typed(s):
        return {c.name(): c.type().toString() for c in s.columns()}

    expected = typed(schema)
    expected.update(v2="variant", outline=types("GeometryType").crs84().toString())
    assert typed(loaded.schema()) == expected
    assert loaded.schema().findType("v") == types("VariantType").get()
    assert loaded.schema().findType("geo") == types("GeographyType").of("srid:4269", iceberg.types.EdgeAlgorithm.KARNEY)
    assert not any(k.startswith("floe.") for k in loaded.properties().keySet())
    # Java's own parser of the metadata file Floe wrote.
    location = loaded.operations().current().metadataFileLocation()
    from_file = iceberg.TableMetadataParser.read(loaded.io(), location)
    assert typed(from_file.schema()) == expected
    assert len(from_file.schemas()) == 2
    # Row lineage assigned at commit, and a server-side plan over the manifest Java wrote.
    metadata = table_metadata(floe, f"{cat}.db.java_v3")
    assert_lineage(metadata)
    assert metadata["next-row-id"] == 3
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": floe.file_warehouse()}, timeout=30).json()[
        "overrides"
    ]["prefix"]
    planned = requests.post(
        f"{floe.uri}/v1/{prefix}/namespaces/db/tables/java_v3/plan", json={"select": ["id", "v"]}, timeout=30
    )
    assert planned.status_code == 200, planned.text
    tasks = planned.json()["file-scan-tasks"]
    assert [urlparse(t["data-file"]["file-path"]).path for t in tasks] == [urlparse(data_file.location()).path]

    # Floe's maintenance reads the manifests too: expiring the first snapshot keeps the file.
    first = loaded.currentSnapshot().snapshotId()
    table.refresh()
    table.newFastAppend().appendFile(
        iceberg.DataFiles.builder(iceberg.PartitionSpec.unpartitioned())
        .withPath(table.location() + "/data/00001-0.parquet")
        .withFileSizeInBytes(1024)
        .withRecordCount(2)
        .withFormat("PARQUET")
        .build()
    ).commit()
    listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"]
    wid = next(w["id"] for w in listed if w["name"] == floe.file_warehouse())
    manage = f"{floe.base}/management/v1/warehouses/{wid}"
    r = requests.put(
        f"{manage}/maintenance",
        json={
            "enabled": True,
            "interval-seconds": 3600,
            "properties": {"history.expire.max-snapshot-age-ms": "1", "history.expire.min-snapshots-to-keep": "1"},
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    r = requests.post(f"{manage}/maintenance/run", json={"namespace": ["db"], "table": "java_v3"}, timeout=10)
    assert r.status_code == 200 and r.json()["enqueued"] == 1, r.text
    deadline = time.monotonic() + 60
    while True:
        queued = list_tasks(f"{manage}/tasks?queue=maintenance")
        if queued and all(t["status"] in ("succeeded", "failed") for t in queued):
            break
        assert time.monotonic() < deadline, queued
        time.sleep(0.2)
    assert [t["status"] for t in queued] == ["succeeded"], queued
    after = catalog.loadTable(ident)
    assert [s.snapshotId() for s in after.snapshots()] == [after.currentSnapshot().snapshotId()]
    assert after.currentSnapshot().snapshotId() != first
    assert typed(after.schema()) == expected
    assert after.currentSnapshot().addedDataFiles(after.io()).iterator().next().location().endswith("00001-0.parquet")


def test_format_v2_tables_upgrade_to_v3(spark, cat, floe):
    t = f"{cat}.db.upgraded"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg TBLPROPERTIES ('format-version'='2')")
    spark.sql(f"INSERT INTO {t} VALUES (1), (2)")
    spark.sql(f"ALTER TABLE {t} SET TBLPROPERTIES ('format-version'='3')")
    spark.sql(f"INSERT INTO {t} VALUES (3)")
    metadata = table_metadata(floe, t)
    assert metadata["format-version"] == 3
    last = max(metadata["snapshots"], key=lambda s: s["sequence-number"])
    assert last["first-row-id"] == 0 and metadata["next-row-id"] >= 1, metadata
    assert [r[0] for r in rows(spark, f"SELECT id FROM {t} ORDER BY id")] == [1, 2, 3]


def rejected_commits(floe):
    """Commits Floe answered 409 because the client's view was stale (the client then retries)."""
    import re

    scraped = requests.get(f"{floe.base}/metrics", timeout=10).text
    found = re.search(r'^floe_table_commits_total\{(?=[^}]*outcome="rejected")[^}]*\} (\S+)$', scraped, re.M)
    return float(found.group(1)) if found else 0.0


def test_format_v3_row_ids_stay_unique_under_concurrent_commits(spark, cat, floe):
    """Three writers append at once until at least one commit raced another (Floe refused it as
    stale and Spark retried with fresh row ids); every row id is then unique and the table's
    next-row-id counts every row."""
    import threading

    t = f"{cat}.db.racing"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg TBLPROPERTIES ('format-version'='3')")
    errors = []

    def writer(base):
        try:
            for n in range(4):
                spark.sql(f"INSERT INTO {t} VALUES ({base + 2 * n}), ({base + 2 * n + 1})")
        except Exception as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    before = rejected_commits(floe)
    rows_written = 0
    for round_ in range(5):
        threads = [threading.Thread(target=writer, args=(1000 * round_ + base,)) for base in (0, 100, 200)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        rows_written += 24
        if rejected_commits(floe) > before:
            break
    assert rejected_commits(floe) > before, "no commit raced another in five rounds"
    ids = row_ids(spark, t)
    assert len(ids) == rows_written
    assert len({r for _, r in ids}) == rows_written, ids
    metadata = table_metadata(floe, t)
    assert_lineage(metadata)
    assert metadata["next-row-id"] == rows_written, metadata["next-row-id"]


def test_format_v3_row_ids_stay_unique_after_a_merge(spark, floe):
    """Rows appended on a warehouse branch and on main, then merged: the branch's rows are
    numbered again after main's, so no two rows share an id."""
    api = f"{floe.base}/management/v1/warehouses"
    name = floe.file_warehouse()
    wid = next(w["id"] for w in requests.get(api, timeout=10).json()["warehouses"] if w["name"] == name)
    main = register_catalog(spark, floe)
    spark.sql(f"CREATE NAMESPACE {main}.db")
    t = "db.merged"
    spark.sql(f"CREATE TABLE {main}.{t} (id BIGINT) USING iceberg TBLPROPERTIES ('format-version'='3')")
    spark.sql(f"INSERT INTO {main}.{t} VALUES (1), (2), (3)")
    r = requests.post(f"{api}/{wid}/branches", json={"name": "dev"}, timeout=30)
    assert r.status_code == 201, r.text
    dev = register_catalog(spark, floe, warehouse=f"{name}@dev")
    spark.sql(f"INSERT INTO {dev}.{t} VALUES (10), (11)")
    spark.sql(f"INSERT INTO {main}.{t} VALUES (4), (5), (6)")
    # Both sides numbered their new rows from 3.
    assert {r for _, r in row_ids(spark, f"{dev}.{t}")} == {0, 1, 2, 3, 4}
    merged = requests.post(f"{api}/{wid}/merge", json={"source": "dev", "target": "main"}, timeout=60)
    assert merged.status_code == 200, merged.text
    ids = row_ids(spark, f"{main}.{t}")
    assert [i for i, _ in ids] == [1, 2, 3, 4, 5, 6, 10, 11]
    assert len({r for _, r in ids}) == 8, ids
    metadata = table_metadata(floe, f"{main}.{t}")
    assert_lineage(metadata)
    assert metadata["next-row-id"] == 8


# ---------------------------------------------------------------------------------------------
# Server-side scan planning, read by Iceberg's own Java parsers


def java_table(spark, cat, name):
    jvm = spark._jvm
    gateway = spark.sparkContext._gateway
    namespace = gateway.new_array(jvm.java.lang.String, 1)
    namespace[0] = "db"
    ident = jvm.org.apache.spark.sql.connector.catalog.Identifier.of(namespace, name)
    return spark._jsparkSession.sessionState().catalogManager().catalog(cat).loadTable(ident).table()


def java_list(iterable):
    items, it = [], iterable.iterator()
    while it.hasNext():
        items.append(it.next())
    return items


def java_files(tasks):
    """{data file: frozenset(delete files)} of Java FileScanTasks."""
    return {
        t.file().location(): frozenset(d.location() for d in t.deletes())
        for t in tasks
    }


@pytest.mark.parametrize("version", [2, 3])
def test_java_parses_floe_scan_plans_and_agrees_with_its_own_planning(spark, cat, floe, version):
    """Spark's own tables (v2: file-scoped position deletes; v3: deletion vectors), planned by
    Floe and by Iceberg's Java planner: the same files with the same deletes, for filters Java
    serializes itself."""
    t = f"{cat}.db.planned"
    spark.sql(
        f"CREATE TABLE {t} (id BIGINT, category STRING) USING iceberg PARTITIONED BY (category) "
        f"TBLPROPERTIES ('format-version'='{version}', 'write.delete.mode'='merge-on-read')"
    )
    for n in range(4):
        values = ", ".join(f"({n * 10 + k}, '{'abc'[k % 3]}')" for k in range(6))
        spark.sql(f"INSERT INTO {t} VALUES {values}")
    spark.sql(f"DELETE FROM {t} WHERE id IN (1, 12)")
    if version == 3:
        formats = {r[0] for r in rows(spark, f"SELECT file_format FROM {t}.delete_files")}
        assert formats == {"PUFFIN"}, formats
    table = java_table(spark, cat, "planned")
    jvm = spark._jvm
    E = jvm.org.apache.iceberg.expressions.Expressions
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": floe.file_warehouse()}, timeout=30).json()[
        "overrides"
    ]["prefix"]
    url = f"{floe.uri}/v1/{prefix}/namespaces/db/tables/planned/plan"
    filters = [
        E.alwaysTrue(),
        E.equal("category", "b"),
        E.greaterThanOrEqual("id", 20),
        getattr(E, "and")(E.lessThan("id", 25), E.notEqual("category", "a")),
        getattr(E, "or")(E.isNull("category"), E.equal("id", 31)),
        E.startsWith("category", "c"),
        E.notNull("id"),
    ]
    mapper = jvm.org.apache.iceberg.util.JsonUtil.mapper()
    spec_fields = {
        spec["spec-id"]: [f["field-id"] for f in spec["fields"]]
        for spec in table_metadata(floe, t)["partition-specs"]
    }
    for expression in filters:
        request = jvm.org.apache.iceberg.rest.requests.PlanTableScanRequest.Builder().withFilter(expression).build()
        body = jvm.org.apache.iceberg.rest.requests.PlanTableScanRequestParser.toJson(request)
        r = requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=60)
        assert r.status_code == 200, (str(expression), r.text)
        # Floe writes the spec's forms (content `data`/`position-deletes`, partition values as a
        # list), which Iceberg 1.11's parser reads; 1.10's (the one here) knows only its enum's
        # names and partitions as objects by field id, so they are rewritten for it.
        plan_json = r.json()
        for item in [t["data-file"] for t in plan_json["file-scan-tasks"]] + plan_json.get("delete-files", []):
            item["content"] = item["content"].upper().replace("-", "_")
            fields = spec_fields[item["spec-id"]]
            item["partition"] = {str(f): v for f, v in zip(fields, item["partition"]) if v is not None}
        parsed = jvm.org.apache.iceberg.rest.responses.PlanTableScanResponseParser.fromJson(
            mapper.readTree(json.dumps(plan_json)), table.specs(), True
        )
        assert parsed.planStatus().status() == "completed"
        server = java_files(parsed.fileScanTasks())
        local = java_files(java_list(table.newScan().filter(expression).planFiles()))
        assert server == local, (str(expression), server, local)
    assert any(java_files(java_list(table.newScan().planFiles())).values()), "the table has delete files"
