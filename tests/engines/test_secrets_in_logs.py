"""No secret reaches the log, even at `trace`: one server (PostgreSQL, authentication on, JSON
logs at the most verbose level) driven through every surface that handles a credential, then
its whole log searched for each one.

The surfaces: the bearer token of every call; the database encryption key; an S3 warehouse's
own secret key (set at creation and rotated); STS credentials vended for a table; requests Floe
signs for a client (remote signing); the gateway's admin keys (shown once at creation, used to
sign requests, used in presigned URLs) and the table-scoped keys the catalog vends for it."""

import json
import uuid
from urllib.parse import quote

import boto3
import pyarrow as pa
import requests
from botocore.config import Config
from pyiceberg.catalog import load_catalog

from conftest import MOTO_REGION, TEST_KEY, Floe, authn_config, create_moto_warehouse

SCHEMA = pa.schema([pa.field("id", pa.int64())])


def test_no_secret_reaches_the_log_at_trace_level(idp, moto, tmp_path):
    admin_token = idp.user_token("kim", name="Kim")
    log_path = tmp_path / "floe.log"
    floe = Floe(
        "postgres",
        config=authn_config(idp, extra_authn='admins = ["idp~kim"]'),
        token=admin_token,
        log_path=str(log_path),
        env={"FLOE__LOG__LEVEL": "trace", "FLOE__LOG__FORMAT": "json"},
    )
    secrets = {"bearer token": admin_token, "encryption key": TEST_KEY}
    auth = {"authorization": f"Bearer {admin_token}"}
    try:
        # An S3 warehouse with its own key, then a rotated key.
        wh = create_moto_warehouse(floe, moto)
        secrets["warehouse secret"] = wh["secret-access-key"]
        rotated = "rotated/" + uuid.uuid4().hex + uuid.uuid4().hex
        r = requests.put(
            f"{floe.base}/management/v1/warehouses/{wh['id']}/storage-credential",
            json={"storage-credential": {"type": "s3-access-key", "access-key-id": wh["access-key-id"], "secret-access-key": rotated}},
            headers=auth,
            timeout=30,
        )
        # Accepted, or refused because the store does not take it: the secret went through either way.
        assert r.status_code in (200, 400), r.text
        secrets["rotated warehouse secret"] = rotated
        # Put the working key back, so the flows below reach moto.
        r = requests.put(
            f"{floe.base}/management/v1/warehouses/{wh['id']}/storage-credential",
            json={
                "storage-credential": {
                    "type": "s3-access-key",
                    "access-key-id": wh["access-key-id"],
                    "secret-access-key": wh["secret-access-key"],
                }
            },
            headers=auth,
            timeout=30,
        )
        assert r.status_code == 200, r.text

        # Vended STS credentials: a PyIceberg round trip on the S3 warehouse.
        vended = load_catalog(
            f"v-{uuid.uuid4().hex[:6]}", type="rest", uri=floe.uri, warehouse=wh["name"], token=admin_token
        )
        vended.create_namespace("s")
        table = vended.create_table("s.t", schema=SCHEMA)
        table.append(pa.table({"id": [1, 2, 3]}, schema=SCHEMA))
        assert sorted(vended.load_table("s.t").scan().to_arrow()["id"].to_pylist()) == [1, 2, 3]
        io = vended.load_table("s.t").io.properties
        secrets["vended STS secret"] = io["s3.secret-access-key"]
        secrets["vended STS session token"] = io["s3.session-token"]

        # Remote signing: Floe signs a request for the client.
        prefix = requests.get(
            f"{floe.uri}/v1/config", params={"warehouse": wh["name"]}, headers=auth, timeout=30
        ).json()["overrides"]["prefix"]
        location = table.location()
        bucket, _, key = location[len("s3://") :].partition("/")
        signed = requests.post(
            f"{floe.uri}/v1/{quote(prefix, safe='')}/namespaces/s/tables/t/sign",
            json={
                "region": MOTO_REGION,
                "uri": f"{wh['response']['storage-profile']['endpoint']}/{bucket}/{key}/data/x.parquet",
                "method": "GET",
                "headers": {},
            },
            headers=auth,
            timeout=30,
        )
        assert signed.status_code == 200, signed.text
        headers = {k.lower(): v for k, v in signed.json()["headers"].items()}
        authorization = headers["authorization"][0]
        secrets["remote signature"] = authorization.split("Signature=")[1]
        security_token = headers.get("x-amz-security-token")
        if security_token:
            secrets["signing session token"] = security_token[0]

        # The gateway: an admin key, shown once, used to sign requests and presign a URL.
        demo = next(
            w
            for w in requests.get(f"{floe.base}/management/v1/warehouses", headers=auth, timeout=30).json()["warehouses"]
            if w["name"] == "demo"
        )
        created = requests.post(
            f"{floe.base}/management/v1/warehouses/{demo['id']}/access-keys",
            json={"description": "log test"},
            headers=auth,
            timeout=30,
        )
        assert created.status_code == 201, created.text
        admin_key = created.json()
        secrets["gateway admin secret"] = admin_key["secret-access-key"]
        s3 = boto3.client(
            "s3",
            endpoint_url=floe.s3_endpoint,
            aws_access_key_id=admin_key["access-key-id"],
            aws_secret_access_key=admin_key["secret-access-key"],
            region_name=MOTO_REGION,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
        )
        s3.put_object(Bucket="demo", Key="logs/x", Body=b"payload")
        assert s3.get_object(Bucket="demo", Key="logs/x")["Body"].read() == b"payload"
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "demo", "Key": "logs/x"}, ExpiresIn=300)
        assert requests.get(url, timeout=30).content == b"payload"
        secrets["presigned signature"] = url.split("X-Amz-Signature=")[1].split("&")[0]
        # A wrong secret is refused, and its attempt logs nothing of it either.
        wrong = "wrong/" + uuid.uuid4().hex
        bad = boto3.client(
            "s3",
            endpoint_url=floe.s3_endpoint,
            aws_access_key_id=admin_key["access-key-id"],
            aws_secret_access_key=wrong,
            region_name=MOTO_REGION,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
        )
        try:
            bad.get_object(Bucket="demo", Key="logs/x")
            raise AssertionError("a wrong secret was accepted")
        except bad.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        secrets["wrong secret"] = wrong

        # The table-scoped key the catalog vends for a gateway-served table.
        gateway = load_catalog(
            f"g-{uuid.uuid4().hex[:6]}", type="rest", uri=floe.uri, warehouse="demo", token=admin_token
        )
        gateway.create_namespace("g")
        gtable = gateway.create_table("g.t", schema=SCHEMA)
        gtable.append(pa.table({"id": [7]}, schema=SCHEMA))
        assert gateway.load_table("g.t").scan().to_arrow()["id"].to_pylist() == [7]
        secrets["vended gateway secret"] = gateway.load_table("g.t").io.properties["s3.secret-access-key"]
    finally:
        floe.stop()

    text = log_path.read_text(errors="replace")
    levels = {json.loads(line).get("level") for line in text.splitlines() if line.startswith("{")}
    assert "TRACE" in levels, f"the log was not at trace level: {levels}"
    for name, secret in secrets.items():
        assert secret and len(secret) >= 16, name
        assert secret not in text, f"the {name} reached the log"
