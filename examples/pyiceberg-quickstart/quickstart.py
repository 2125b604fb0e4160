"""PyIceberg against Floe: a namespace, a table, appends, scans, schema evolution, time travel.

Needs a running `floe serve` (FLOE_ENDPOINT, default http://127.0.0.1:8181) and the packages of
../requirements.txt. Re-running it starts the table over.
"""

import os

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.types import StringType

ENDPOINT = os.environ.get("FLOE_ENDPOINT", "http://127.0.0.1:8181").rstrip("/")
WAREHOUSE = os.environ.get("FLOE_WAREHOUSE", "demo")

# The whole configuration: the catalog's URI and the warehouse. Floe's `demo` warehouse is served
# by its S3 gateway; with every table the catalog hands PyIceberg a short-lived key for that table's
# folder (vended credentials), so no storage settings are needed here.
catalog = load_catalog("floe", type="rest", uri=f"{ENDPOINT}/catalog", warehouse=WAREHOUSE)

# 1. A namespace with a property.
catalog.create_namespace_if_not_exists("sales", {"owner": "data-eng"})
print("namespaces:", catalog.list_namespaces())
print("sales properties:", catalog.load_namespace_properties("sales"))

# 2. A table, created from an Arrow schema. (Dropped first so the script can run again.)
if catalog.table_exists("sales.orders"):
    catalog.drop_table("sales.orders")
schema = pa.schema([("id", pa.int64()), ("item", pa.string()), ("amount", pa.float64())])
orders = catalog.create_table("sales.orders", schema=schema)
print("created", orders.name(), "at", orders.location())

# 3. Two appends: each one is a commit, i.e. a new snapshot.
orders.append(pa.table({"id": [1, 2], "item": ["tea", "cake"], "amount": [3.5, 4.25]}, schema=schema))
orders.append(pa.table({"id": [3], "item": ["scone"], "amount": [2.75]}, schema=schema))

# 4. Scans: everything, then a filtered projection.
print(catalog.load_table("sales.orders").scan().to_arrow().sort_by("id"))
cheap = orders.scan(row_filter="amount < 4", selected_fields=("id", "item")).to_arrow()
print("amount < 4:", sorted(cheap["item"].to_pylist()))

# 5. Schema evolution: add a column; old rows read it as null.
with orders.update_schema() as update:
    update.add_column("note", StringType(), doc="free text")
evolved = pa.schema([*schema, ("note", pa.string())])
orders.append(pa.table({"id": [4], "item": ["jam"], "amount": [5.0], "note": ["gift"]}, schema=evolved))
print("schema now:", [field.name for field in orders.schema().fields])
print(orders.scan(selected_fields=("id", "note")).to_arrow().sort_by("id").to_pylist())

# 6. Time travel: the table as of its first snapshot.
first = orders.history()[0]
print("rows at the first snapshot:", orders.scan(snapshot_id=first.snapshot_id).to_arrow().num_rows)
print("snapshots:", [s.summary.operation.value for s in orders.snapshots()])
