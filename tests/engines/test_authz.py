"""Authorization over HTTP, with users of the real OpenID provider (tests/oidc) and the built-in
backend (the default once authentication is on), on SQLite and PostgreSQL.

Alice may create in the `demo` warehouse and owns what she creates there; Bob owns only the
namespace `bob` the admin made for him; Carol may only read (`select`) Alice's namespace. Bob tries
everything an attacker with a valid token would against Alice's objects: each attempt must fail
as if the object did not exist (404, the same answer a missing one gets) or, where he may see it,
with 403, and change nothing. Positive controls (Bob on his own namespace, Carol reading) keep the
refusals from passing vacuously.
"""

import time
import uuid
from urllib.parse import quote

import botocore.config
import pytest
import requests

from conftest import Floe, authn_config, grant, management, warehouse_id

SCHEMA_JSON = {
    "type": "struct",
    "schema-id": 0,
    "fields": [{"id": 1, "name": "id", "type": "long", "required": False}],
}
NS = "\x1f"


class World:
    def __init__(self, backend, idp):
        self.idp = idp
        self.floe = Floe(
            backend,
            config=authn_config(idp, extra_authn='admins = ["idp~minter"]'),
            token=idp.token(),
        )
        self.admin = idp.token()
        self.alice = idp.user_token("alice")
        self.bob = idp.user_token("bob")
        self.carol = idp.user_token("carol")
        self.warehouse = warehouse_id(self.floe, self.admin)
        grant(self.floe, self.admin, "warehouse", self.warehouse, "user:idp~alice", "create")
        self.prefix = self.config(self.alice).json()["overrides"]["prefix"]
        # Alice's world, made by Alice.
        assert self.post("namespaces", self.alice, {"namespace": ["alice"]}).status_code == 200
        assert self.post("namespaces", self.alice, {"namespace": ["alice", "inner"]}).status_code == 200
        self.t1 = self.create_table(self.alice, "alice", "t1")
        self.create_table(self.alice, "alice", "t2")
        self.create_table(self.alice, f"alice{NS}inner", "deep")
        r = self.post("namespaces/alice/views", self.alice, view_body("v1", ["alice"]))
        assert r.status_code == 200, r.text
        # Bob's namespace, made by the admin and given to Bob.
        assert self.post("namespaces", self.admin, {"namespace": ["bob"]}).status_code == 200
        grant(self.floe, self.admin, "namespace", f"{self.warehouse}/bob", "user:idp~bob", "ownership")
        self.create_table(self.bob, "bob", "mine")
        # Carol reads Alice's namespace.
        grant(self.floe, self.admin, "namespace", f"{self.warehouse}/alice", "user:idp~carol", "select")

    def stop(self):
        self.floe.stop()

    def url(self, path):
        return f"{self.floe.uri}/v1/{quote(self.prefix, safe='')}/{path}"

    def config(self, token):
        return requests.get(
            f"{self.floe.uri}/v1/config", params={"warehouse": "demo"}, headers=auth(token), timeout=30
        )

    def get(self, path, token, **kwargs):
        return requests.get(self.url(path), headers=auth(token), timeout=30, **kwargs)

    def post(self, path, token, body):
        return requests.post(self.url(path), json=body, headers=auth(token), timeout=30)

    def delete(self, path, token):
        return requests.delete(self.url(path), headers=auth(token), timeout=30)

    def head(self, path, token):
        return requests.head(self.url(path), headers=auth(token), timeout=30)

    def create_table(self, token, namespace, name):
        r = self.post(
            f"namespaces/{quote(namespace, safe='')}/tables", token, {"name": name, "schema": SCHEMA_JSON}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def table(self, namespace, name, token=None):
        r = self.get(f"namespaces/{quote(namespace, safe='')}/tables/{name}", token or self.admin)
        assert r.status_code == 200, r.text
        return r.json()


def auth(token):
    return {"authorization": f"Bearer {token}"}


def view_body(name, namespace):
    return {
        "name": name,
        "schema": SCHEMA_JSON,
        "view-version": {
            "version-id": 1,
            "timestamp-ms": int(time.time() * 1000),
            "schema-id": 0,
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}],
            "default-namespace": namespace,
        },
        "properties": {},
    }


def assert_error(response, status, kind):
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.method != "HEAD":
        assert response.json()["error"]["type"] == kind, response.text


