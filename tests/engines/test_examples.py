"""The examples under examples/, each run exactly as its README says (the one ```sh block under
its "## Run" heading, in its folder, with `floe` and this venv's Python on PATH) against a fresh
`floe serve`, and their effects checked through the catalog and management APIs.

postgres-ha starts its own two instances on a fresh PostgreSQL database; the others get a fresh
embedded (SQLite) server, found through FLOE_ENDPOINT as their READMEs say. The examples that
promise to run again on the same server are run twice."""

import json
import os
import re
import subprocess
import sys
import tempfile
import uuid

import pytest
import requests
from pyiceberg.catalog import load_catalog

from conftest import ADMIN_URL, FLOE_BIN, TEST_KEY, Floe, _psql

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")
NAMES = ["pyiceberg-quickstart", "duckdb", "spark", "branching", "s3-gateway", "postgres-ha"]


def run_block(name):
    """The commands of an example's README: its only ```sh block, which follows `## Run`."""
    with open(os.path.join(EXAMPLES, name, "README.md")) as f:
        text = f.read()
    blocks = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    assert len(blocks) == 1, f"{name}/README.md must have exactly one ```sh block, has {len(blocks)}"
    run = text.find("\n## Run\n")
    assert 0 <= run < text.find("```sh"), f"{name}/README.md: the ```sh block is not under ## Run"
    return blocks[0]


def run_example(name, env=None, timeout=300):
    """Runs the example's README commands in its folder; fails unless they exit 0. Returns stdout."""
    path = os.pathsep.join(
        [os.path.dirname(sys.executable), os.path.dirname(os.path.abspath(FLOE_BIN)), os.environ["PATH"]]
    )
    full_env = dict(os.environ, PATH=path, PYTHON=sys.executable, **(env or {}))
    full_env.pop("RUST_LOG", None)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", run_block(name)],
        cwd=os.path.join(EXAMPLES, name),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"examples/{name} exited {result.returncode}\n--- stdout\n{result.stdout[-6000:]}"
        f"\n--- stderr\n{result.stderr[-6000:]}"
    )
    return result.stdout


@pytest.fixture
def server():
    """A fresh embedded (SQLite) Floe on free ports, with `demo` served by its S3 gateway."""
    floe = Floe("sqlite")
    yield floe
    floe.stop()


def endpoint(floe):
    return {"FLOE_ENDPOINT": floe.base}


def catalog(floe, warehouse="demo"):
    return load_catalog(f"check-{warehouse}", type="rest", uri=floe.uri, warehouse=warehouse)


def rows_of(table, *columns):
    data = table.scan().to_arrow().to_pydict()
    return sorted(zip(*(data[c] for c in columns)))


def warehouse_api(floe, name="demo"):
    listing = requests.get(f"{floe.base}/management/v1/warehouses", timeout=30)
    assert listing.status_code == 200, listing.text
    (wid,) = [w["id"] for w in listing.json()["warehouses"] if w["name"] == name]
    return f"{floe.base}/management/v1/warehouses/{wid}"


# ---------------------------------------------------------------------------------------------


def test_every_example_has_a_readme_run_block_and_the_ci_pins():
    """Every example folder is in the index and has its run commands; what the examples ask users
    to install is what CI tests with (tests/engines/requirements.txt), pin for pin."""
    folders = sorted(e for e in os.listdir(EXAMPLES) if os.path.isdir(os.path.join(EXAMPLES, e)))
    assert folders == sorted(NAMES)
    with open(os.path.join(EXAMPLES, "README.md")) as f:
        index = f.read()
    for name in NAMES:
        assert f"[`{name}/`]({name}/)" in index, name
        assert run_block(name).strip()

    def pins(path):
        found = {}
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if "==" in line:
                    package, version = line.split("==")
                    found[re.sub(r"\[.*\]", "", package).lower()] = version
        return found

    ci = pins(os.path.join(REPO, "tests", "engines", "requirements.txt"))
    for requirements in ("requirements.txt", "spark/requirements.txt"):
        wanted = pins(os.path.join(EXAMPLES, requirements))
        with open(os.path.join(EXAMPLES, requirements)) as f:
            lines = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
        assert wanted and len(wanted) == len(lines), (requirements, lines)
        for package, version in wanted.items():
            assert ci.get(package) == version, (requirements, package, version, ci.get(package))


