"""PySpark (Spark 3.5 + Iceberg 1.10) against Floe's REST catalog: create, insert, query, update,
an Iceberg branch of one table, and a read of the same table on a Floe branch of the warehouse.

Needs a running `floe serve` on this machine (FLOE_ENDPOINT, default http://127.0.0.1:8181) and
pyspark (requirements.txt). The Iceberg runtime jar comes from Maven Central, or from the
comma-separated jar paths in FLOE_SPARK_JARS when set (offline). Re-running it starts over.
"""

import json
import os
import urllib.error
import urllib.request

from pyspark.sql import SparkSession

ENDPOINT = os.environ.get("FLOE_ENDPOINT", "http://127.0.0.1:8181").rstrip("/")
ICEBERG_VERSION = os.environ.get("ICEBERG_VERSION", "1.10.2")
WAREHOUSE = "spark-files"
BRANCH = "spark-dev"


def api(method, path, body=None):
    """A call of Floe's management API; returns (status, JSON body)."""
    request = urllib.request.Request(
        f"{ENDPOINT}/management/v1{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def file_warehouse():
    """The id of a plain local warehouse (`file://` locations), created on first use.

    Spark reads and writes table files itself. The `demo` warehouse is served through Floe's S3
    gateway (`s3://demo/...`), which needs Iceberg's AWS bundle on Spark's class path; a local
    warehouse needs nothing, as long as Spark runs on the server's machine. Its root lies beside
    `demo`'s, under the server's `<data dir>/warehouses/` (or set FLOE_SPARK_ROOT to a folder the
    server's `storage.local_roots` lists)."""
    status, listing = api("GET", "/warehouses")
    assert status == 200, listing
    warehouses = {w["name"]: w for w in listing["warehouses"]}
    if WAREHOUSE in warehouses:
        return warehouses[WAREHOUSE]["id"]
    root = os.environ.get("FLOE_SPARK_ROOT")
    if not root:
        assert "demo" in warehouses, "no warehouse `demo` to put spark-files beside: set FLOE_SPARK_ROOT"
        root = os.path.join(os.path.dirname(warehouses["demo"]["storage-profile"]["root"]), WAREHOUSE)
    status, made = api(
        "POST", "/warehouses", {"name": WAREHOUSE, "storage-profile": {"type": "local", "root": root}}
    )
    assert status == 201, made
    print(f"created warehouse {WAREHOUSE} at {root}")
    return made["id"]


warehouse_id = file_warehouse()

# Spark's driver on the loopback address (no warning about the host's name resolving to it).
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

builder = (
    SparkSession.builder.master("local[2]")
    .appName("floe-example")
    .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
    # The catalog `floe`: Iceberg's REST catalog pointed at Floe.
    .config("spark.sql.catalog.floe", "org.apache.iceberg.spark.SparkCatalog")
    .config("spark.sql.catalog.floe.type", "rest")
    .config("spark.sql.catalog.floe.uri", f"{ENDPOINT}/catalog")
    .config("spark.sql.catalog.floe.warehouse", WAREHOUSE)
    # The catalog `floe_dev`: the same warehouse on Floe's branch `spark-dev` (`<warehouse>@<branch>`).
    .config("spark.sql.catalog.floe_dev", "org.apache.iceberg.spark.SparkCatalog")
    .config("spark.sql.catalog.floe_dev.type", "rest")
    .config("spark.sql.catalog.floe_dev.uri", f"{ENDPOINT}/catalog")
    .config("spark.sql.catalog.floe_dev.warehouse", f"{WAREHOUSE}@{BRANCH}")
    # A small local Spark.
    .config("spark.driver.memory", "1g")
    .config("spark.sql.shuffle.partitions", "2")
    .config("spark.ui.enabled", "false")
    .config("spark.ui.showConsoleProgress", "false")
    .config("spark.sql.catalogImplementation", "in-memory")
    .config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1")
)
if os.environ.get("FLOE_SPARK_JARS"):
    builder = builder.config("spark.jars", os.environ["FLOE_SPARK_JARS"])
else:
    builder = builder.config(
        "spark.jars.packages", f"org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:{ICEBERG_VERSION}"
    )
spark = builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")


def show(sql):
    """Runs a query and prints its rows."""
    rows = [tuple(r) for r in spark.sql(sql).collect()]
    print(f"{sql}\n  -> {rows}")
    return rows


# 1. A namespace and a partitioned table (re-runs start over).
spark.sql("CREATE NAMESPACE IF NOT EXISTS floe.shop")
spark.sql("DROP TABLE IF EXISTS floe.shop.sales PURGE")
spark.sql(
    """CREATE TABLE floe.shop.sales (id BIGINT, product STRING, qty INT, day DATE)
       USING iceberg PARTITIONED BY (day)"""
)

# 2. Insert and query.
spark.sql(
    """INSERT INTO floe.shop.sales VALUES
       (1, 'tea', 2, DATE '2025-03-01'), (2, 'cake', 1, DATE '2025-03-01'),
       (3, 'tea', 5, DATE '2025-03-02')"""
)
show("SELECT product, sum(qty) FROM floe.shop.sales GROUP BY product ORDER BY product")
spark.sql("UPDATE floe.shop.sales SET qty = qty + 1 WHERE product = 'cake'")
show("SELECT id, product, qty FROM floe.shop.sales ORDER BY id")
show("SELECT operation FROM floe.shop.sales.snapshots ORDER BY committed_at")

# 3. An Iceberg branch of this one table: write to it, read it with VERSION AS OF.
spark.sql("ALTER TABLE floe.shop.sales CREATE BRANCH audit")
spark.sql("INSERT INTO floe.shop.sales.branch_audit VALUES (4, 'jam', 3, DATE '2025-03-02')")
show("SELECT count(*) FROM floe.shop.sales VERSION AS OF 'audit'")
show("SELECT count(*) FROM floe.shop.sales")

# 4. A Floe branch of the whole warehouse, made through the management API (or `floe branch
#    create spark-dev -w spark-files`): the catalog `floe_dev` writes there, `floe` does not see it.
api("DELETE", f"/warehouses/{warehouse_id}/branches/{BRANCH}")  # left over from an earlier run
status, branch = api("POST", f"/warehouses/{warehouse_id}/branches", {"name": BRANCH})
assert status == 201, branch
spark.sql("INSERT INTO floe_dev.shop.sales VALUES (5, 'scone', 4, DATE '2025-03-03')")
on_main = show("SELECT count(*) FROM floe.shop.sales")
on_dev = show("SELECT count(*) FROM floe_dev.shop.sales")
assert (on_main, on_dev) == ([(3,)], [(4,)]), (on_main, on_dev)

spark.stop()