def hidden_like(world, response, missing):
    """`response` (to something Bob may not see) answers exactly as `missing` (the same request
    for something that does not exist) does, but for the name."""
    assert response.status_code == missing.status_code == 404, (response.text, missing.text)
    if response.request.method != "HEAD":
        got, want = response.json()["error"], missing.json()["error"]
        assert got["type"] == want["type"], (got, want)
        assert got["code"] == want["code"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(request, idp):
    w = World(request.param, idp)
    yield w
    w.stop()


def test_lists_hold_only_what_the_caller_may_see(world):
    # Bob sees his namespace only, and in it his table.
    r = world.get("namespaces", world.bob)
    assert r.status_code == 200, r.text
    assert r.json()["namespaces"] == [["bob"]]
    assert world.get("namespaces/bob/tables", world.bob).json()["identifiers"] == [
        {"namespace": ["bob"], "name": "mine"}
    ]
    # Alice (create on the warehouse, which includes describe) sees everything.
    names = [n for (n, *_) in world.get("namespaces", world.alice).json()["namespaces"]]
    assert names == ["alice", "bob"]
    # Carol sees Alice's namespace and what is in it, not Bob's; pages work on the filtered list.
    assert world.get("namespaces", world.carol).json()["namespaces"] == [["alice"]]
    page = world.get("namespaces/alice/tables", world.carol, params={"pageSize": 1}).json()
    assert [t["name"] for t in page["identifiers"]] == ["t1"]
    rest = world.get(
        "namespaces/alice/tables", world.carol, params={"pageSize": 1, "pageToken": page["next-page-token"]}
    ).json()
    assert [t["name"] for t in rest["identifiers"]] == ["t2"]
    assert world.get("namespaces/alice/views", world.carol).json()["identifiers"] == [
        {"namespace": ["alice"], "name": "v1"}
    ]
    # A table granted alone makes its namespaces visible, and nothing else in them.
    grant(world.floe, world.alice, "table", f"{world.warehouse}/{world.t1['metadata']['table-uuid']}", "user:idp~dora", "select")
    dora = world.idp.user_token("dora")
    assert world.get("namespaces", dora).json()["namespaces"] == [["alice"]]
    assert world.get("namespaces", dora, params={"parent": "alice"}).json()["namespaces"] == []
    assert [t["name"] for t in world.get("namespaces/alice/tables", dora).json()["identifiers"]] == ["t1"]
    assert world.get("namespaces/alice/views", dora).json()["identifiers"] == []
    # The management API's lists too: Bob sees the warehouse he holds something in.
    warehouses = management(world.floe, "GET", "/warehouses", world.bob).json()["warehouses"]
    assert [w["name"] for w in warehouses] == ["demo"]
    nobody = world.idp.user_token("nobody")
    assert management(world.floe, "GET", "/warehouses", nobody).json()["warehouses"] == []
    assert management(world.floe, "GET", "/projects", nobody).json()["projects"] == []


def test_a_caller_with_no_grant_sees_no_warehouse(world):
    nobody = world.idp.user_token("nobody")
    r = world.config(nobody)
    assert_error(r, 404, "NoSuchWarehouseException")
    missing = requests.get(
        f"{world.floe.uri}/v1/config", params={"warehouse": "no-such"}, headers=auth(nobody), timeout=30
    )
    assert r.json()["error"]["type"] == missing.json()["error"]["type"]
    hidden_like(world, world.get("namespaces", nobody), world.get("namespaces", nobody))


def test_bob_cannot_read_alices_objects(world):
    for path in ["namespaces/alice", f"namespaces/alice{NS}inner"]:
        hidden_like(world, world.get(quote_path(path), world.bob), world.get("namespaces/zz", world.bob))
    hidden_like(world, world.head("namespaces/alice", world.bob), world.head("namespaces/zz", world.bob))
    hidden_like(world, world.get("namespaces/alice/tables", world.bob), world.get("namespaces/zz/tables", world.bob))
    hidden_like(world, world.get("namespaces/alice/views", world.bob), world.get("namespaces/zz/views", world.bob))
    hidden_like(
        world,
        world.get("namespaces", world.bob, params={"parent": "alice"}),
        world.get("namespaces", world.bob, params={"parent": "zz"}),
    )
    missing_table = world.get("namespaces/bob/tables/nope", world.bob)
    for path in [
        "namespaces/alice/tables/t1",
        "namespaces/alice/tables/t1/credentials",
        "namespaces/alice/tables/nope",
    ]:
        hidden_like(world, world.get(path, world.bob), missing_table)
    hidden_like(world, world.head("namespaces/alice/tables/t1", world.bob), world.head("namespaces/bob/tables/nope", world.bob))
    # Scan planning on Alice's table: planned, polled, cancelled and fetched alike.
    for method, suffix, body in [
        ("post", "plan", {}),
        ("post", "plan", {"filter": {"type": "eq", "term": "id", "value": 1}}),
        ("get", "plan/0123abcd", None),
        ("delete", "plan/0123abcd", None),
        ("post", "tasks", {"plan-task": "0123abcd-0"}),
    ]:
        call = getattr(world, method)
        args = (world.bob,) if body is None else (world.bob, body)
        hidden_like(
            world,
            call(f"namespaces/alice/tables/t1/{suffix}", *args),
            call(f"namespaces/bob/tables/nope/{suffix}", *args),
        )
    hidden_like(world, world.get("namespaces/alice/views/v1", world.bob), world.get("namespaces/bob/views/nope", world.bob))
    # Remote signing for Alice's table.
    location = world.t1["metadata"]["location"]
    sign = {"region": "us-east-1", "uri": f"{location}/data/x.parquet", "method": "GET", "headers": {}}
    hidden_like(
        world,
        world.post("namespaces/alice/tables/t1/sign", world.bob, sign),
        world.post("namespaces/bob/tables/nope/sign", world.bob, sign),
    )
    # Grants on Alice's objects: neither read nor written.
    for object_type, object_id in [
        ("namespace", f"{world.warehouse}/alice"),
        ("table", f"{world.warehouse}/{world.t1['metadata']['table-uuid']}"),
        ("warehouse", world.warehouse),
    ]:
        path = f"/grants/{object_type}/{quote(object_id, safe='')}"
        r = management(world.floe, "GET", path, world.bob)
        assert r.status_code in (403, 404), r.text
        r = management(
            world.floe, "POST", path, world.bob, json={"grant": [{"subject": "user:idp~bob", "relation": "ownership"}]}
        )
        assert r.status_code in (403, 404), r.text
    assert all(
        g["subject"] != "user:idp~bob"
        for g in management(world.floe, "GET", f"/grants/namespace/{quote(world.warehouse + '/alice', safe='')}", world.admin).json()["grants"]
    )


def quote_path(path):
    return "/".join(quote(p, safe="") for p in path.split("/"))


def test_bob_cannot_change_alices_objects(world):
    before = world.table("alice", "t1")["metadata-location"]
    missing = world.post("namespaces/bob/tables/nope", world.bob, {"requirements": [], "updates": []})
    commit = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"owner": "bob"}}]}
    hidden_like(world, world.post("namespaces/alice/tables/t1", world.bob, commit), missing)
    hidden_like(world, world.delete("namespaces/alice/tables/t1", world.bob), world.delete("namespaces/bob/tables/nope", world.bob))
    r = requests.delete(world.url("namespaces/alice/tables/t1"), params={"purgeRequested": "true"}, headers=auth(world.bob), timeout=30)
    assert r.status_code == 404, r.text
    hidden_like(world, world.delete("namespaces/alice/views/v1", world.bob), world.delete("namespaces/bob/views/nope", world.bob))
    hidden_like(
        world,
        world.post("namespaces/alice/views/v1", world.bob, {"requirements": [], "updates": []}),
        world.post("namespaces/bob/views/nope", world.bob, {"requirements": [], "updates": []}),
    )
    # Rename out of Alice's namespace into Bob's.
    for kind in ["tables", "views"]:
        name = "t1" if kind == "tables" else "v1"
        r = world.post(
            f"{kind}/rename",
            world.bob,
            {"source": {"namespace": ["alice"], "name": name}, "destination": {"namespace": ["bob"], "name": "stolen"}},
        )
        assert r.status_code == 404, r.text
    # Namespaces: drop, properties, and creating inside one.
    hidden_like(world, world.delete("namespaces/alice", world.bob), world.delete("namespaces/zz", world.bob))
    hidden_like(
        world,
        world.post("namespaces/alice/properties", world.bob, {"updates": {"x": "y"}}),
        world.post("namespaces/zz/properties", world.bob, {"updates": {"x": "y"}}),
    )
    hidden_like(
        world,
        world.post("namespaces", world.bob, {"namespace": ["alice", "bobs"]}),
        world.post("namespaces", world.bob, {"namespace": ["zz", "bobs"]}),
    )
    hidden_like(
        world,
        world.post("namespaces/alice/tables", world.bob, {"name": "bobs", "schema": SCHEMA_JSON}),
        world.post("namespaces/zz/tables", world.bob, {"name": "bobs", "schema": SCHEMA_JSON}),
    )
    r = world.post("namespaces", world.bob, {"namespace": ["bobs-top"]})
    assert_error(r, 403, "ForbiddenException")
    # Registering Alice's metadata: over her table, and as a new one in Bob's namespace.
    register = {"name": "t1", "metadata-location": before, "overwrite": True}
    assert world.post("namespaces/alice/register", world.bob, register).status_code == 404
    r = world.post("namespaces/bob/register", world.bob, {"name": "copy", "metadata-location": before})
    assert r.status_code in (400, 403, 409), r.text
    # Metrics for Alice's table.
    assert world.post("namespaces/alice/tables/t1/metrics", world.bob, {"report-type": "scan-report"}).status_code == 404
    # Nothing changed.
    assert world.table("alice", "t1")["metadata-location"] == before
    assert "owner" not in world.table("alice", "t1")["metadata"].get("properties", {})
    assert world.get("namespaces/alice/views/v1", world.admin).status_code == 200
    names = [t["name"] for t in world.get("namespaces/bob/tables", world.admin).json()["identifiers"]]
    assert names == ["mine"]
    assert world.get("namespaces/alice", world.admin).json()["properties"].get("x") is None


