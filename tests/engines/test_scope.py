"""The scope promises, tried as an attacker would with only what the catalog hands out: each test
reproduces an attack an outside review made (issue 15) and fails if the hole reopens. They run on
both backends, through the real S3 gateway with boto3, through the sign endpoints, and with
PyIceberg reading what must stay intact.

1. A folder stays claimed while anything still references it (a table that moved, a dropped
   table a tag reads, a dropped table not purged); purges never delete another table's files.
2. Nothing overwrites what a ref or a table already committed: keys that may not delete may not
   replace, and metadata files are never replaced by any catalog-issued access.
3. Listings name nothing outside the key's folder (keys, common prefixes, markers, tokens).
4. Warehouse storage reaches neither Floe's own files nor another warehouse.
5. Every location a commit carries (manifest lists, statistics) lies in the table's folders.
6. Client mistakes are 4xx (register of a folder).
7. Property limits hold on commits; a view's UUID cannot change.
"""

import base64
import json
import os
import time
import uuid
from urllib.parse import quote

import boto3
import pyarrow as pa
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from pyiceberg.catalog import load_catalog

from conftest import create_moto_warehouse

REGION = "us-east-1"
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("label", pa.string())])
SCHEMA_JSON = {
    "type": "struct",
    "schema-id": 0,
    "fields": [
        {"id": 1, "name": "id", "required": False, "type": "long"},
        {"id": 2, "name": "label", "required": False, "type": "string"},
    ],
}


def rows(ids, label="row"):
    ids = list(ids)
    return pa.Table.from_pydict(
        {"id": ids, "label": [f"{label}-{i}" for i in ids]}, schema=ARROW_SCHEMA
    )


def content(table):
    data = table.scan().to_arrow().to_pydict()
    return sorted(zip(data["id"], data["label"]))


def catalog(floe, ref=None):
    warehouse = "demo" if ref is None else f"demo@{ref}"
    return load_catalog(
        f"scope-{uuid.uuid4().hex[:6]}", type="rest", uri=floe.uri, warehouse=warehouse
    )


def error_of(excinfo):
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def assert_error(response, status, error_type=None):
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == status, error
    if error_type is not None:
        assert error["type"] == error_type, error
    return error["message"]


def key_of(location):
    assert location.startswith("s3://demo/"), location
    return location[len("s3://demo/") :]


