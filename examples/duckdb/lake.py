"""DuckDB against Floe: attach the REST catalog with DuckDB's iceberg extension, then create,
insert, query, update and delete with plain SQL.

Needs a running `floe serve` (FLOE_ENDPOINT, default http://127.0.0.1:8181) and the packages of
../requirements.txt. Re-running it starts the table over.
"""

import os

import duckdb

ENDPOINT = os.environ.get("FLOE_ENDPOINT", "http://127.0.0.1:8181").rstrip("/")
WAREHOUSE = os.environ.get("FLOE_WAREHOUSE", "demo")

con = duckdb.connect()

# The iceberg extension (with httpfs and avro, which it uses). The `duckdb-extension-*` wheels carry
# them, so nothing is downloaded; without those wheels, DuckDB's own INSTALL fetches them.
try:
    from duckdb_extensions import import_extension
except ImportError:
    import_extension = None
con.execute("SET autoinstall_known_extensions = false")
for extension in ("httpfs", "avro", "iceberg"):
    if import_extension is not None:
        import_extension(extension, con=con)
    else:
        con.execute(f"INSTALL {extension}")
    con.execute(f"LOAD {extension}")


def show(sql):
    """Runs a query and prints its rows."""
    rows = con.execute(sql).fetchall()
    print(f"{sql}\n  -> {rows}")
    return rows


# Attach the warehouse as database `lake`. DuckDB asks Floe for vended credentials (a key for each
# table's folder on Floe's S3 gateway), so no S3 secret is needed.
con.execute(
    f"ATTACH '{WAREHOUSE}' AS lake "
    f"(TYPE iceberg, ENDPOINT '{ENDPOINT}/catalog', AUTHORIZATION_TYPE 'none')"
)

# A schema is an Iceberg namespace, a table an Iceberg table.
con.execute("CREATE SCHEMA IF NOT EXISTS lake.analytics")
con.execute("DROP TABLE IF EXISTS lake.analytics.trips")
con.execute("CREATE TABLE lake.analytics.trips (id INTEGER, city VARCHAR, km DOUBLE)")

# Each statement is one commit to the catalog.
con.execute(
    """INSERT INTO lake.analytics.trips VALUES
       (1, 'Lisbon', 12.5), (2, 'Porto', 3.0), (3, 'Lisbon', 7.25), (4, 'Braga', 40.0)"""
)
con.execute("INSERT INTO lake.analytics.trips SELECT 5, 'Porto', 9.5")
show("SELECT city, count(*), sum(km) FROM lake.analytics.trips GROUP BY city ORDER BY city")

con.execute("UPDATE lake.analytics.trips SET km = km * 2 WHERE city = 'Porto'")
con.execute("DELETE FROM lake.analytics.trips WHERE city = 'Braga'")
show("SELECT id, city, km FROM lake.analytics.trips ORDER BY id")

# Several statements in one transaction commit together (or not at all).
con.execute("BEGIN")
con.execute("INSERT INTO lake.analytics.trips VALUES (6, 'Faro', 1.0)")
con.execute("INSERT INTO lake.analytics.trips VALUES (7, 'Faro', 2.0)")
con.execute("COMMIT")

show("SHOW ALL TABLES")
rows = show("SELECT count(*), sum(km) FROM lake.analytics.trips")
assert rows == [(6, 47.75)], rows