def test_a_transaction_with_one_forbidden_table_changes_nothing(world):
    mine = world.table("bob", "mine")["metadata-location"]
    theirs = world.table("alice", "t1")["metadata-location"]
    change = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"tx": "1"}}]}
    body = {
        "table-changes": [
            {"identifier": {"namespace": ["bob"], "name": "mine"}, **change},
            {"identifier": {"namespace": ["alice"], "name": "t1"}, **change},
        ]
    }
    r = world.post("transactions/commit", world.bob, body)
    assert r.status_code == 404, r.text
    assert world.table("bob", "mine")["metadata-location"] == mine
    assert world.table("alice", "t1")["metadata-location"] == theirs
    # Bob's own table alone commits (the refusal above was for Alice's).
    body["table-changes"] = body["table-changes"][:1]
    assert world.post("transactions/commit", world.bob, body).status_code == 204
    assert world.table("bob", "mine")["metadata-location"] != mine


def test_rename_into_a_namespace_without_create_is_refused(world):
    world.create_table(world.bob, "bob", "moving")
    # Bob may see Alice's namespace now, but not create in it.
    grant(world.floe, world.admin, "namespace", f"{world.warehouse}/alice", "user:idp~bob", "describe")
    try:
        r = world.post(
            "tables/rename",
            world.bob,
            {"source": {"namespace": ["bob"], "name": "moving"}, "destination": {"namespace": ["alice"], "name": "moved"}},
        )
        assert_error(r, 403, "ForbiddenException")
        # Seeing is not loading: Alice's table answers 403 now, not 404.
        assert_error(world.get("namespaces/alice/tables/t1", world.bob), 403, "ForbiddenException")
        assert world.table("bob", "moving")
    finally:
        grant(world.floe, world.admin, "namespace", f"{world.warehouse}/alice", "user:idp~bob", "describe", revoke=True)
    # The revoke took effect at once.
    assert world.get("namespaces/alice/tables/t1", world.bob).status_code == 404


