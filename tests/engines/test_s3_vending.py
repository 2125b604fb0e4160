"""Vended credentials and remote signing with real clients: PyIceberg (PyArrow FileIO with vended
keys, fsspec FileIO with Floe's S3V4RestSigner) and DuckDB, on S3 warehouses (moto's S3 and STS,
with moto checking every signature) and on the gateway-served `demo` warehouse (where Floe's own
gateway checks signatures and enforces the scope of each key). Then the sign endpoints as raw
HTTP: what they refuse, and that what they sign works once and only once; names that are
metacharacters of IAM policies; and that no credential ever reaches the server's log."""

import base64
import hashlib
import json
import os
import re
import time
import uuid
from urllib.parse import quote

import boto3
import duckdb
import pyarrow as pa
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from pyiceberg.catalog import load_catalog
from pyiceberg.io import fsspec as pyiceberg_fsspec
from pyiceberg.io.fsspec import FsspecFileIO
from pyiceberg.io.pyarrow import PyArrowFileIO

from conftest import Floe, MOTO_REGION, create_moto_warehouse, duckdb_with_iceberg, moto_client, moto_s3

ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
DELEGATION = "header.X-Iceberg-Access-Delegation"
KEY_PROPERTIES = ("s3.access-key-id", "s3.secret-access-key", "s3.session-token")


# --- helpers


def rows(ids):
    ids = list(ids)
    return pa.Table.from_pydict(
        {"id": ids, "name": [f"row-{i}" for i in ids]}, schema=ARROW_SCHEMA
    )


def expected_rows(ids):
    return [{"id": i, "name": f"row-{i}"} for i in sorted(ids)]


def read_rows(table):
    return table.scan().to_arrow().sort_by("id").to_pylist()


def catalog(floe, warehouse, delegation=None):
    """A PyIceberg REST catalog with no S3 setting of its own: whatever reaches the files comes
    from the catalog's answers. `delegation` sets `X-Iceberg-Access-Delegation` (PyIceberg sends
    `vended-credentials` unless told otherwise)."""
    properties = {"type": "rest", "uri": floe.uri, "warehouse": warehouse}
    if delegation:
        properties[DELEGATION] = delegation
    cat = load_catalog(f"floe-{uuid.uuid4().hex[:6]}", **properties)
    assert not [k for k in cat.properties if k.startswith("s3.")], cat.properties
    return cat


def write_and_read(cat, identifier, ids):
    """Creates the table, appends `ids` and reads them back through a fresh load."""
    namespace = identifier[0] if isinstance(identifier, tuple) else identifier.split(".")[0]
    cat.create_namespace_if_not_exists(namespace)
    table = cat.create_table(identifier, schema=ARROW_SCHEMA)
    table.append(rows(ids))
    again = cat.load_table(identifier)
    assert read_rows(again) == expected_rows(ids)
    return again


