"""Concurrent commits through one address in front of several Floe instances, then a check that
every commit landed and that every instance serves the same table state.

    python client.py commit --endpoint http://127.0.0.1:8181 --workers 4 --commits 10 \
        --instance http://127.0.0.1:8281 --instance http://127.0.0.1:8282
    python client.py check --endpoint http://127.0.0.1:8181 --rows 40

`commit` starts over the table `ha.commits` of the warehouse, then runs `--workers` threads, each
with a PyIceberg catalog of its own (so its own connections, which the load balancer spreads over
the instances), each appending `--commits` one-row snapshots to that one table. Two appends racing
on one table are a real conflict (each asserts the snapshot it started from), answered 409
whichever instance serves them; PyIceberg then reloads the table and commits its append again on
the new state (up to 4 times by default, with backoff), and the worker starts the append over if
even those retries lose. `check` reads the table back and fails unless it has exactly the
expected rows.
"""

import argparse
import logging
import sys
import threading
import time

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import CommitFailedException

TABLE = "ha.commits"
SCHEMA = pa.schema([pa.field("worker", pa.int32()), pa.field("seq", pa.int32())])


class Conflicts(logging.Filter):
    """Counts (and hides) PyIceberg's warnings about the conflicts it retries."""

    count = 0

    def filter(self, record):
        if "concurrent update" in record.getMessage():
            Conflicts.count += 1
            return False
        return True


logging.getLogger("pyiceberg.table").addFilter(Conflicts())


def catalog(endpoint, warehouse, name="floe"):
    return load_catalog(name, type="rest", uri=f"{endpoint.rstrip('/')}/catalog", warehouse=warehouse)


def state(endpoint, warehouse):
    """(metadata location, sorted (worker, seq) rows, snapshot count) of the table at `endpoint`."""
    table = catalog(endpoint, warehouse, name=f"reader-{endpoint}").load_table(TABLE)
    data = table.scan().to_arrow().to_pydict()
    return table.metadata_location, sorted(zip(data["worker"], data["seq"])), len(table.snapshots())


def commit(args):
    setup = catalog(args.endpoint, args.warehouse)
    setup.create_namespace_if_not_exists("ha")
    if setup.table_exists(TABLE):
        setup.drop_table(TABLE)
    setup.create_table(TABLE, schema=SCHEMA)

    retries = [0] * args.workers
    errors = []

    def worker(n):
        try:
            table = catalog(args.endpoint, args.warehouse, name=f"worker-{n}").load_table(TABLE)
            for seq in range(args.commits):
                row = pa.table({"worker": [n], "seq": [seq]}, schema=SCHEMA)
                while True:
                    try:
                        table.append(row)
                        break
                    except CommitFailedException:
                        # Another writer committed first: start from the table's new state.
                        retries[n] += 1
                        table.refresh()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"worker {n}: {e!r}")

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - started
    if errors:
        sys.exit("\n".join(errors))
    total = args.workers * args.commits
    print(
        f"{args.workers} workers committed {total} appends in {took:.1f} s; PyIceberg retried "
        f"{Conflicts.count} conflicting commits, workers started {sum(retries)} appends over"
    )

    # Every commit landed, once: the table has exactly the rows written, one snapshot each.
    location, rows, snapshots = state(args.endpoint, args.warehouse)
    expected = sorted((n, seq) for n in range(args.workers) for seq in range(args.commits))
    if rows != expected or snapshots != total:
        sys.exit(f"expected {total} rows in {total} snapshots, found {len(rows)} rows in {snapshots}")
    print(f"all {total} commits landed: {len(rows)} rows, {snapshots} snapshots")

    # Each instance serves the same state (another instance's commit reaches an instance's cache
    # through PostgreSQL notifications within milliseconds).
    for instance in args.instance:
        deadline = time.monotonic() + 10
        while (seen := state(instance, args.warehouse)[0]) != location and time.monotonic() < deadline:
            time.sleep(0.1)
        if seen != location:
            sys.exit(f"{instance} serves {seen}, not {location}")
        print(f"{instance} serves the same table version ({location.rsplit('/', 1)[1]})")


def check(args):
    _, rows, snapshots = state(args.endpoint, args.warehouse)
    if len(rows) != args.rows or len(set(rows)) != args.rows:
        sys.exit(f"expected {args.rows} distinct rows, found {len(rows)}")
    print(f"{args.endpoint}: {TABLE} has all {len(rows)} rows in {snapshots} snapshots")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("commit", "check"):
        p = sub.add_parser(name)
        p.add_argument("--endpoint", required=True, help="the load balancer's URL")
        p.add_argument("--warehouse", default="lake")
    sub.choices["commit"].add_argument("--workers", type=int, default=4)
    sub.choices["commit"].add_argument("--commits", type=int, default=10, help="per worker")
    sub.choices["commit"].add_argument("--instance", action="append", default=[], help="an instance's own URL")
    sub.choices["check"].add_argument("--rows", type=int, required=True)
    args = parser.parse_args()
    commit(args) if args.command == "commit" else check(args)