def test_bob_cannot_branch_or_merge_the_warehouse(world):
    base = f"/warehouses/{world.warehouse}"
    r = management(world.floe, "POST", f"{base}/branches", world.bob, json={"name": "bobs"})
    assert_error(r, 403, "ForbiddenException")
    r = management(world.floe, "POST", f"{base}/tags", world.bob, json={"name": "bobs"})
    assert_error(r, 403, "ForbiddenException")
    r = management(world.floe, "POST", f"{base}/merge", world.bob, json={"source": "main", "target": "main"})
    assert_error(r, 403, "ForbiddenException")
    r = management(world.floe, "POST", f"{base}/access-keys", world.bob, json={"description": "x"})
    assert_error(r, 403, "ForbiddenException")
    assert management(world.floe, "DELETE", base, world.bob).status_code == 403
    # Who holds nothing in the warehouse does not learn it exists.
    nobody = world.idp.user_token("nobody")
    r = management(world.floe, "POST", f"{base}/branches", nobody, json={"name": "x"})
    assert_error(r, 404, "NoSuchWarehouseException")
    names = [b["name"] for b in management(world.floe, "GET", f"{base}/branches", world.admin).json()["refs"]]
    assert names == ["main"]


def test_grant_managers_hand_on_only_what_they_hold(world):
    ns = quote(f"{world.warehouse}/bob", safe="")
    # Bob owns his namespace: he may let Erin read it, and even own it.
    grant(world.floe, world.bob, "namespace", f"{world.warehouse}/bob", "user:idp~erin", "select")
    erin = world.idp.user_token("erin")
    assert world.get("namespaces/bob/tables/mine", erin).status_code == 200
    # Erin may not pass it on: she does not manage grants.
    r = management(world.floe, "POST", f"/grants/namespace/{ns}", erin, json={"grant": [{"subject": "user:idp~frank", "relation": "select"}]})
    assert_error(r, 403, "ForbiddenException")
    # With manage_grants (not ownership) she may hand on select, not ownership.
    grant(world.floe, world.bob, "namespace", f"{world.warehouse}/bob", "user:idp~erin", "manage_grants")
    grant(world.floe, erin, "namespace", f"{world.warehouse}/bob", "user:idp~frank", "select")
    for relation in ["ownership", "manage_grants", "modify"]:
        r = management(
            world.floe, "POST", f"/grants/namespace/{ns}", erin, json={"grant": [{"subject": "user:idp~erin", "relation": relation}]}
        )
        assert_error(r, 403, "ForbiddenException")
    subjects = {(g["subject"], g["relation"]) for g in management(world.floe, "GET", f"/grants/namespace/{ns}", world.bob).json()["grants"]}
    assert ("user:idp~erin", "modify") not in subjects
    assert ("user:idp~frank", "select") in subjects