def test_pyiceberg_quickstart(server):
    for _ in range(2):
        out = run_example("pyiceberg-quickstart", endpoint(server))
        assert "rows at the first snapshot: 2" in out, out

    cat = catalog(server)
    assert cat.load_namespace_properties("sales")["owner"] == "data-eng"
    assert cat.list_tables("sales") == [("sales", "orders")]
    orders = cat.load_table("sales.orders")
    assert [f.name for f in orders.schema().fields] == ["id", "item", "amount", "note"]
    assert rows_of(orders, "id", "item", "note") == [
        (1, "tea", None), (2, "cake", None), (3, "scone", None), (4, "jam", "gift"),
    ]
    # The second run started the table over: three appends on a fresh table.
    assert len(orders.snapshots()) == 3
    assert orders.location().startswith("s3://demo/sales/orders-")


def test_duckdb(server):
    for _ in range(2):
        out = run_example("duckdb", endpoint(server))
        assert "[(6, 47.75)]" in out, out

    trips = catalog(server).load_table("analytics.trips")
    assert rows_of(trips, "id", "city", "km") == [
        (1, "Lisbon", 12.5), (2, "Porto", 6.0), (3, "Lisbon", 7.25),
        (5, "Porto", 19.0), (6, "Faro", 1.0), (7, "Faro", 2.0),
    ]
    assert [f.name for f in trips.schema().fields] == ["id", "city", "km"]


def test_spark(server):
    from test_spark import _spark_jars

    env = {**endpoint(server), "FLOE_SPARK_JARS": _spark_jars()}
    for _ in range(2):
        out = run_example("spark", env, timeout=600)
        assert "VERSION AS OF 'audit'\n  -> [(4,)]" in out, out

    sales = catalog(server, "spark-files").load_table("shop.sales")
    assert sales.location().startswith("file:"), sales.location()
    assert rows_of(sales, "id", "product", "qty") == [(1, "tea", 2), (2, "cake", 2), (3, "tea", 5)]
    assert sales.metadata.refs["audit"].snapshot_ref_type.value == "branch"
    audit = sales.scan(snapshot_id=sales.metadata.refs["audit"].snapshot_id).to_arrow()
    assert sorted(audit["id"].to_pylist()) == [1, 2, 3, 4]
    # Floe's branch of the warehouse has the row written through the `floe_dev` catalog.
    dev = catalog(server, "spark-files@spark-dev").load_table("shop.sales")
    assert sorted(dev.scan().to_arrow()["id"].to_pylist()) == [1, 2, 3, 5]
    branch = requests.get(f"{warehouse_api(server, 'spark-files')}/branches/spark-dev", timeout=30)
    assert branch.status_code == 200, branch.text


def test_branching(server):
    api = warehouse_api(server)
    for _ in range(2):
        out = run_example("branching", endpoint(server))
        # Before the merge main had rows 1-3 and one table, dev 1-5 and two; after it main has both.
        assert "main: shop.orders ids [1, 2, 3]\n" in out, out
        assert "dev: shop.orders ids [1, 2, 3, 4, 5]\n" in out, out
        assert re.search(r"^\+ table\s+shop\.returns$", out, re.M), out
        assert re.search(r"^merged dev into main( \(fast-forward\))?: commit \S+", out, re.M), out
        assert out.count("main: shop.orders ids [1, 2, 3, 4, 5]") == 1, out

        head = requests.get(f"{api}/commits", params={"ref": "main", "page-size": 1}, timeout=30)
        assert head.status_code == 200, head.text
        (merge,) = head.json()["commits"]
        assert len(merge["parents"]) == 2, merge
        assert merge["message"] == "publish dev", merge
        dev_head = requests.get(f"{api}/branches/dev", timeout=30).json()["commit-id"]
        assert dev_head in merge["parents"], (dev_head, merge)

    main = catalog(server)
    assert sorted(main.list_tables("shop")) == [("shop", "orders"), ("shop", "returns")]
    assert rows_of(main.load_table("shop.orders"), "id", "item") == [
        (1, "main-1"), (2, "main-2"), (3, "main-3"), (4, "dev-4"), (5, "dev-5"),
    ]
    assert rows_of(main.load_table("shop.returns"), "id") == [(90,)]
    assert (
        main.load_table("shop.orders").metadata_location
        == catalog(server, "demo@dev").load_table("shop.orders").metadata_location
    )