def prefix_of(floe, warehouse):
    r = requests.get(f"{floe.uri}/v1/config", params={"warehouse": warehouse}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["overrides"]["prefix"]


def table_url(floe, warehouse, namespace, table):
    return (
        f"{floe.uri}/v1/{quote(prefix_of(floe, warehouse), safe='')}/namespaces/"
        f"{quote(namespace, safe='')}/tables/{quote(table, safe='')}"
    )


def load_table_raw(floe, warehouse, namespace, table, delegation="vended-credentials"):
    r = requests.get(
        table_url(floe, warehouse, namespace, table),
        headers={"X-Iceberg-Access-Delegation": delegation},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def expires_in(properties):
    """Seconds from now until `s3.session-token-expires-at-ms`."""
    return int(properties["s3.session-token-expires-at-ms"]) / 1000 - time.time()


def bucket_and_key(location):
    assert location.startswith("s3://"), location
    bucket, _, key = location[len("s3://") :].partition("/")
    return bucket, key


def assert_iceberg_error(response, status, error_type):
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert error["code"] == status, body
    assert error["type"] == error_type, body
    assert isinstance(error["message"], str) and error["message"], body
    return error


def error_of(excinfo):
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def gateway_client(floe, key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=floe.s3_endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=MOTO_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def signature_of(authorization):
    match = re.search(r"Signature=([0-9a-f]{64})", authorization)
    assert match, authorization
    return match.group(1)


def credential_of(authorization):
    match = re.search(r"Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request", authorization)
    assert match, authorization
    return match.groups()


def duckdb_connect(floe, warehouse):
    """DuckDB with the iceberg extension and `warehouse` attached as `cat`; no secret of its own."""
    con = duckdb_with_iceberg()
    assert con.execute("SELECT count(*) FROM duckdb_secrets()").fetchall() == [(0,)]
    con.execute(
        f"ATTACH '{warehouse}' AS cat (TYPE iceberg, ENDPOINT '{floe.uri}', AUTHORIZATION_TYPE 'none')"
    )
    return con


@pytest.fixture(autouse=True)
def _no_ambient_aws_credentials(monkeypatch, tmp_path):
    """Clients find no AWS key of their own (environment, config files, instance metadata)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def record_signing(monkeypatch):
    """Records every request PyIceberg's S3V4RestSigner has Floe sign, as (method, url, headers
    after signing), in the list returned."""
    original = pyiceberg_fsspec.S3V4RestSigner.__call__
    seen = []

    def recording(self, request, **kwargs):
        original(self, request, **kwargs)
        seen.append((request.method, request.url, {k.lower(): v for k, v in request.headers.items()}))

    monkeypatch.setattr(pyiceberg_fsspec.S3V4RestSigner, "__call__", recording)
    return seen


@pytest.fixture
def signed(monkeypatch):
    return record_signing(monkeypatch)


# --- flows shared by the functional tests and the log test. Each returns the secrets it saw.


def vended_flow_on_moto(floe, moto, namespace="vend", table="t"):
    wh = create_moto_warehouse(floe, moto)
    cat = catalog(floe, wh["name"])
    written = write_and_read(cat, f"{namespace}.{table}", [1, 2, 3])
    io = written.io
    props = io.properties
    assert isinstance(io, PyArrowFileIO), type(io)
    secrets = {
        "warehouse secret": wh["secret-access-key"],
        "vended secret": props["s3.secret-access-key"],
        "session token": props["s3.session-token"],
    }
    return wh, cat, written, secrets


def signed_flow(floe, warehouse, signed, namespace="sign", table="t", ids=(4, 5)):
    cat = catalog(floe, warehouse, delegation="remote-signing")
    before = len(signed)
    written = write_and_read(cat, f"{namespace}.{table}", list(ids))
    requests_signed = signed[before:]
    assert requests_signed, "PyIceberg reached the files without asking Floe to sign anything"
    secrets = {
        f"signature {n}": signature_of(headers["authorization"])
        for n, (_m, _u, headers) in enumerate(requests_signed)
    }
    return cat, written, requests_signed, secrets


# --- the catalog advertises signing


def test_config_lists_the_sign_endpoint(floe):
    r = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=30)
    assert r.status_code == 200, r.text
    endpoints = r.json()["endpoints"]
    assert "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign" in endpoints


# --- S3 warehouses (moto)


def test_pyiceberg_vended_credentials_on_s3(floe, moto):
    wh, cat, table, _ = vended_flow_on_moto(floe, moto)
    props = table.io.properties

    # An STS session key, not the warehouse's own key.
    assert props["s3.access-key-id"].startswith("ASIA"), props["s3.access-key-id"]
    assert props["s3.access-key-id"] != wh["access-key-id"]
    assert props["s3.secret-access-key"] != wh["secret-access-key"]
    assert len(props["s3.session-token"]) > 20
    assert 55 * 60 < expires_in(props) <= 61 * 60, props["s3.session-token-expires-at-ms"]
    assert props["s3.endpoint"] == moto
    assert props["s3.path-style-access"] == "true"
    assert props["client.region"] == MOTO_REGION
    assert "s3.remote-signing-enabled" not in props and "s3.signer" not in props

    # STS knows the key as a session of the warehouse's role (the token is required with it).
    identity = moto_client(
        moto,
        "sts",
        key_id=props["s3.access-key-id"],
        secret=props["s3.secret-access-key"],
        session_token=props["s3.session-token"],
    ).get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/floe/"), identity
    with pytest.raises(ClientError) as e:
        moto_s3(moto, key_id=props["s3.access-key-id"], secret=props["s3.secret-access-key"]).list_objects_v2(
            Bucket=wh["bucket"], Prefix="wh/"
        )
    assert error_of(e)[0] == 403

    # The raw answer carries the same key as a storage credential for the table's location.
    raw = load_table_raw(floe, wh["name"], "vend", "t")
    credentials = raw["storage-credentials"]
    assert [c["prefix"] for c in credentials] == [table.location()]
    assert credentials[0]["config"]["s3.session-token"]
    assert raw["config"]["s3.access-key-id"] == credentials[0]["config"]["s3.access-key-id"]

    # The objects are in moto, under the warehouse's key prefix, in the table's folder.
    bucket, folder = bucket_and_key(table.location())
    assert bucket == wh["bucket"]
    assert folder.startswith("wh/vend/t-")
    keys = [o["Key"] for o in moto_s3(moto).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(k.startswith(folder + "/") for k in keys), keys
    assert any(k.endswith(".metadata.json") for k in keys)
    assert any(k.endswith(".avro") for k in keys)
    data = [bucket_and_key(t.file.file_path) for t in table.scan().plan_files()]
    assert data and all(b == bucket and k in keys and k.endswith(".parquet") for b, k in data)
    assert bucket_and_key(table.metadata_location)[1] in keys


def test_pyiceberg_remote_signing_on_s3(floe, moto, signed):
    wh = create_moto_warehouse(floe, moto)
    cat, table, requests_signed, _ = signed_flow(floe, wh["name"], signed)
    io = table.io
    assert isinstance(io, FsspecFileIO), type(io)
    for key in KEY_PROPERTIES:
        assert key not in io.properties, (key, io.properties)
    prefix = prefix_of(floe, wh["name"])
    assert io.properties["s3.remote-signing-enabled"] == "true"
    assert io.properties["s3.signer"] == "S3V4RestSigner"
    assert io.properties["s3.signer.endpoint"] == f"v1/{prefix}/namespaces/sign/tables/t/sign"
    assert io.properties["s3.endpoint"] == moto

    # Floe signed with a temporary STS key held to the table's folder (the warehouse has STS), not
    # with the warehouse's own key; moto checked each signature and session token.
    methods = {m for m, _u, _h in requests_signed}
    assert {"PUT", "GET"} <= methods, methods
    for method, url, headers in requests_signed:
        key_id, _date, region = credential_of(headers["authorization"])
        assert key_id.startswith("ASIA") and key_id != wh["access-key-id"], key_id
        assert "x-amz-security-token" in headers
        assert region == MOTO_REGION
        assert url.startswith(f"{moto}/{wh['bucket']}/wh/sign/t-"), url
        assert "x-amz-date" in headers and "x-amz-content-sha256" in headers

    bucket, folder = bucket_and_key(table.location())
    keys = [o["Key"] for o in moto_s3(moto).list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(k.startswith(folder + "/") for k in keys), keys
    assert any(k.endswith(".parquet") for k in keys)


def test_vended_credentials_without_sts_fall_back_to_remote_signing(floe, moto, signed):
    wh = create_moto_warehouse(floe, moto, sts=False)
    cat = catalog(floe, wh["name"])  # asks for vended credentials
    table = write_and_read(cat, "nosts.t", [7, 8])
    assert isinstance(table.io, FsspecFileIO), type(table.io)
    for key in KEY_PROPERTIES:
        assert key not in table.io.properties
    assert table.io.properties["s3.remote-signing-enabled"] == "true"
    raw = load_table_raw(floe, wh["name"], "nosts", "t")
    assert raw.get("storage-credentials", []) == []
    assert wh["secret-access-key"] not in json.dumps(raw)
    assert signed and all(
        credential_of(h["authorization"])[0] == wh["access-key-id"] for _m, _u, h in signed
    )


# --- the gateway-served warehouse


def test_pyiceberg_vended_credentials_on_gateway(floe):
    cat = catalog(floe, "demo")
    table = write_and_read(cat, "vend.t", [1, 2])
    other = write_and_read(cat, "vend.u", [3])
    props = table.io.properties
    assert isinstance(table.io, PyArrowFileIO), type(table.io)
    assert props["s3.access-key-id"].startswith("FLS1"), props["s3.access-key-id"]
    assert "s3.session-token" not in props
    assert props["s3.endpoint"] == floe.s3_endpoint
    assert props["s3.path-style-access"] == "true"
    # Vended keys live an hour from the start of their 15-minute minting window.
    assert 44 * 60 < expires_in(props) <= 60 * 60 + 5, props["s3.session-token-expires-at-ms"]
    assert other.io.properties["s3.access-key-id"] != props["s3.access-key-id"]

    s3 = gateway_client(floe, props["s3.access-key-id"], props["s3.secret-access-key"])
    _, own = bucket_and_key(table.metadata_location)
    assert s3.get_object(Bucket="demo", Key=own)["Body"].read()
    _, foreign = bucket_and_key(other.metadata_location)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="demo", Key=foreign)
    assert error_of(e) == (403, "AccessDenied")


def test_pyiceberg_remote_signing_on_gateway(floe, signed):
    """The gateway checks every signature, so a write and a read that work are signed right."""
    cat, table, requests_signed, _ = signed_flow(floe, "demo", signed)
    io = table.io
    assert isinstance(io, FsspecFileIO), type(io)
    for key in KEY_PROPERTIES:
        assert key not in io.properties
    assert io.properties["s3.endpoint"] == floe.s3_endpoint
    methods = {m for m, _u, _h in requests_signed}
    assert {"PUT", "GET"} <= methods, methods
    for _method, url, headers in requests_signed:
        key_id, _date, _region = credential_of(headers["authorization"])
        assert key_id.startswith("FLS1"), key_id  # a key scoped to the table, not an admin key
        assert url.startswith(f"{floe.s3_endpoint}/demo/sign/t-"), url

    # A second client reads what the first wrote, signing its own requests.
    before = len(signed)
    assert read_rows(catalog(floe, "demo", "remote-signing").load_table("sign.t")) == expected_rows([4, 5])
    assert len(signed) > before


# --- DuckDB reads with what the catalog vends


@pytest.mark.parametrize("store", ["moto", "demo"])
def test_duckdb_reads_a_pyiceberg_table_with_vended_credentials(floe, request, store):
    if store == "moto":
        moto = request.getfixturevalue("moto")
        warehouse = create_moto_warehouse(floe, moto)["name"]
        key_prefix = "ASIA"
    else:
        warehouse = "demo"
        key_prefix = "FLS1"
    table = write_and_read(catalog(floe, warehouse), "duck.t", [10, 20, 30])

    con = duckdb_connect(floe, warehouse)
    try:
        assert con.execute("SELECT id, name FROM cat.duck.t ORDER BY id").fetchall() == [
            (10, "row-10"),
            (20, "row-20"),
            (30, "row-30"),
        ]
        assert con.execute("SELECT sum(id) FROM cat.duck.t WHERE name <> 'row-20'").fetchall() == [(40,)]
        secrets = con.execute(
            "SELECT provider, scope, secret_string FROM duckdb_secrets()"
        ).fetchall()
        # The only secrets are those DuckDB made from the catalog's answers, for this table.
        assert secrets, "DuckDB read the table without a secret from the catalog"
        for provider, scope, secret_string in secrets:
            assert provider == "iceberg", secrets
            assert scope == [table.location()], secrets
            assert f"key_id={key_prefix}" in secret_string, secret_string
    finally:
        con.close()


# --- the sign endpoints as raw HTTP


class Signing:
    """A Floe with two tables in `demo` (`sig.a`, `sig.b`) for the sign endpoint tests."""

    def __init__(self, floe):
        self.floe = floe
        self.endpoint = floe.s3_endpoint
        self.root = os.path.join(floe.dir, "data", "warehouses", "demo")
        cat = catalog(floe, "demo")
        self.a = write_and_read(cat, "sig.a", [1, 2])
        self.b = write_and_read(cat, "sig.b", [3])
        self.prefix = prefix_of(floe, "demo")
        self.a_folder = bucket_and_key(self.a.location())[1] + "/"
        self.b_folder = bucket_and_key(self.b.location())[1] + "/"
        self.a_metadata = bucket_and_key(self.a.metadata_location)[1]
        self.b_metadata = bucket_and_key(self.b.metadata_location)[1]
        self.a_data = bucket_and_key(next(iter(self.a.scan().plan_files())).file.file_path)[1]

    def url(self, key, query=""):
        return f"{self.endpoint}/demo/{key}" + (f"?{query}" if query else "")

    def sign(self, method, uri, legacy=False, table="a", body=None, headers=None):
        path = "v1/aws/s3/sign" if legacy else "sign"
        payload = {"region": MOTO_REGION, "uri": uri, "method": method, "headers": headers or {}}
        if body is not None:
            payload["body"] = body
        return requests.post(
            f"{self.floe.uri}/v1/{self.prefix}/namespaces/sig/tables/{table}/{path}",
            json=payload,
            timeout=30,
        )

    def signed_headers(self, response):
        assert response.status_code == 200, response.text
        return {name: ", ".join(values) for name, values in response.json()["headers"].items()}

    def file(self, key):
        with open(os.path.join(self.root, key), "rb") as f:
            return f.read()


@pytest.fixture(scope="module")
def signing():
    floe = Floe("sqlite")
    try:
        yield Signing(floe)
    finally:
        floe.stop()


def delete_body(*keys):
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{objects}</Delete>'


def with_content_md5(headers, body):
    """The headers plus the body's Content-MD5, which S3 wants on DeleteObjects and which need
    not be signed."""
    return {**headers, "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode()}


REFUSED = {
    "another table's object": lambda s: ("GET", s.url(s.b_metadata), None),
    "another table's folder written": lambda s: ("PUT", s.url(s.b_folder + "data/x.parquet"), None),
    "dot-dot": lambda s: ("GET", s.url(s.a_folder + "../" + s.b_metadata.split("/", 1)[1]), None),
    "dot-dot percent-encoded": lambda s: (
        "GET",
        s.url(s.a_folder + "%2E%2E/" + s.b_metadata.split("/", 1)[1]),
        None,
    ),
    "dot-dot lower-case percent-encoded with encoded slashes": lambda s: (
        "GET",
        s.url(s.a_folder + "%2e%2e%2f" + quote(s.b_metadata.split("/", 1)[1], safe="")),
        None,
    ),
    "dot-dot at the namespace level": lambda s: (
        "GET",
        s.url("sig/../" + s.b_metadata),
        None,
    ),
    "the table folder itself": lambda s: ("GET", s.url(s.a_folder), None),
    "PATCH": lambda s: ("PATCH", s.url(s.a_metadata), None),
    "OPTIONS": lambda s: ("OPTIONS", s.url(s.a_metadata), None),
    "DeleteObjects without a body": lambda s: ("POST", f"{s.endpoint}/demo?delete", None),
    "DeleteObjects naming another table's key": lambda s: (
        "POST",
        f"{s.endpoint}/demo?delete",
        delete_body(s.a_data, s.b_metadata),
    ),
    "listing the namespace folder": lambda s: (
        "GET",
        f"{s.endpoint}/demo?list-type=2&prefix=sig%2F",
        None,
    ),
    "listing another table": lambda s: (
        "GET",
        f"{s.endpoint}/demo?list-type=2&prefix={quote(s.b_folder, safe='')}",
        None,
    ),
    "listing without a prefix": lambda s: ("GET", f"{s.endpoint}/demo?list-type=2", None),
    "object ACL": lambda s: ("GET", s.url(s.a_metadata, "acl"), None),
    "object tagging": lambda s: ("PUT", s.url(s.a_metadata, "tagging"), None),
    "bucket-level write": lambda s: ("PUT", f"{s.endpoint}/demo", None),
    "bucket delete": lambda s: ("DELETE", f"{s.endpoint}/demo", None),
    "bucket policy": lambda s: ("GET", f"{s.endpoint}/demo?policy", None),
    "another bucket": lambda s: ("GET", f"{s.endpoint}/other/{s.a_metadata}", None),
    "another host": lambda s: ("GET", s.url(s.a_metadata).replace("127.0.0.1", "localhost"), None),
    "another port": lambda s: (
        "GET",
        re.sub(r":(\d+)/", lambda m: f":{int(m.group(1)) + 1}/", s.url(s.a_metadata), count=1),
        None,
    ),
    "https": lambda s: ("GET", s.url(s.a_metadata).replace("http://", "https://"), None),
    "a relative URI": lambda s: ("GET", f"/demo/{s.a_metadata}", None),
    "an s3:// URI": lambda s: ("GET", f"s3://demo/{s.a_metadata}", None),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["sign", "legacy-s3-sign"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_sign_endpoint_refuses(signing, case, legacy):
    method, uri, body = REFUSED[case](signing)
    r = signing.sign(method, uri, legacy=legacy, body=body)
    assert_iceberg_error(r, 403, "ForbiddenException")
    assert "authorization" not in r.text.lower()


@pytest.mark.parametrize("legacy", [False, True], ids=["sign", "legacy-s3-sign"])
def test_signed_get_works_once_and_only_for_its_object(signing, legacy):
    s = signing
    r = s.sign("GET", s.url(s.a_metadata), legacy=legacy)
    assert r.status_code == 200, r.text
    assert r.headers.get("cache-control") == "no-cache"
    answer = r.json()
    assert answer["uri"] == s.url(s.a_metadata)
    headers = s.signed_headers(r)
    assert {k.lower() for k in headers} == {"authorization", "x-amz-date", "x-amz-content-sha256"}
    key_id, _date, region = credential_of(headers["authorization"])
    assert key_id.startswith("FLS1") and region == MOTO_REGION

    got = requests.get(s.url(s.a_metadata), headers=headers, timeout=30)
    assert got.status_code == 200, got.text
    assert got.content == s.file(s.a_metadata)

    # The same signature on another object, of this table or another one, is refused.
    for key in (s.a_data, s.b_metadata):
        reused = requests.get(s.url(key), headers=headers, timeout=30)
        assert reused.status_code == 403, (key, reused.status_code, reused.text)
        assert "<Code>SignatureDoesNotMatch</Code>" in reused.text or "<Code>AccessDenied</Code>" in reused.text
    # And a HEAD is not a GET.
    head = requests.head(s.url(s.a_metadata), headers=headers, timeout=30)
    assert head.status_code == 403


def test_signed_listing_stays_in_the_table(signing):
    s = signing
    uri = f"{s.endpoint}/demo?list-type=2&prefix={quote(s.a_folder, safe='')}"
    headers = s.signed_headers(s.sign("GET", uri))
    listed = requests.get(uri, headers=headers, timeout=30)
    assert listed.status_code == 200, listed.text
    keys = re.findall(r"<Key>([^<]+)</Key>", listed.text)
    assert s.a_metadata in keys and s.a_data in keys
    assert all(k.startswith(s.a_folder) for k in keys), keys
    # The signature does not open a listing of the namespace.
    wider = f"{s.endpoint}/demo?list-type=2&prefix=sig%2F"
    assert requests.get(wider, headers=headers, timeout=30).status_code == 403


def test_signed_put_writes_only_its_object(signing):
    s = signing
    key = s.a_folder + "data/signed-put.bin"
    body = os.urandom(1000)
    headers = s.signed_headers(s.sign("PUT", s.url(key)))
    put = requests.put(s.url(key), data=body, headers=headers, timeout=30)
    assert put.status_code == 200, put.text
    assert s.file(key) == body
    # Reused for an object of the other table: refused, nothing written.
    stolen = s.b_folder + "data/signed-put.bin"
    again = requests.put(s.url(stolen), data=body, headers=headers, timeout=30)
    assert again.status_code == 403, again.text
    assert not os.path.exists(os.path.join(s.root, stolen))


def test_delete_objects_inside_the_table_is_signed(signing):
    """A DeleteObjects of the table's own keys is signed, and the signed request, sent as is,
    deletes them."""
    s = signing
    keys = [s.a_folder + "data/gone-1.bin", s.a_folder + "data/gone-2.bin"]
    for key in keys:
        put = requests.put(s.url(key), data=b"x", headers=s.signed_headers(s.sign("PUT", s.url(key))), timeout=30)
        assert put.status_code == 200, put.text
        assert os.path.exists(os.path.join(s.root, key))
    body = delete_body(*keys)
    headers = s.signed_headers(s.sign("POST", f"{s.endpoint}/demo?delete", body=body))
    assert "authorization" in {k.lower() for k in headers}
    sent = requests.post(
        f"{s.endpoint}/demo?delete", data=body.encode(), headers=with_content_md5(headers, body.encode()), timeout=30
    )
    assert sent.status_code == 200, sent.text
    for key in keys:
        assert f"<Key>{key}</Key>" in sent.text, sent.text
        assert not os.path.exists(os.path.join(s.root, key))
    assert "<Error>" not in sent.text, sent.text


def test_sign_endpoint_for_a_missing_table_is_404(signing):
    s = signing
    r = s.sign("GET", s.url(s.a_metadata), table="nope")
    assert_iceberg_error(r, 404, "NoSuchTableException")


def test_delete_objects_signature_covers_the_checked_body(signing):
    """Floe checks the keys of a DeleteObjects body before signing; the signature must then hold
    for that body only. Here the signature obtained for deleting one key of table `a` is sent
    with a body naming another key of `a` (the gateway's scoped key keeps it inside `a`; on an S3
    warehouse, signed with the warehouse's own key, see the next test, nothing would)."""
    s = signing
    victim = s.a_folder + "data/victim.bin"
    decoy = s.a_folder + "data/decoy.bin"
    for key in (victim, decoy):
        put = requests.put(s.url(key), data=b"x", headers=s.signed_headers(s.sign("PUT", s.url(key))), timeout=30)
        assert put.status_code == 200, put.text
    headers = s.signed_headers(s.sign("POST", f"{s.endpoint}/demo?delete", body=delete_body(decoy)))
    body = delete_body(victim).encode()
    swapped = requests.post(
        f"{s.endpoint}/demo?delete", data=body, headers=with_content_md5(headers, body), timeout=30
    )
    assert os.path.exists(os.path.join(s.root, victim)), (
        f"the signature for deleting {decoy} deleted {victim}: {swapped.status_code} {swapped.text}"
    )
    # Refused as a whole, as S3 does (the body is not the one signed), not answered key by key,
    # and never a 500.
    assert swapped.status_code == 400, swapped.text
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in swapped.text, swapped.text
    # The same signature with the body it was made for works: the refusal above was the swap.
    body = delete_body(decoy).encode()
    kept = requests.post(
        f"{s.endpoint}/demo?delete", data=body, headers=with_content_md5(headers, body), timeout=30
    )
    assert kept.status_code == 200, kept.text
    assert not os.path.exists(os.path.join(s.root, decoy))
    assert os.path.exists(os.path.join(s.root, victim))


def test_delete_objects_signature_cannot_delete_another_tables_files_on_s3(floe, moto):
    wh = create_moto_warehouse(floe, moto)
    cat = catalog(floe, wh["name"])
    a = write_and_read(cat, "del.a", [1])
    b = write_and_read(cat, "del.b", [2])
    bucket, a_folder = bucket_and_key(a.location())
    _, b_metadata = bucket_and_key(b.metadata_location)
    base = f"{table_url(floe, wh['name'], 'del', 'a')}/sign"
    uri = f"{moto}/{bucket}?delete"
    r = requests.post(
        base,
        json={
            "region": MOTO_REGION,
            "uri": uri,
            "method": "POST",
            "headers": {},
            "body": delete_body(a_folder + "/data/nothing.bin"),
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    headers = {k.lower(): ", ".join(v) for k, v in r.json()["headers"].items()}
    # The signature binds the body Floe checked by its SHA-256, which S3 verifies against the body
    # it receives (XAmzContentSHA256Mismatch). moto does not verify payload hashes, so the binding
    # is asserted here and its enforcement is shown on the gateway (previous test).
    checked = delete_body(a_folder + "/data/nothing.bin").encode()
    assert headers["x-amz-content-sha256"] == hashlib.sha256(checked).hexdigest()
    signed_headers = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-amz-content-sha256" in signed_headers
    # Asking for the same body with a different declared hash is refused.
    r = requests.post(
        base,
        json={
            "region": MOTO_REGION,
            "uri": uri,
            "method": "POST",
            "headers": {"x-amz-content-sha256": ["UNSIGNED-PAYLOAD"]},
            "body": delete_body(a_folder + "/data/nothing.bin"),
        },
        timeout=30,
    )
    assert_iceberg_error(r, 403, "ForbiddenException")
    # b's files were never touched.
    keys = [o["Key"] for o in moto_s3(moto).list_objects_v2(Bucket=bucket)["Contents"]]
    assert b_metadata in keys


def test_sign_endpoint_on_s3_refuses_other_tables_and_stores(floe, moto):
    wh = create_moto_warehouse(floe, moto)
    cat = catalog(floe, wh["name"], delegation="remote-signing")
    a = write_and_read(cat, "sig.a", [1])
    b = write_and_read(cat, "sig.b", [2])
    bucket, a_metadata = bucket_and_key(a.metadata_location)
    _, b_metadata = bucket_and_key(b.metadata_location)
    sign_url = f"{table_url(floe, wh['name'], 'sig', 'a')}/sign"

    def sign(method, uri):
        return requests.post(
            sign_url,
            json={"region": MOTO_REGION, "uri": uri, "method": method, "headers": {}},
            timeout=30,
        )

    ok = sign("GET", f"{moto}/{bucket}/{a_metadata}")
    assert ok.status_code == 200, ok.text
    headers = {k: ", ".join(v) for k, v in ok.json()["headers"].items()}
    # The warehouse has STS: Floe signs with a temporary key held to table a's folder.
    key_id = credential_of(headers["authorization"])[0]
    assert key_id.startswith("ASIA") and key_id != wh["access-key-id"], key_id
    got = requests.get(f"{moto}/{bucket}/{a_metadata}", headers=headers, timeout=30)
    assert got.status_code == 200, got.text
    assert json.loads(got.content)["location"] == a.location()
    # moto checks signatures: the same one on another object is refused.
    reused = requests.get(f"{moto}/{bucket}/{b_metadata}", headers=headers, timeout=30)
    assert reused.status_code == 403, reused.text
    assert "SignatureDoesNotMatch" in reused.text

    for method, uri in [
        ("GET", f"{moto}/{bucket}/{b_metadata}"),
        ("GET", f"{moto}/{bucket}/wh/sig/../{a_metadata}"),
        ("GET", f"{moto}/other-bucket/{a_metadata}"),
        ("GET", f"{floe.s3_endpoint}/{bucket}/{a_metadata}"),
        ("GET", f"{moto}/{bucket}?list-type=2&prefix=wh%2F"),
        ("DELETE", f"{moto}/{bucket}"),
    ]:
        assert_iceberg_error(sign(method, uri), 403, "ForbiddenException")


# --- names that are IAM policy metacharacters


META_NAME = 't*?$%"'


def test_policy_metacharacters_in_names_stay_literal(floe):
    """A table named with IAM's wildcard and variable characters and a quote, next to a plain
    table `t`: its vended key opens its own folder and nothing else. Also a table whose folder
    itself holds those characters (an explicit location `meta/t*?$%"'`), whose folder as a
    wildcard pattern would match `t`'s folder."""
    cat = catalog(floe, "demo")
    plain = write_and_read(cat, "meta.t", [1])
    named = write_and_read(cat, ("meta", META_NAME), [2])
    assert named.name() == ("meta", META_NAME)
    assert ("meta", META_NAME) in cat.list_tables("meta")
    odd_location = "s3://demo/meta/t*?$%\"'"
    # (Floe writes its metadata; PyArrow cannot write data there: it reads the '?' of an s3://
    # location as the start of a query string.)
    cat.create_table(("meta", "located"), schema=ARROW_SCHEMA, location=odd_location)
    located = cat.load_table(("meta", "located"))
    assert located.location() == odd_location

    _, plain_metadata = bucket_and_key(plain.metadata_location)
    plain_folder = bucket_and_key(plain.location())[1] + "/"
    for table in (named, located):
        props = table.io.properties
        s3 = gateway_client(floe, props["s3.access-key-id"], props["s3.secret-access-key"])
        folder = bucket_and_key(table.location())[1] + "/"
        _, own_metadata = bucket_and_key(table.metadata_location)
        body = s3.get_object(Bucket="demo", Key=own_metadata)["Body"].read()
        assert json.loads(body)["location"] == table.location()
        own = [o["Key"] for o in s3.list_objects_v2(Bucket="demo", Prefix=folder)["Contents"]]
        assert own_metadata in own and all(k.startswith(folder) for k in own)

        for key in (plain_metadata, plain_folder + "metadata/x"):
            with pytest.raises(ClientError) as e:
                s3.get_object(Bucket="demo", Key=key)
            assert error_of(e) == (403, "AccessDenied"), key
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket="demo", Key=plain_folder + "data/planted.parquet", Body=b"x")
        assert error_of(e) == (403, "AccessDenied")
        for prefix in ("meta/", "meta/t", plain_folder, ""):
            with pytest.raises(ClientError) as e:
                s3.list_objects_v2(Bucket="demo", Prefix=prefix)
            assert error_of(e) == (403, "AccessDenied"), prefix
    assert read_rows(cat.load_table("meta.t")) == expected_rows([1])


# --- credentials never reach the log


@pytest.fixture(scope="module")
def logged_flows(moto, tmp_path_factory):
    """A Floe logging at debug level into a file, driven through vended credentials and remote
    signing on moto (with and without STS) and on the gateway, DuckDB with vended credentials,
    and the legacy sign endpoint. Returns the log and what must not be in it:
    {"keys": {what: secret}, "signatures": {what: signature}}."""
    log_path = tmp_path_factory.mktemp("floe-log") / "floe.log"
    keys, signatures = {}, {}
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", str(log_path.parent / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(log_path.parent / "no-aws-credentials"))
        signed = record_signing(mp)

        floe = Floe("sqlite", log_path=str(log_path), env={"FLOE__LOG__LEVEL": "debug"})
        try:
            wh, _cat, _table, found = vended_flow_on_moto(floe, moto)
            keys["moto warehouse secret"] = found["warehouse secret"]
            keys["STS vended secret"] = found["vended secret"]
            keys["STS session token"] = found["session token"]
            raw = load_table_raw(floe, wh["name"], "vend", "t")
            keys["STS session token (raw load)"] = raw["config"]["s3.session-token"]
            keys["STS vended secret (raw load)"] = raw["config"]["s3.secret-access-key"]
            _, _, _, found = signed_flow(floe, wh["name"], signed)
            signatures.update({f"moto {k}": v for k, v in found.items()})

            plain = create_moto_warehouse(floe, moto, sts=False)
            keys["no-STS warehouse secret"] = plain["secret-access-key"]
            _, _, _, found = signed_flow(floe, plain["name"], signed)
            signatures.update({f"moto without STS {k}": v for k, v in found.items()})

            demo = write_and_read(catalog(floe, "demo"), "vend.t", [1])
            keys["gateway vended secret"] = demo.io.properties["s3.secret-access-key"]
            _, _, _, found = signed_flow(floe, "demo", signed)
            signatures.update({f"gateway {k}": v for k, v in found.items()})

            con = duckdb_connect(floe, wh["name"])
            try:
                assert con.execute("SELECT count(*) FROM cat.vend.t").fetchall() == [(3,)]
            finally:
                con.close()

            uri = f"{floe.s3_endpoint}/demo/{bucket_and_key(demo.metadata_location)[1]}"
            body = {"region": MOTO_REGION, "uri": uri, "method": "GET", "headers": {}}
            # Refused: vend.t's file asked for under sign.t.
            r = requests.post(f"{table_url(floe, 'demo', 'sign', 't')}/v1/aws/s3/sign", json=body, timeout=30)
            assert_iceberg_error(r, 403, "ForbiddenException")
            r = requests.post(f"{table_url(floe, 'demo', 'vend', 't')}/v1/aws/s3/sign", json=body, timeout=30)
            assert r.status_code == 200, r.text
            headers = {k: ", ".join(v) for k, v in r.json()["headers"].items()}
            signatures["legacy endpoint signature"] = signature_of(headers["authorization"])
            assert requests.get(uri, headers=headers, timeout=30).status_code == 200
        finally:
            floe.stop()
    log = log_path.read_text(errors="replace")
    # The log is real: debug lines of the requests above made it there.
    assert "DEBUG" in log
    assert "/sign" in log and "AssumeRole" in log
    assert len(keys) == 7 and len(signatures) >= 10
    for what, secret in {**keys, **signatures}.items():
        assert secret and len(secret) >= 20, (what, secret)
    return log, keys, signatures


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def leaks(log, secrets):
    """Each secret found in the log, with (the start of) the line it is on."""
    found = []
    for what, secret in secrets.items():
        at = log.find(secret)
        if at >= 0:
            line = log[log.rfind("\n", 0, at) + 1 : log.find("\n", at)]
            found.append(f"{what}: {ANSI.sub('', line)[:400]}")
    return found


def test_no_key_or_session_token_reaches_the_log(logged_flows):
    log, keys, _ = logged_flows
    assert leaks(log, keys) == []
    assert not re.search(r"(?i)x-amz-security-token\W+[A-Za-z0-9/+=]{20,}", log)


def test_no_signature_reaches_the_log(logged_flows):
    log, _, signatures = logged_flows
    assert leaks(log, signatures) == []
    assert not re.search(r"Signature=[0-9a-f]{64}", log)