def test_roles_nest_and_idp_groups_need_no_sync(world):
    # Admin makes role `readers` (select on Alice's namespace) and `team` inside it.
    def role(name):
        r = management(world.floe, "POST", "/roles", world.admin, json={"name": name})
        assert r.status_code == 201, r.text
        return r.json()["id"]

    readers, team = role(f"readers-{uuid.uuid4().hex[:6]}"), role(f"team-{uuid.uuid4().hex[:6]}")
    grant(world.floe, world.admin, "namespace", f"{world.warehouse}/alice", f"role:{readers}", "select")
    r = management(world.floe, "POST", f"/roles/{readers}/assignees", world.admin, json={"add": [f"role:{team}"]})
    assert r.status_code == 200, r.text
    gus = world.idp.user_token("gus")
    assert world.get("namespaces/alice/tables/t1", gus).status_code == 404
    r = management(world.floe, "POST", f"/roles/{team}/assignees", world.admin, json={"add": ["user:idp~gus"]})
    assert r.status_code == 200, r.text
    assert world.get("namespaces/alice/tables/t1", gus).status_code == 200
    # Select is not modify.
    commit = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"gus": "1"}}]}
    assert_error(world.post("namespaces/alice/tables/t1", gus, commit), 403, "ForbiddenException")
    r = management(world.floe, "POST", f"/roles/{team}/assignees", world.admin, json={"remove": ["user:idp~gus"]})
    assert r.status_code == 200, r.text
    assert world.get("namespaces/alice/tables/t1", gus).status_code == 404