def test_s3_gateway(server):
    api = warehouse_api(server)
    revoked = []
    for _ in range(2):
        out = run_example("s3-gateway", endpoint(server))
        assert "presigned GET returned the same bytes" in out, out
        revoked += re.findall(r"^revoked (\S+): the gateway now answers 403$", out, re.M)
    assert len(revoked) == 2 and revoked[0] != revoked[1], revoked

    events = catalog(server).load_table("gateway_demo.events")
    assert rows_of(events, "id", "kind") == [
        (1, "click"), (2, "view"), (3, "buy"), (4, "click"), (5, "buy"),
    ]
    files = [task.file.file_path for task in events.scan().plan_files()]
    assert len(files) == 2, files
    (imported,) = [f for f in files if "/data/imported-" in f]
    assert imported.startswith(events.location() + "/data/"), (imported, events.location())
    # The keys the runs issued are revoked: neither is listed any more.
    keys = requests.get(f"{api}/access-keys", timeout=30)
    assert keys.status_code == 200, keys.text
    listed = [k["access-key-id"] for k in keys.json()["access-keys"]]
    assert not set(revoked) & set(listed), (revoked, listed)


def test_postgres_ha():
    database = "floe_t_" + uuid.uuid4().hex
    _psql(f"CREATE DATABASE {database}")
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    data = tempfile.mkdtemp(prefix="floe-ha-")
    verifier = None
    try:
        env = {
            "FLOE__DATABASE__URL": url,
            "FLOE__SECRETS__ENCRYPTION_KEY": TEST_KEY,
            # Port 0: the proxy takes a free port and prints it; the instances always do.
            "FLOE_HA_LISTEN": "127.0.0.1:0",
            "FLOE_HA_DATA_DIR": data,
        }
        for _ in range(2):
            out = run_example("postgres-ha", env, timeout=600)
            assert "all 40 commits landed: 40 rows, 40 snapshots" in out, out
            assert out.count("serves the same table version") == 2, out
            assert "ha.commits has all 40 rows in 40 snapshots" in out, out
            (counts,) = re.findall(r"^connections per backend: (\{.*\})$", out, re.M)
            counts = json.loads(counts)
            assert len(counts) == 2 and all(n > 0 for n in counts.values()), counts
        # run.sh stops what it started.
        left = subprocess.run(["pgrep", "-f", "--", f"--data-dir {data}"], capture_output=True, text=True)
        assert left.stdout.strip() == "", f"run.sh left floe running: {left.stdout}"

        # Everything is in PostgreSQL: a new instance on the database (with the same data folder
        # for the warehouse's files) serves the table with every commit.
        verifier = Floe("postgres", env={"FLOE__DATABASE__URL": url}, data_dir=data)
        table = catalog(verifier, "lake").load_table("ha.commits")
        assert len(table.snapshots()) == 40
        assert rows_of(table, "worker", "seq") == [(w, s) for w in range(4) for s in range(10)]
        assert table.location().startswith("file:"), table.location()
    finally:
        if verifier is not None:
            verifier.stop()
        _psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        subprocess.run(["rm", "-rf", data], check=False)
