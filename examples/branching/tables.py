"""The PyIceberg half of the branching walkthrough (walkthrough.sh calls it).

  python tables.py seed            main: namespace `shop`, table `shop.orders` with rows 1-3
  python tables.py write REF       REF: append rows 4-5 to `shop.orders`, create `shop.returns`
  python tables.py show REF        print what REF holds

A branch is picked with the catalog's `warehouse` setting, `demo@<branch>`; nothing else changes.
"""

import os
import sys

import pyarrow as pa
from pyiceberg.catalog import load_catalog

ENDPOINT = os.environ.get("FLOE_ENDPOINT", "http://127.0.0.1:8181").rstrip("/")
WAREHOUSE = os.environ.get("FLOE_WAREHOUSE", "demo")
SCHEMA = pa.schema([("id", pa.int64()), ("item", pa.string())])


def catalog(ref="main"):
    warehouse = WAREHOUSE if ref == "main" else f"{WAREHOUSE}@{ref}"
    return load_catalog(f"floe-{ref}", type="rest", uri=f"{ENDPOINT}/catalog", warehouse=warehouse)


def rows(ids, item):
    return pa.table({"id": list(ids), "item": [f"{item}-{i}" for i in ids]}, schema=SCHEMA)


def seed():
    main = catalog()
    main.create_namespace_if_not_exists("shop")
    # Start over on a re-run: `write` creates `shop.returns`, a merge brings it to main.
    for name in ("shop.orders", "shop.returns"):
        if main.table_exists(name):
            main.drop_table(name)
    main.create_table("shop.orders", schema=SCHEMA).append(rows([1, 2, 3], "main"))
    print("main: shop.orders has rows 1-3")


def write(ref):
    branch = catalog(ref)
    branch.load_table("shop.orders").append(rows([4, 5], ref))
    branch.create_table("shop.returns", schema=SCHEMA).append(rows([90], ref))
    print(f"{ref}: appended rows 4-5 to shop.orders, created shop.returns")


def show(ref):
    cat = catalog(ref)
    print(f"{ref}: tables {sorted('.'.join(t) for t in cat.list_tables('shop'))}")
    ids = sorted(cat.load_table("shop.orders").scan().to_arrow()["id"].to_pylist())
    print(f"{ref}: shop.orders ids {ids}")


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "seed":
        seed()
    elif command == "write" and len(args) == 1:
        write(args[0])
    elif command == "show" and len(args) == 1:
        show(args[0])
    else:
        sys.exit(__doc__)