def test_pyiceberg_as_a_read_only_user_reads_but_cannot_write(world):
    import boto3
    import botocore.exceptions
    import pyarrow as pa
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import ForbiddenError

    schema = pa.schema([pa.field("id", pa.int64(), nullable=True)])
    alice = load_catalog("alice", type="rest", uri=world.floe.uri, warehouse="demo", token=world.alice)
    table = alice.create_table("alice.data", schema=schema)
    table.append(pa.table({"id": [1, 2, 3]}, schema=schema))
    carol = load_catalog("carol", type="rest", uri=world.floe.uri, warehouse="demo", token=world.carol)
    read = carol.load_table("alice.data")
    assert sorted(read.scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
    before = read.metadata_location
    # Her vended key reads but does not write the table's files: the write fails at the gateway,
    # before any commit is tried.
    config = read.io.properties
    assert config.get("s3.access-key-id"), config
    with pytest.raises(OSError, match="AccessDenied|ACCESS_DENIED|Forbidden|403"):
        read.append(pa.table({"id": [4]}, schema=schema))
    s3 = boto3.client(
        "s3",
        endpoint_url=config["s3.endpoint"],
        aws_access_key_id=config["s3.access-key-id"],
        aws_secret_access_key=config["s3.secret-access-key"],
        aws_session_token=config.get("s3.session-token"),
        region_name=config.get("s3.region", "us-east-1"),
    )
    bucket, key = read.location().split("://", 1)[1].split("/", 1)
    assert s3.get_object(Bucket=bucket, Key=read.metadata_location.split(f"{bucket}/", 1)[1])["Body"].read()
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.put_object(Bucket=bucket, Key=f"{key}/data/carol.parquet", Body=b"x")
    # And the catalog refuses her commit.
    carol_commit = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"c": "1"}}]}
    assert_error(world.post("namespaces/alice/tables/data", world.carol, carol_commit), 403, "ForbiddenException")
    assert alice.load_table("alice.data").metadata_location == before
    assert sorted(alice.load_table("alice.data").scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
    with pytest.raises(ForbiddenError):
        carol.drop_table("alice.data")
    with pytest.raises(ForbiddenError):
        carol.create_table("alice.mine", schema=schema)


def test_protected_branches_change_only_by_merge(world):
    import os

    admin, alice = world.admin, world.alice
    body = {
        "name": f"guarded{uuid.uuid4().hex[:6]}",
        "storage-profile": {"type": "local", "root": os.path.join(world.floe.dir, "data", "warehouses", "guarded")},
    }
    r = management(world.floe, "POST", "/warehouses", admin, json=body)
    assert r.status_code == 201, r.text
    wid, name = r.json()["id"], body["name"]
    for relation in ["create", "modify", "manage_branches"]:
        grant(world.floe, admin, "warehouse", wid, "user:idp~alice", relation)

    def catalog_url(ref, path):
        r = requests.get(
            f"{world.floe.uri}/v1/config", params={"warehouse": f"{name}@{ref}" if ref else name}, headers=auth(alice), timeout=30
        )
        assert r.status_code == 200, r.text
        return f"{world.floe.uri}/v1/{quote(r.json()['overrides']['prefix'], safe='')}/{path}"

    def commit(ref, value):
        return requests.post(
            catalog_url(ref, "namespaces/ns/tables/t"),
            json={"requirements": [], "updates": [{"action": "set-properties", "updates": {"v": value}}]},
            headers=auth(alice),
            timeout=30,
        )

    assert requests.post(catalog_url(None, "namespaces"), json={"namespace": ["ns"]}, headers=auth(alice), timeout=30).status_code == 200
    r = requests.post(catalog_url(None, "namespaces/ns/tables"), json={"name": "t", "schema": SCHEMA_JSON}, headers=auth(alice), timeout=30)
    assert r.status_code == 200, r.text
    assert commit(None, "before").status_code == 200
    # Only the owner names protected branches.
    protected = f"/warehouses/{wid}/protected-branches"
    assert_error(management(world.floe, "PUT", protected, alice, json={"branches": ["main"]}), 403, "ForbiddenException")
    r = management(world.floe, "PUT", protected, admin, json={"branches": ["main", "main", "release"]})
    assert r.status_code == 200, r.text
    assert management(world.floe, "GET", protected, alice).json()["branches"] == ["main", "release"]
    # main refuses every direct change; a branch takes it and a merge brings it.
    r = commit(None, "direct")
    assert_error(r, 403, "ForbiddenException")
    assert "protected" in r.json()["error"]["message"]
    r = requests.post(catalog_url(None, "namespaces"), json={"namespace": ["other"]}, headers=auth(alice), timeout=30)
    assert_error(r, 403, "ForbiddenException")
    r = management(world.floe, "POST", f"/warehouses/{wid}/branches", alice, json={"name": "dev"})
    assert r.status_code == 201, r.text
    assert commit("dev", "on-dev").status_code == 200
    merge = {"source": "dev", "target": "main"}
    assert_error(management(world.floe, "POST", f"/warehouses/{wid}/merge", alice, json=merge), 403, "ForbiddenException")
    grant(world.floe, admin, "warehouse", wid, "user:idp~alice", "merge_protected")
    r = management(world.floe, "POST", f"/warehouses/{wid}/merge", alice, json=merge)
    assert r.status_code == 200, r.text
    main_table = requests.get(catalog_url(None, "namespaces/ns/tables/t"), headers=auth(alice), timeout=30).json()
    assert main_table["metadata"]["properties"]["v"] == "on-dev"
    # A protected branch is neither reset nor deleted.
    r = management(world.floe, "POST", f"/warehouses/{wid}/branches", alice, json={"name": "release"})
    assert r.status_code == 201, r.text
    r = management(world.floe, "POST", f"/warehouses/{wid}/branches/release/reset", alice, json={"to": "dev"})
    assert_error(r, 403, "ForbiddenException")
    assert_error(management(world.floe, "DELETE", f"/warehouses/{wid}/branches/release", alice), 403, "ForbiddenException")
    assert management(world.floe, "PUT", protected, admin, json={"branches": []}).status_code == 200
    assert commit(None, "after").status_code == 200
    assert management(world.floe, "DELETE", f"/warehouses/{wid}/branches/release", alice).status_code == 204


def test_a_gateway_admin_key_acts_with_its_makers_rights(world):
    import boto3
    import botocore.exceptions

    admin = world.admin
    grant(world.floe, admin, "warehouse", world.warehouse, "user:idp~kim", "ownership")
    kim = world.idp.user_token("kim")
    r = management(world.floe, "POST", f"/warehouses/{world.warehouse}/access-keys", kim, json={"description": "kim's"})
    assert r.status_code == 201, r.text
    key = r.json()
    s3 = boto3.client(
        "s3",
        endpoint_url=world.floe.s3_endpoint,
        aws_access_key_id=key["access-key-id"],
        aws_secret_access_key=key["secret-access-key"],
        region_name="us-east-1",
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    s3.put_object(Bucket="demo", Key="kim/one", Body=b"1")
    # Kim loses ownership but may still read: the key reads and no longer writes.
    grant(world.floe, admin, "warehouse", world.warehouse, "user:idp~kim", "select")
    grant(world.floe, admin, "warehouse", world.warehouse, "user:idp~kim", "ownership", revoke=True)
    time.sleep(5.5)
    assert s3.get_object(Bucket="demo", Key="kim/one")["Body"].read() == b"1"
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.put_object(Bucket="demo", Key="kim/two", Body=b"2")
    # Kim loses everything: the key opens nothing.
    grant(world.floe, admin, "warehouse", world.warehouse, "user:idp~kim", "select", revoke=True)
    time.sleep(5.5)
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        s3.get_object(Bucket="demo", Key="kim/one")


def test_the_caller_asks_what_they_may_do(world):
    t1 = f"{world.warehouse}/{world.t1['metadata']['table-uuid']}"
    ns = f"{world.warehouse}/alice"

    def mine(token, kind, object_id):
        return management(world.floe, "GET", f"/permissions/{kind}/{quote(object_id, safe='')}", token)

    r = mine(world.carol, "table", t1)
    assert r.status_code == 200, r.text
    held = set(r.json()["relations"])
    assert {"select", "describe", "browse", "can_load", "can_read_data"} <= held
    assert not held & {"modify", "can_commit", "can_drop", "ownership"}
    alice = set(mine(world.alice, "table", t1).json()["relations"])
    assert {"ownership", "can_drop", "can_commit"} <= alice
    # Bob may not see it: the same answer as for a table that does not exist.
    hidden = mine(world.bob, "table", t1)
    missing = mine(world.bob, "table", f"{world.warehouse}/{uuid.uuid4()}")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["type"] == missing.json()["error"]["type"]
    # Batch checks: one answer per check, false for what does not exist or is hidden.
    checks = [
        {"object-type": "table", "object-id": t1, "relation": "can_load"},
        {"object-type": "table", "object-id": t1, "relation": "can_commit"},
        {"object-type": "namespace", "object-id": ns, "relation": "can_create"},
        {"object-type": "table", "object-id": f"{world.warehouse}/{uuid.uuid4()}", "relation": "can_load"},
        {"object-type": "warehouse", "object-id": world.warehouse, "relation": "browse"},
    ]
    r = management(world.floe, "POST", "/permissions/check", world.carol, json={"checks": checks})
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] == [True, False, False, False, True]
    r = management(world.floe, "POST", "/permissions/check", world.bob, json={"checks": checks})
    assert r.json()["allowed"] == [False, False, False, False, True]
    r = management(world.floe, "POST", "/permissions/check", world.bob, json={"checks": checks * 30})
    assert_error(r, 400, "BadRequestException")


def test_a_known_uuid_is_not_taken_over_by_registering_its_files(world):
    # Alice's view, registered from its own file into Bob's namespace.
    view = world.get("namespaces/alice/views/v1", world.admin).json()
    r = world.post("namespaces/bob/register-view", world.bob, {"name": "mine-now", "metadata-location": view["metadata-location"]})
    assert_error(r, 403, "ForbiddenException")
    # A table of Alice's, dropped (files kept): its last metadata file registered by Bob.
    world.create_table(world.alice, "alice", "gone")
    gone = world.table("alice", "gone")
    assert world.delete("namespaces/alice/tables/gone", world.alice).status_code == 204
    r = world.post("namespaces/bob/register", world.bob, {"name": "gone", "metadata-location": gone["metadata-location"]})
    assert_error(r, 403, "ForbiddenException")
    assert "gone" not in [t["name"] for t in world.get("namespaces/bob/tables", world.admin).json()["identifiers"]]
    # Alice, its owner, may bring it back.
    r = world.post("namespaces/alice/register", world.alice, {"name": "gone", "metadata-location": gone["metadata-location"]})
    assert r.status_code == 200, r.text


def test_hidden_and_missing_answer_alike_everywhere(world):
    # Writes to a name that holds nothing, a hidden table, or a hidden view (asked as a table).
    commit = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"x": "1"}}]}
    missing = world.post("namespaces/alice/tables/nope", world.bob, commit)
    for name in ["t1", "v1"]:
        hidden_like(world, world.post(f"namespaces/alice/tables/{name}", world.bob, commit), missing)
        assert world.post(f"namespaces/alice/tables/{name}", world.bob, commit).json()["error"]["message"] == (
            missing.json()["error"]["message"].replace("nope", name)
        )
    # In a warehouse the caller may not see, an existing and a missing table answer alike.
    nobody = world.idp.user_token("nobody")
    for path in ["namespaces/alice/tables/t1", "namespaces/alice/tables/nope", "namespaces/alice", "namespaces"]:
        r = world.get(path, nobody)
        assert_error(r, 404, "NoSuchWarehouseException")
    # The grants API names only what it was asked for.
    hidden = management(world.floe, "GET", f"/grants/table/{quote(world.warehouse + '/' + world.t1['metadata']['table-uuid'], safe='')}", world.bob)
    other = str(uuid.uuid4())
    missing = management(world.floe, "GET", f"/grants/table/{quote(world.warehouse + '/' + other, safe='')}", world.bob)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"].replace(other, world.t1["metadata"]["table-uuid"])
    assert "t1" not in hidden.text