class Demo:
    """The REST and management APIs of `demo`, and gateway clients for its tables."""

    def __init__(self, floe):
        self.floe = floe
        listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()
        (self.id,) = [w["id"] for w in listed["warehouses"] if w["name"] == "demo"]
        self.root = os.path.join(floe.dir, "data", "warehouses", "demo")

    def url(self, path, ref=None):
        prefix = self.id if ref is None else f"{self.id}@{ref}"
        return f"{self.floe.uri}/v1/{quote(prefix, safe='')}/{path}"

    def table_url(self, namespace, table, ref=None):
        return self.url(f"namespaces/{quote(namespace, safe='')}/tables/{quote(table, safe='')}", ref)

    def load(self, namespace, table, ref=None):
        r = requests.get(
            self.table_url(namespace, table, ref),
            headers={"X-Iceberg-Access-Delegation": "vended-credentials"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def commit(self, namespace, table, updates, requirements=(), ref=None):
        return requests.post(
            self.table_url(namespace, table, ref),
            json={"requirements": list(requirements), "updates": updates},
            timeout=30,
        )

    def create(self, namespace, name, location=None, **extra):
        body = {"name": name, "schema": SCHEMA_JSON, **extra}
        if location is not None:
            body["location"] = location
        return requests.post(
            self.url(f"namespaces/{quote(namespace, safe='')}/tables"), json=body, timeout=30
        )

    def register(self, namespace, name, metadata_location, overwrite=False):
        return requests.post(
            self.url(f"namespaces/{quote(namespace, safe='')}/register"),
            json={"name": name, "metadata-location": metadata_location, "overwrite": overwrite},
            timeout=30,
        )

    def drop(self, namespace, table, purge=False):
        r = requests.delete(
            self.table_url(namespace, table),
            params={"purgeRequested": str(purge).lower()},
            timeout=30,
        )
        assert r.status_code == 204, r.text

    def tag(self, name):
        r = requests.post(
            f"{self.floe.base}/management/v1/warehouses/{self.id}/tags",
            json={"name": name},
            timeout=30,
        )
        assert r.status_code == 201, r.text

    def branch(self, name):
        r = requests.post(
            f"{self.floe.base}/management/v1/warehouses/{self.id}/branches",
            json={"name": name},
            timeout=30,
        )
        assert r.status_code == 201, r.text

    def admin_client(self):
        r = requests.post(
            f"{self.floe.base}/management/v1/warehouses/{self.id}/access-keys", json={}, timeout=30
        )
        assert r.status_code == 201, r.text
        key = r.json()
        return client(self.floe, key["access-key-id"], key["secret-access-key"])

    def table_client(self, namespace, table, ref=None):
        """A boto3 client with the key the catalog vends for the table."""
        config = self.load(namespace, table, ref)["config"]
        return client(self.floe, config["s3.access-key-id"], config["s3.secret-access-key"])

    def sign(self, namespace, table, method, key, headers=None, query=""):
        uri = f"{self.floe.s3_endpoint}/demo/{quote(key)}" + (f"?{query}" if query else "")
        return requests.post(
            self.table_url(namespace, table) + "/sign",
            json={"region": REGION, "uri": uri, "method": method, "headers": headers or {}},
            timeout=30,
        )

    def file(self, key):
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()


def client(floe, key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=floe.s3_endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def wait_until(check, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


# ---------------------------------------------------------------------------------------------
# 1. A folder stays claimed while anything still references it


def test_a_moved_tables_old_folder_stays_its_own_until_purged(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("mv")
    x = main.create_table("mv.x", schema=ARROW_SCHEMA, location="s3://demo/mv/x1")
    x.append(rows([1, 2]))
    r = demo.commit("mv", "x", [{"action": "set-location", "location": "s3://demo/mv/x2"}])
    assert r.status_code == 200, r.text
    listed = demo.load("mv", "x")
    assert listed["metadata"]["location"] == "s3://demo/mv/x2"
    # x's current snapshot still lives in x1.
    assert listed["metadata"]["snapshots"][0]["manifest-list"].startswith("s3://demo/mv/x1/")

    # Every way into x1 (or inside it, or around it) is refused: create, stage-create, a move.
    for location in ["s3://demo/mv/x1", "s3://demo/mv/x1/inner", "s3://demo/mv"]:
        assert_error(demo.create("mv", "y", location), 400, "BadRequestException")
        assert_error(
            demo.create("mv", "y", location, **{"stage-create": True}), 400, "BadRequestException"
        )
    main.create_table("mv.z", schema=ARROW_SCHEMA)
    r = demo.commit("mv", "z", [{"action": "set-location", "location": "s3://demo/mv/x1"}])
    assert_error(r, 400, "BadRequestException")
    # A staged create whose commit names x1 (the second half of a stage-create) as well.
    r = demo.commit(
        "mv",
        "w",
        [
            {"action": "assign-uuid", "uuid": str(uuid.uuid4())},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": SCHEMA_JSON},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "set-location", "location": "s3://demo/mv/x1"},
        ],
        requirements=[{"type": "assert-create"}],
    )
    assert_error(r, 400, "BadRequestException")
    assert not catalog(floe).table_exists("mv.y") and not catalog(floe).table_exists("mv.w")

    # x itself reads its rows, with the one key it is vended (which opens both its folders).
    assert content(catalog(floe).load_table("mv.x")) == [(1, "row-1"), (2, "row-2")]
    creds = demo.load("mv", "x")["storage-credentials"]
    assert sorted(c["prefix"] for c in creds) == ["s3://demo/mv/x1", "s3://demo/mv/x2"]
    s3 = demo.table_client("mv", "x")
    manifest_list = key_of(listed["metadata"]["snapshots"][0]["manifest-list"])
    assert s3.get_object(Bucket="demo", Key=manifest_list)["Body"].read()
    # ...and the sign endpoint signs reads in x1 for x, while z's key still cannot reach x1.
    assert demo.sign("mv", "x", "GET", manifest_list).status_code == 200
    assert demo.sign("mv", "z", "GET", manifest_list).status_code == 403
    with pytest.raises(ClientError) as e:
        demo.table_client("mv", "z").get_object(Bucket="demo", Key=manifest_list)
    assert error_of(e)[0] == 403

    # Purging x deletes both of its folders. They stay taken while keys vended for them may
    # still be valid (an hour and a quarter), so no later table's files fall under such a key.
    x1 = os.path.join(demo.root, "mv", "x1")
    assert os.path.isdir(x1)
    demo.drop("mv", "x", purge=True)
    assert wait_until(
        lambda: not os.path.exists(x1) and not os.path.exists(os.path.join(demo.root, "mv", "x2"))
    )
    for location in ["s3://demo/mv/x1", "s3://demo/mv/x2/inner"]:
        assert_error(demo.create("mv", "y", location), 400, "BadRequestException")

    # A table moves at most so often: every folder it keeps is in every key vended for it.
    t = main.create_table("mv.t", schema=ARROW_SCHEMA, location="s3://demo/mv/t0")
    del t
    for i in range(1, 4):
        r = demo.commit("mv", "t", [{"action": "set-location", "location": f"s3://demo/mv/t{i}"}])
        assert r.status_code == 200, r.text
    r = demo.commit("mv", "t", [{"action": "set-location", "location": "s3://demo/mv/t4"}])
    assert_error(r, 400, "BadRequestException")
    r = demo.commit("mv", "t", [{"action": "set-location", "location": "s3://demo/mv/t0"}])
    assert r.status_code == 200, r.text


def test_a_dropped_tables_folder_stays_claimed_while_a_tag_reads_it(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("tg")
    t = main.create_table("tg.t", schema=ARROW_SCHEMA, location="s3://demo/tg/t")
    t.append(rows([7, 8], "kept"))
    p = main.create_table("tg.p", schema=ARROW_SCHEMA, location="s3://demo/tg/p")
    p.append(rows([5], "purged"))
    demo.tag("v1")
    files = {
        key_of(next(iter(table.scan().plan_files())).file.file_path): None for table in (t, p)
    }
    for key in files:
        files[key] = demo.file(key)

    # t is dropped, p dropped with a purge; the tag still reads both, so nothing is deleted. A
    # purge asked for after them, of a table nothing else reads, shows that purges have run.
    demo.drop("tg", "t", purge=False)
    demo.drop("tg", "p", purge=True)
    witness = main.create_table("tg.witness", schema=ARROW_SCHEMA, location="s3://demo/tg/w")
    witness.append(rows([9]))
    assert os.path.isdir(os.path.join(demo.root, "tg", "w"))
    demo.drop("tg", "witness", purge=True)
    assert wait_until(lambda: not os.path.exists(os.path.join(demo.root, "tg", "w")))
    for key, body in files.items():
        assert demo.file(key) == body, key

    # The folders the tag reads are nobody else's.
    for location in ["s3://demo/tg/t", "s3://demo/tg/t/data", "s3://demo/tg/p", "s3://demo/tg"]:
        assert_error(demo.create("tg", "u", location), 400, "BadRequestException")

    # The tag reads the tables as they were.
    assert content(catalog(floe, "v1").load_table("tg.t")) == [(7, "kept-7"), (8, "kept-8")]
    assert content(catalog(floe, "v1").load_table("tg.p")) == [(5, "purged-5")]
    assert demo.load("tg", "t", ref="v1")["metadata"]["location"] == "s3://demo/tg/t"


def test_a_new_table_cannot_borrow_another_tables_uuid(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("id")
    victim = main.create_table("id.victim", schema=ARROW_SCHEMA, location="s3://demo/id/v1")
    victim.append(rows([1]))
    victim_uuid = str(victim.metadata.table_uuid)
    old_version = demo.load("id", "victim")["metadata-location"]
    assert demo.commit(
        "id", "victim", [{"action": "set-location", "location": "s3://demo/id/v2"}]
    ).status_code == 200
    # The victim's own older version, in the folder it moved away from, registered as a second
    # table beside it (whose purge would then delete the victim's files): refused.
    assert old_version.startswith("s3://demo/id/v1/")
    assert_error(demo.register("id", "twin", old_version), 409, "AlreadyExistsException")
    assert not main.table_exists("id.twin")
    # A create that assigns the victim's UUID (then could follow it into its folders): refused.
    r = demo.commit(
        "id",
        "thief",
        [
            {"action": "assign-uuid", "uuid": victim_uuid},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": SCHEMA_JSON},
            {"action": "set-current-schema", "schema-id": -1},
        ],
        requirements=[{"type": "assert-create"}],
    )
    assert_error(r, 409, "AlreadyExistsException")

    # A metadata file the attacker writes in its own fresh folder, naming the victim's UUID and
    # its own folder: registering it is refused (the warehouse never recorded that file).
    thief = main.create_table("id.own", schema=ARROW_SCHEMA)
    own = demo.load("id", "own")
    forged = dict(own["metadata"])
    forged["table-uuid"] = victim_uuid
    forged_key = key_of(own["metadata"]["location"]) + "/metadata/99999-forged.metadata.json"
    demo.table_client("id", "own").put_object(
        Bucket="demo", Key=forged_key, Body=json.dumps(forged).encode()
    )
    r = demo.register("id", "thief", f"s3://demo/{forged_key}")
    assert r.status_code in (400, 409), r.text
    assert not main.table_exists("id.thief")
    del thief

    # Bringing a dropped table back from a version the warehouse recorded works.
    metadata_location = demo.load("id", "victim")["metadata-location"]
    demo.drop("id", "victim", purge=False)
    r = demo.register("id", "victim", metadata_location)
    assert r.status_code == 200, r.text
    assert content(catalog(floe).load_table("id.victim")) == [(1, "row-1")]
    # A metadata file outside the folder it names is refused.
    r = demo.register("id", "copy", f"s3://demo/{forged_key}")
    assert r.status_code in (400, 403, 409), r.text


def test_a_view_cannot_borrow_a_tables_uuid_or_free_its_folder(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("bv")
    gone = main.create_table("bv.gone", schema=ARROW_SCHEMA, location="s3://demo/bv/gone")
    gone.append(rows([1]))
    gone_uuid = str(gone.metadata.table_uuid)
    demo.drop("bv", "gone", purge=False)
    own = main.create_table("bv.own", schema=ARROW_SCHEMA)
    folder = key_of(own.location())
    view = {
        "view-uuid": gone_uuid,
        "format-version": 1,
        "location": own.location(),
        "current-version-id": 1,
        "versions": [
            {
                "version-id": 1,
                "timestamp-ms": int(time.time() * 1000),
                "schema-id": 0,
                "summary": {"engine-name": "test"},
                "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}],
                "default-namespace": ["bv"],
            }
        ],
        "version-log": [],
        "schemas": [SCHEMA_JSON],
        "properties": {},
    }
    key = folder + "/metadata/00000-view.metadata.json"
    demo.table_client("bv", "own").put_object(Bucket="demo", Key=key, Body=json.dumps(view).encode())
    r = requests.post(
        demo.url("namespaces/bv/register-view"),
        json={"name": "v", "metadata-location": f"s3://demo/{key}"},
        timeout=30,
    )
    assert r.status_code in (400, 403, 404, 409), r.text
    # The dropped table's folder is still its own.
    assert_error(demo.create("bv", "taker", "s3://demo/bv/gone"), 400, "BadRequestException")


def test_signing_refuses_a_put_that_names_half_a_part(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("hp")
    t = main.create_table("hp.t", schema=ARROW_SCHEMA)
    t.append(rows([1]))
    demo.tag("frozen")
    data_key = key_of(next(iter(t.scan().plan_files())).file.file_path)
    metadata_key = key_of(demo.load("hp", "t")["metadata-location"])
    for key in [data_key, metadata_key]:
        for query in ["partNumber=1", "uploadId=abc", "partNumber=1&uploadId=", "partNumber=&uploadId=x"]:
            assert_error(demo.sign("hp", "t", "PUT", key, query=query), 403, "ForbiddenException")
        assert_error(demo.sign("hp", "t", "DELETE", key, query="uploadId="), 403, "ForbiddenException")


def test_a_tables_key_never_deletes_a_metadata_file(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("dm")
    t = main.create_table("dm.t", schema=ARROW_SCHEMA)
    t.append(rows([1]))
    metadata_key = key_of(demo.load("dm", "t")["metadata-location"])
    before = demo.file(metadata_key)
    s3 = demo.table_client("dm", "t")  # no other refs: this key may delete data files
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="demo", Key=metadata_key)
    assert error_of(e) == (403, "AccessDenied")
    answer = s3.delete_objects(Bucket="demo", Delete={"Objects": [{"Key": metadata_key}]})
    assert [err["Code"] for err in answer.get("Errors", [])] == ["AccessDenied"], answer
    assert_error(demo.sign("dm", "t", "DELETE", metadata_key), 403, "ForbiddenException")
    assert demo.file(metadata_key) == before
    assert content(catalog(floe).load_table("dm.t")) == [(1, "row-1")]


# ---------------------------------------------------------------------------------------------
# 2. Nothing overwrites what a ref or a table already committed


def test_keys_that_may_not_delete_may_not_replace_a_tags_files(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("ow")
    t = main.create_table("ow.t", schema=ARROW_SCHEMA, properties={"owner": "alice"})
    t.append(rows([1, 2], "tagged"))
    demo.tag("v1")
    tagged = demo.load("ow", "t", ref="v1")
    data_key = key_of(next(iter(t.scan().plan_files())).file.file_path)
    metadata_key = key_of(tagged["metadata-location"])
    data_before, metadata_before = demo.file(data_key), demo.file(metadata_key)

    s3 = demo.table_client("ow", "t")  # main's key: may write, may not delete
    for key, body in [(data_key, b"tampered"), (metadata_key, b'{"tampered": true}')]:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="demo", Key=key, Body=body)
        assert error_of(e) == (403, "AccessDenied"), key
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="demo", Key=key, Body=body, IfMatch='"x"')
        assert error_of(e)[0] == 403
        scratch = key_of(t.location()) + f"/data/scratch-{uuid.uuid4().hex}"
        s3.put_object(Bucket="demo", Key=scratch, Body=body)
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket="demo", Key=key, CopySource={"Bucket": "demo", "Key": scratch})
        assert error_of(e) == (403, "AccessDenied"), key
        upload = s3.create_multipart_upload(Bucket="demo", Key=key)["UploadId"]
        part = s3.upload_part(Bucket="demo", Key=key, UploadId=upload, PartNumber=1, Body=body)
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(
                Bucket="demo",
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
        assert error_of(e) == (403, "AccessDenied"), key
    assert demo.file(data_key) == data_before and demo.file(metadata_key) == metadata_before

    # New files are written as before; a retried write of the same bytes succeeds.
    fresh = key_of(t.location()) + f"/data/new-{uuid.uuid4().hex}.parquet"
    s3.put_object(Bucket="demo", Key=fresh, Body=b"new bytes")
    s3.put_object(Bucket="demo", Key=fresh, Body=b"new bytes")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="demo", Key=fresh, Body=b"other bytes")
    assert error_of(e) == (403, "AccessDenied")
    # Writes through the catalog go on: main appends, and the tag still reads what it named.
    catalog(floe).load_table("ow.t").append(rows([3], "later"))
    assert content(catalog(floe, "v1").load_table("ow.t")) == [(1, "tagged-1"), (2, "tagged-2")]
    assert catalog(floe, "v1").load_table("ow.t").properties["owner"] == "alice"


def test_metadata_files_are_never_replaced_even_where_deletes_are_allowed(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("md")
    t = main.create_table("md.t", schema=ARROW_SCHEMA)
    t.append(rows([5]))
    metadata_key = key_of(demo.load("md", "t")["metadata-location"])
    data_key = key_of(next(iter(t.scan().plan_files())).file.file_path)
    before = demo.file(metadata_key)
    for s3 in [demo.table_client("md", "t"), demo.admin_client()]:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="demo", Key=metadata_key, Body=b"{}")
        assert error_of(e) == (403, "AccessDenied")
    assert demo.file(metadata_key) == before
    # Without other refs a writer may still replace (and delete) data files of its own table.
    demo.table_client("md", "t").put_object(Bucket="demo", Key=data_key + ".copy", Body=b"a")
    demo.table_client("md", "t").put_object(Bucket="demo", Key=data_key + ".copy", Body=b"b")
    assert demo.file(data_key + ".copy") == b"b"


def test_signing_binds_create_only_to_writes_that_may_not_replace(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("sg")
    t = main.create_table("sg.t", schema=ARROW_SCHEMA)
    t.append(rows([1]))
    demo.tag("before")
    data_key = key_of(next(iter(t.scan().plan_files())).file.file_path)
    before = demo.file(data_key)
    url = f"{floe.s3_endpoint}/demo/{quote(data_key)}"

    r = demo.sign("sg", "t", "PUT", data_key)
    assert r.status_code == 200, r.text
    headers = {k: ", ".join(v) for k, v in r.json()["headers"].items()}
    assert headers.get("If-None-Match") == "*", headers
    # Sent as signed: the object exists, so the store refuses it.
    put = requests.put(url, data=b"tampered", headers=headers, timeout=30)
    assert put.status_code == 412, put.text
    # Sent without the header the signature covers: the signature does not match.
    stripped = {k: v for k, v in headers.items() if k != "If-None-Match"}
    put = requests.put(url, data=b"tampered", headers=stripped, timeout=30)
    assert put.status_code == 403, put.text
    assert demo.file(data_key) == before
    # A copy onto a key is not signed at all; a new object is created as signed.
    r = demo.sign("sg", "t", "PUT", data_key, headers={"x-amz-copy-source": [f"demo/{data_key}"]})
    assert_error(r, 403, "ForbiddenException")
    fresh = key_of(t.location()) + "/data/signed-new.bin"
    r = demo.sign("sg", "t", "PUT", fresh)
    headers = {k: ", ".join(v) for k, v in r.json()["headers"].items()}
    put = requests.put(f"{floe.s3_endpoint}/demo/{quote(fresh)}", data=b"x", headers=headers, timeout=30)
    assert put.status_code == 200, put.text


def test_signing_on_s3_never_replaces_a_tags_files(floe, moto):
    """The same guarantee on a real S3 implementation (moto, which honours If-None-Match on
    PUT), with the warehouse's own key signing (no STS)."""
    wh = create_moto_warehouse(floe, moto, sts=False)
    cat = load_catalog(
        f"scope-{uuid.uuid4().hex[:6]}",
        type="rest",
        uri=floe.uri,
        warehouse=wh["name"],
        **{"header.X-Iceberg-Access-Delegation": "remote-signing"},
    )
    cat.create_namespace("s3")
    t = cat.create_table("s3.t", schema=ARROW_SCHEMA)
    t.append(rows([1, 2], "kept"))
    listed = requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"]
    (wh_id,) = [w["id"] for w in listed if w["name"] == wh["name"]]
    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{wh_id}/tags", json={"name": "v1"}, timeout=30
    )
    assert r.status_code == 201, r.text
    bucket = wh["bucket"]
    data_key = next(iter(t.scan().plan_files())).file.file_path.split(f"s3://{bucket}/", 1)[1]
    metadata_key = t.metadata_location.split(f"s3://{bucket}/", 1)[1]
    admin = boto3.client(
        "s3",
        endpoint_url=moto,
        aws_access_key_id=wh["access-key-id"],
        aws_secret_access_key=wh["secret-access-key"],
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}),
    )
    before = {k: admin.get_object(Bucket=bucket, Key=k)["Body"].read() for k in (data_key, metadata_key)}
    sign_url = f"{floe.uri}/v1/{wh_id}/namespaces/s3/tables/t/sign"
    for key in (data_key, metadata_key):
        url = f"{moto}/{bucket}/{quote(key)}"
        r = requests.post(
            sign_url, json={"region": REGION, "uri": url, "method": "PUT", "headers": {}}, timeout=30
        )
        assert r.status_code == 200, r.text
        headers = {k: ", ".join(v) for k, v in r.json()["headers"].items()}
        assert headers.get("If-None-Match") == "*", headers
        put = requests.put(url, data=b"tampered", headers=headers, timeout=30)
        assert put.status_code == 412, (key, put.status_code, put.text)
        stripped = {k: v for k, v in headers.items() if k != "If-None-Match"}
        put = requests.put(url, data=b"tampered", headers=stripped, timeout=30)
        assert put.status_code == 403, (key, put.status_code, put.text)
    for key, body in before.items():
        assert admin.get_object(Bucket=bucket, Key=key)["Body"].read() == body


# ---------------------------------------------------------------------------------------------
# 3. Listings name nothing outside the key's folder


def test_listings_name_nothing_outside_the_keys_folder(floe):
    demo = Demo(floe)
    admin = demo.admin_client()
    main = catalog(floe)
    main.create_namespace("ls")
    main.create_table("ls.t", schema=ARROW_SCHEMA, location="s3://demo/ls/t")
    for key in ["ls/t/a", "ls/t/b/c", "ls/t2/x", "ls/t.x/y", "ls/t-z", "ls/u/secret"]:
        admin.put_object(Bucket="demo", Key=key, Body=b"x")
    s3 = demo.table_client("ls", "t")

    listed = s3.list_objects_v2(Bucket="demo", Prefix="ls/t", Delimiter="/")
    assert [p["Prefix"] for p in listed.get("CommonPrefixes", [])] == ["ls/t/"]
    assert listed.get("Contents", []) == []
    names = []
    for start in [None, "ls/a", "ls/t/a"]:
        kwargs = {"StartAfter": start} if start else {}
        token = None
        while True:
            if token:
                kwargs["ContinuationToken"] = token
            page = s3.list_objects_v2(Bucket="demo", Prefix="ls/t", MaxKeys=1, **kwargs)
            names += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if token:
                # Floe's tokens carry the key a page ended on.
                names.append(base64.b64decode(token).decode())
            if not page["IsTruncated"]:
                break
    marker = None
    while True:
        kwargs = {"Marker": marker} if marker else {"Marker": "ls/a"}
        page = s3.list_objects(Bucket="demo", Prefix="ls/t", MaxKeys=1, **kwargs)
        names += [o["Key"] for o in page.get("Contents", [])]
        names += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        marker = page.get("NextMarker")
        if marker:
            names.append(marker)
        if not page["IsTruncated"]:
            break
    decoded = [n for n in names if n.startswith("ls/")]
    assert decoded, names
    assert all(n.startswith("ls/t/") for n in decoded), decoded
    for other in ["t2", "t.x", "t-z", "u/"]:
        assert not any(other in n for n in names), (other, names)


# ---------------------------------------------------------------------------------------------
# 4. Warehouse storage reaches neither Floe's own files nor another warehouse


def create_local(floe, name, root, gateway=True):
    return requests.post(
        f"{floe.base}/management/v1/warehouses",
        json={"name": name, "storage-profile": {"type": "local", "root": root, "s3-gateway": gateway}},
        timeout=30,
    )


def test_local_warehouses_cannot_reach_floes_files_or_another_warehouse(floe):
    data = os.path.join(floe.dir, "data")
    warehouses = os.path.join(data, "warehouses")
    demo_root = os.path.join(warehouses, "demo")
    os.symlink(data, os.path.join(warehouses, "sneaky"))
    for name, root in [
        ("at-data", data),
        ("above-data", floe.dir),
        ("in-data", os.path.join(data, "elsewhere")),
        ("all-warehouses", warehouses),
        ("through-link", os.path.join(warehouses, "sneaky")),
        ("through-link-in", os.path.join(warehouses, "sneaky", "inner")),
        ("outside", "/tmp"),
        ("root", "/"),
    ]:
        assert_error(create_local(floe, name, root), 403, "ForbiddenException")
    for name, root in [
        ("same-as-demo", demo_root),
        ("in-demo", os.path.join(demo_root, "inner")),
    ]:
        assert_error(create_local(floe, name, root), 409)
    names = [w["name"] for w in requests.get(f"{floe.base}/management/v1/warehouses", timeout=10).json()["warehouses"]]
    assert names == ["demo"], names
    # Nothing was created where the refused roots pointed.
    assert not os.path.exists(os.path.join(data, "elsewhere"))
    # A root of its own works, and its keys reach nothing of demo's or Floe's.
    r = create_local(floe, "mine", os.path.join(warehouses, "mine"))
    assert r.status_code == 201, r.text
    assert_error(create_local(floe, "mine-too", os.path.join(warehouses, "mine", "x")), 409)


def test_s3_warehouses_cannot_share_or_nest_a_prefix(floe, moto):
    first = create_moto_warehouse(floe, moto)
    bucket = first["bucket"]
    credential = {
        "type": "s3-access-key",
        "access-key-id": first["access-key-id"],
        "secret-access-key": first["secret-access-key"],
    }

    def create(name, prefix):
        profile = {
            "type": "s3",
            "bucket": bucket,
            "region": REGION,
            "endpoint": moto,
            "path-style-access": True,
        }
        if prefix is not None:
            profile["key-prefix"] = prefix
        return requests.post(
            f"{floe.base}/management/v1/warehouses",
            json={"name": name, "storage-profile": profile, "storage-credential": credential},
            timeout=60,
        )

    for name, prefix in [("same", "wh"), ("same-slash", "/wh/"), ("inner", "wh/inner"), ("whole", None)]:
        assert_error(create(name, prefix), 409)
    r = create("sibling", "wh2")
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------------------------------------
# 5. Every location a commit carries lies in the table's folders


def test_commits_cannot_point_at_another_tables_files(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("ml")
    victim = main.create_table("ml.victim", schema=ARROW_SCHEMA)
    victim.append(rows([1, 2], "secret"))
    victim_list = demo.load("ml", "victim")["metadata"]["snapshots"][0]["manifest-list"]
    main.create_table("ml.thief", schema=ARROW_SCHEMA)
    demo.branch("dev")

    snapshot = {
        "snapshot-id": 4242,
        "sequence-number": 1,
        "timestamp-ms": int(time.time() * 1000),
        "manifest-list": victim_list,
        "summary": {"operation": "append"},
        "schema-id": 0,
    }
    for ref in [None, "dev"]:
        r = demo.commit(
            "ml",
            "thief",
            [
                {"action": "add-snapshot", "snapshot": snapshot},
                {"action": "set-snapshot-ref", "ref-name": "main", "type": "branch", "snapshot-id": 4242},
            ],
            ref=ref,
        )
        assert_error(r, 403, "ForbiddenException")
        for update in [
            {
                "action": "set-statistics",
                "snapshot-id": 1,
                "statistics": {
                    "snapshot-id": 1,
                    "statistics-path": victim_list,
                    "file-size-in-bytes": 1,
                    "file-footer-size-in-bytes": 1,
                    "blob-metadata": [],
                },
            },
            {
                "action": "set-partition-statistics",
                "partition-statistics": {
                    "snapshot-id": 1,
                    "statistics-path": victim_list,
                    "file-size-in-bytes": 1,
                },
            },
        ]:
            assert_error(demo.commit("ml", "thief", [update], ref=ref), 403, "ForbiddenException")
    # The thief has no snapshot anywhere, and a merge of dev brings none.
    assert catalog(floe, "dev").load_table("ml.thief").metadata.snapshots == []
    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{demo.id}/merge",
        json={"source": "dev", "target": "main"},
        timeout=30,
    )
    assert r.status_code in (200, 409), r.text
    assert catalog(floe).load_table("ml.thief").metadata.snapshots == []

    # A registered table whose snapshots point at another table's manifest list: refused. The
    # attacker stages a create (a fresh folder and a key for it) and writes the file there.
    staged = demo.create("ml", "staged", **{"stage-create": True})
    assert staged.status_code == 200, staged.text
    staged = staged.json()
    forged = dict(staged["metadata"])
    forged["table-uuid"] = str(uuid.uuid4())
    forged["snapshots"] = [snapshot]
    forged["current-snapshot-id"] = 4242
    forged["last-sequence-number"] = 1
    forged["refs"] = {"main": {"snapshot-id": 4242, "type": "branch"}}
    forged["snapshot-log"] = []
    key = key_of(staged["metadata"]["location"]) + "/metadata/00000-forged.metadata.json"
    client(floe, staged["config"]["s3.access-key-id"], staged["config"]["s3.secret-access-key"]).put_object(
        Bucket="demo", Key=key, Body=json.dumps(forged).encode()
    )
    r = demo.register("ml", "forged", f"s3://demo/{key}")
    assert_error(r, 403, "ForbiddenException")
    assert not main.table_exists("ml.forged")


# ---------------------------------------------------------------------------------------------
# 6 and 7. Client mistakes are 4xx; the limits hold on every path


def test_register_of_a_folder_is_a_client_error(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("rg")
    t = main.create_table("rg.t", schema=ARROW_SCHEMA)
    for location in ["s3://demo", "s3://demo/", t.location(), t.location() + "/metadata"]:
        r = demo.register("rg", "r", location)
        assert 400 <= r.status_code < 500, (location, r.status_code, r.text)


def test_commit_properties_hold_the_limits_create_holds(floe):
    demo = Demo(floe)
    main = catalog(floe)
    main.create_namespace("pr")
    main.create_table("pr.t", schema=ARROW_SCHEMA)
    before = demo.load("pr", "t")["metadata-location"]
    for updates in [{"": "empty"}, {"k\u0000ey": "nul"}, {"k": "v\u0000"}, {"big": "x" * (70 * 1024)}]:
        r = demo.commit("pr", "t", [{"action": "set-properties", "updates": updates}])
        assert_error(r, 400, "BadRequestException")
        r = demo.create("pr", f"c{uuid.uuid4().hex[:6]}", properties=updates)
        assert_error(r, 400, "BadRequestException")
    assert demo.load("pr", "t")["metadata-location"] == before


def test_a_views_uuid_cannot_change(floe):
    demo = Demo(floe)
    catalog(floe).create_namespace("vw")
    view = {
        "name": "v",
        "schema": SCHEMA_JSON,
        "view-version": {
            "version-id": 1,
            "timestamp-ms": int(time.time() * 1000),
            "schema-id": 0,
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": "select 1", "dialect": "spark"}],
            "default-namespace": ["vw"],
        },
        "properties": {},
    }
    r = requests.post(demo.url("namespaces/vw/views"), json=view, timeout=30)
    assert r.status_code == 200, r.text
    own = r.json()["metadata"]["view-uuid"]
    url = demo.url("namespaces/vw/views/v")
    r = requests.post(
        url,
        json={"requirements": [], "updates": [{"action": "assign-uuid", "uuid": str(uuid.uuid4())}]},
        timeout=30,
    )
    assert_error(r, 400, "BadRequestException")
    r = requests.post(
        url, json={"requirements": [], "updates": [{"action": "assign-uuid", "uuid": own}]}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert requests.get(url, timeout=30).json()["metadata"]["view-uuid"] == own
    r = requests.post(
        url,
        json={"requirements": [], "updates": [{"action": "set-properties", "updates": {"": "x"}}]},
        timeout=30,
    )
    assert_error(r, 400, "BadRequestException")