def listed_names(world, token):
    """Every table and view the caller's lists show, walking the namespace tree."""
    found, todo = [], [None]
    while todo:
        parent = todo.pop()
        params = {"parent": NS.join(parent)} if parent else {}
        for ns in world.get("namespaces", token, params=params).json()["namespaces"]:
            todo.append(ns)
            path = quote(NS.join(ns), safe="")
            for kind, key in [("tables", "table"), ("views", "view")]:
                for ident in world.get(f"namespaces/{path}/{kind}", token).json()["identifiers"]:
                    found.append((".".join(ns), ident["name"], key))
    return sorted(found)


def search(world, token, name, **params):
    return management(
        world.floe, "GET", f"/warehouses/{world.warehouse}/search", token, params={"name": name, **params}
    )


def test_search_shows_what_the_callers_lists_show_and_nothing_else(world):
    grant(world.floe, world.alice, "table", f"{world.warehouse}/{world.t1['metadata']['table-uuid']}", "user:idp~erin", "select")
    erin = world.idp.user_token("erin")
    for who, token in [("alice", world.alice), ("bob", world.bob), ("carol", world.carol), ("erin", erin)]:
        listed = listed_names(world, token)
        for needle in ["T", "i", "e", "1", "mine"]:
            r = search(world, token, needle)
            assert r.status_code == 200, (who, r.text)
            got = sorted((".".join(t["namespace"]), t["name"], t["type"]) for t in r.json()["tabulars"])
            want = [x for x in listed if needle.lower() in x[1].lower()]
            assert got == want, (who, needle, got, want)
    # Positive controls: the lists differ by caller, so the equality above is not vacuous.
    # (Other tests of this module add tables; these hold whatever they add.)
    assert ("alice", "t1", "table") in listed_names(world, world.carol)
    bobs = listed_names(world, world.bob)
    assert ("bob", "mine", "table") in bobs and not any(ns.startswith("alice") for ns, _, _ in bobs), bobs
    assert [t["name"] for t in search(world, erin, "t").json()["tabulars"]] == ["t1"]
    # Pages over the filtered results.
    carols = [t["name"] for t in search(world, world.carol, "t").json()["tabulars"]]
    assert {"t1", "t2"} <= set(carols), carols
    first = search(world, world.carol, "t", **{"page-size": 1}).json()
    assert [t["name"] for t in first["tabulars"]] == carols[:1]
    rest = search(world, world.carol, "t", **{"page-size": 1, "page-token": first["next-page-token"]}).json()
    assert [t["name"] for t in rest["tabulars"]] == carols[1:2]
    # Without the warehouse, a search answers as for a missing warehouse.
    nobody = world.idp.user_token("nobody")
    hidden = search(world, nobody, "t1")
    missing = management(world.floe, "GET", f"/warehouses/{uuid.uuid4()}/search", nobody, params={"name": "t1"})
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    assert hidden.json()["error"]["type"] == missing.json()["error"]["type"]
    assert "t1" not in hidden.text
    # Bad input is a 400.
    for bad in ["", "   ", "x" * 201, "a\x00b"]:
        assert_error(search(world, world.alice, bad), 400, "BadRequestException")
