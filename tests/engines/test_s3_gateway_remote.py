"""The S3 gateway in front of an S3 store (moto, which checks every signature): an S3 warehouse
with `"s3-gateway": true` is a bucket of the gateway named after the warehouse; its objects live
in moto under the warehouse's bucket and key prefix, reached with the warehouse's own credential,
which no client ever holds. Engines get the gateway and Floe's keys, as for local warehouses, and
the same checks hold before moto is called. Two instances on one PostgreSQL serve the same bucket
with nothing on their disks."""

import hashlib
import uuid

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Floe, MOTO_REGION, create_moto_warehouse, moto_s3
from test_s3_vending import (
    bucket_and_key,
    catalog,
    duckdb_connect,
    expected_rows,
    read_rows,
    write_and_read,
)

MiB = 1024 * 1024


def client(endpoint, key_id, secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=MOTO_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def error_of(excinfo):
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def admin_key(floe, warehouse_id):
    import requests

    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{warehouse_id}/access-keys", json={}, timeout=30
    )
    assert r.status_code == 201, r.text
    body = r.json()
    return body["access-key-id"], body["secret-access-key"]


class Fronted:
    """A Floe with an S3 warehouse on moto served by its gateway, and an admin key of it."""

    def __init__(self, floe, moto):
        self.floe = floe
        self.moto = moto
        self.wh = create_moto_warehouse(floe, moto, sts=False, gateway=True)
        self.name = self.wh["name"]
        self.key_id, self.secret = admin_key(floe, self.wh["id"])
        self.s3 = client(floe.s3_endpoint, self.key_id, self.secret)
        self.store = moto_s3(moto)

    def stored(self, key):
        """The object as moto holds it (the warehouse's prefix is `wh`)."""
        return self.store.get_object(Bucket=self.wh["bucket"], Key=f"wh/{key}")["Body"].read()


@pytest.fixture
def fronted(floe, moto):
    return Fronted(floe, moto)


def test_objects_round_trip_through_the_gateway_into_the_store(fronted):
    s3, name = fronted.s3, fronted.name
    assert fronted.wh["response"]["storage-profile"]["s3-gateway"] is True
    data = b"hello through the gateway"
    put = s3.put_object(
        Bucket=name, Key="a/b.txt", Body=data, ContentType="text/plain", Metadata={"k": "v"}
    )
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    # In the store, under the warehouse's prefix, as sent.
    assert fronted.stored("a/b.txt") == data
    got = s3.get_object(Bucket=name, Key="a/b.txt")
    assert got["Body"].read() == data
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"k": "v"}
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=name, Key="a/b.txt")
    assert head["ContentLength"] == len(data)
    # Ranges and conditions are the store's.
    part = s3.get_object(Bucket=name, Key="a/b.txt", Range="bytes=6-12")
    assert part["Body"].read() == data[6:13]
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=name, Key="a/b.txt", IfNoneMatch=put["ETag"])
    assert error_of(e)[0] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=name, Key="a/b.txt", IfMatch='"0000"')
    assert error_of(e) == (412, "PreconditionFailed")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=name, Key="missing")
    assert error_of(e) == (404, "NoSuchKey")
    # Presigned URLs are the gateway's (signed with Floe's key), answered from the store.
    import requests

    url = s3.generate_presigned_url("get_object", Params={"Bucket": name, "Key": "a/b.txt"}, ExpiresIn=60)
    assert requests.get(url, timeout=30).content == data
    tampered = url.replace("a/b.txt", "a/c.txt")
    assert requests.get(tampered, timeout=30).status_code == 403
    # An object written into the store is read through the gateway.
    fronted.store.put_object(Bucket=fronted.wh["bucket"], Key="wh/from-store", Body=b"x")
    assert s3.get_object(Bucket=name, Key="from-store")["Body"].read() == b"x"


def test_listings_deletes_and_copies(fronted):
    s3, name = fronted.s3, fronted.name
    keys = [f"l/{i:02d}" for i in range(7)] + ["l/sub/x", "other"]
    for key in keys:
        s3.put_object(Bucket=name, Key=key, Body=key.encode())
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=name, Prefix="l/", MaxKeys=3, **kw)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(k for k in keys if k.startswith("l/"))
    grouped = s3.list_objects_v2(Bucket=name, Prefix="l/", Delimiter="/")
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["l/sub/"]
    assert len(grouped["Contents"]) == 7
    v1 = s3.list_objects(Bucket=name, Prefix="l/", Marker="l/03")
    assert [o["Key"] for o in v1["Contents"]] == ["l/04", "l/05", "l/06", "l/sub/x"]
    everything = [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert "other" in everything and ".floe-probe" not in " ".join(everything)

    s3.copy_object(Bucket=name, Key="copied", CopySource={"Bucket": name, "Key": "other"})
    assert fronted.stored("copied") == b"other"
    s3.delete_object(Bucket=name, Key="copied")
    with pytest.raises(ClientError):
        fronted.stored("copied")
    out = s3.delete_objects(
        Bucket=name, Delete={"Objects": [{"Key": "l/00"}, {"Key": "l/01"}]}
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == ["l/00", "l/01"]
    assert "l/00" not in [o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="l/")["Contents"]]


def test_multipart_uploads_are_the_stores(fronted):
    s3, name = fronted.s3, fronted.name
    parts = [bytes([n]) * (5 * MiB) for n in range(2)] + [b"tail"]
    upload = s3.create_multipart_upload(Bucket=name, Key="mp/object")
    etags = []
    for n, data in enumerate(parts, start=1):
        r = s3.upload_part(
            Bucket=name, Key="mp/object", UploadId=upload["UploadId"], PartNumber=n, Body=data
        )
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    # (ListParts is not asked of moto: its answer's root element is `ListPartsResponse`, which
    # the AWS SDK Floe uses rightly refuses; S3 says `ListPartsResult`. See the Floe-on-Floe test.)
    done = s3.complete_multipart_upload(
        Bucket=name, Key="mp/object", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
    )
    assert done["ETag"].endswith('-3"'), done["ETag"]
    assert fronted.stored("mp/object") == b"".join(parts)
    # An aborted upload leaves nothing.
    aborted = s3.create_multipart_upload(Bucket=name, Key="mp/aborted")
    s3.abort_multipart_upload(Bucket=name, Key="mp/aborted", UploadId=aborted["UploadId"])
    with pytest.raises(ClientError):
        fronted.stored("mp/aborted")
    # boto3's transfer manager (parallel parts) both ways.
    data = bytes(range(256)) * (48 * 1024)
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    import io

    s3.upload_fileobj(io.BytesIO(data), name, "mp/big", Config=config)
    out = io.BytesIO()
    s3.download_fileobj(name, "mp/big", out, Config=config)
    assert out.getvalue() == data


def test_table_keys_stay_in_their_table_and_metadata_is_never_replaced(floe, moto):
    fronted = Fronted(floe, moto)
    cat = catalog(floe, fronted.name)
    table = write_and_read(cat, "gw.t", [1, 2, 3])
    other = write_and_read(cat, "gw.u", [4])
    props = table.io.properties
    assert props["s3.endpoint"] == floe.s3_endpoint
    assert props["s3.access-key-id"].startswith("FLS1"), props["s3.access-key-id"]
    # Nothing of the store reaches the client.
    for value in props.values():
        assert fronted.wh["access-key-id"] not in str(value)
        assert fronted.wh["bucket"] not in str(value)
    bucket, own = bucket_and_key(table.metadata_location)
    assert bucket == fronted.name
    # The catalog wrote the metadata into the store, under the prefix.
    assert fronted.stored(own)
    s3 = client(floe.s3_endpoint, props["s3.access-key-id"], props["s3.secret-access-key"])
    assert s3.get_object(Bucket=fronted.name, Key=own)["Body"].read() == fronted.stored(own)
    _, foreign = bucket_and_key(other.metadata_location)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=fronted.name, Key=foreign)
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=fronted.name, Key=own, Body=b"tampered")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=fronted.name, Key=own)
    assert error_of(e) == (403, "AccessDenied")
    assert fronted.stored(own) != b"tampered"
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=fronted.name, Prefix="")
    assert error_of(e) == (403, "AccessDenied")
    # Traversal and odd keys never reach the store.
    for key in ["../escape", "gw/../../x", "a/%2e%2e/b", ".floe~tmp/x"]:
        with pytest.raises(ClientError) as e:
            fronted.s3.put_object(Bucket=fronted.name, Key=key, Body=b"x")
        assert error_of(e)[0] in (400, 403), (key, error_of(e))
    # DuckDB reads it with what the catalog vends.
    con = duckdb_connect(floe, fronted.name)
    try:
        assert con.execute("SELECT count(*), sum(id) FROM cat.gw.t").fetchall() == [(3, 6)]
    finally:
        con.close()
    assert read_rows(cat.load_table("gw.t")) == expected_rows([1, 2, 3])


def test_two_instances_serve_the_same_bucket(moto):
    """Stateless: what one instance writes the other reads; an upload begun on one completes on
    the other; a revoked key stops working on both."""
    import requests

    first = Floe("postgres")
    try:
        second = Floe(
            "postgres",
            env={"FLOE__DATABASE__URL": first_database_url(first), "FLOE__BOOTSTRAP__AUTO": "false"},
        )
        try:
            fronted = Fronted(first, moto)
            one = fronted.s3
            two = client(second.s3_endpoint, fronted.key_id, fronted.secret)
            one.put_object(Bucket=fronted.name, Key="shared", Body=b"from one")
            assert two.get_object(Bucket=fronted.name, Key="shared")["Body"].read() == b"from one"
            upload = one.create_multipart_upload(Bucket=fronted.name, Key="across")
            part = two.upload_part(
                Bucket=fronted.name,
                Key="across",
                UploadId=upload["UploadId"],
                PartNumber=1,
                Body=b"p" * 10,
            )
            two.complete_multipart_upload(
                Bucket=fronted.name,
                Key="across",
                UploadId=upload["UploadId"],
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            )
            assert one.get_object(Bucket=fronted.name, Key="across")["Body"].read() == b"p" * 10
            r = requests.delete(
                f"{first.base}/management/v1/warehouses/{fronted.wh['id']}/access-keys/{fronted.key_id}",
                timeout=30,
            )
            assert r.status_code == 204, r.text
            # Each instance remembers admin keys for up to 10 s.
            import time

            for s3 in (one, two):
                deadline = time.monotonic() + 15
                while True:
                    try:
                        s3.get_object(Bucket=fronted.name, Key="shared")
                    except ClientError as e:
                        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
                        break
                    assert time.monotonic() < deadline, "a revoked key still works"
                    time.sleep(0.5)
        finally:
            second.stop()
    finally:
        first.stop()


def first_database_url(floe):
    from conftest import ADMIN_URL

    return f"{ADMIN_URL.rsplit('/', 1)[0]}/{floe.database}"


def test_s3_gateway_needs_the_flag_to_serve_an_s3_warehouse(floe, moto):
    plain = create_moto_warehouse(floe, moto, sts=False)
    key_id, secret = admin_key(floe, plain["id"])
    s3 = client(floe.s3_endpoint, key_id, secret)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=plain["name"], Key="x")
    assert error_of(e) == (404, "NoSuchBucket")
    # The flag cannot be turned on later: table locations depend on it.
    import requests

    profile = dict(plain["response"]["storage-profile"], **{"s3-gateway": True})
    r = requests.put(
        f"{floe.base}/management/v1/warehouses/{plain['id']}/storage",
        json={"storage-profile": profile},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert uuid.UUID(plain["id"])


@pytest.fixture
def floe_on_floe():
    """Floe `front` serving an S3 warehouse whose store is another Floe's gateway (`store`, its
    local warehouse `demo`, under the prefix `wh`), with short store timeouts."""
    import requests

    store = Floe("sqlite")
    front = Floe(
        "sqlite",
        env={
            "FLOE__STORAGE__S3__ATTEMPT_TIMEOUT_MS": "1000",
            "FLOE__STORAGE__S3__OPERATION_TIMEOUT_MS": "2000",
            "FLOE__STORAGE__S3__MAX_ATTEMPTS": "1",
        },
    )
    try:
        demo = requests.get(f"{store.base}/management/v1/warehouses", timeout=30).json()
        demo = next(w for w in demo["warehouses"] if w["name"] == "demo")
        key_id, secret = admin_key(store, demo["id"])
        r = requests.post(
            f"{front.base}/management/v1/warehouses",
            json={
                "name": "fronted",
                "storage-profile": {
                    "type": "s3",
                    "bucket": "demo",
                    "key-prefix": "wh",
                    "region": MOTO_REGION,
                    "endpoint": store.s3_endpoint,
                    "path-style-access": True,
                    "s3-gateway": True,
                },
                "storage-credential": {
                    "type": "s3-access-key",
                    "access-key-id": key_id,
                    "secret-access-key": secret,
                },
            },
            timeout=60,
        )
        assert r.status_code == 201, r.text
        front_key = admin_key(front, r.json()["id"])
        yield store, front, client(front.s3_endpoint, *front_key), client(store.s3_endpoint, key_id, secret)
    finally:
        front.stop()
        store.stop()


def test_parts_are_listed_and_a_stalled_store_is_a_timely_slow_down(floe_on_floe):
    import os
    import signal
    import time

    store, _front, s3, direct = floe_on_floe
    upload = s3.create_multipart_upload(Bucket="fronted", Key="p/object")
    etags = []
    for n in (1, 2):
        body = bytes([n]) * (5 * MiB if n == 1 else 10)
        r = s3.upload_part(
            Bucket="fronted", Key="p/object", UploadId=upload["UploadId"], PartNumber=n, Body=body
        )
        etags.append({"PartNumber": n, "ETag": r["ETag"]})
    listed = s3.list_parts(Bucket="fronted", Key="p/object", UploadId=upload["UploadId"])
    assert [(p["PartNumber"], p["ETag"]) for p in listed["Parts"]] == [
        (e["PartNumber"], e["ETag"]) for e in etags
    ]
    s3.complete_multipart_upload(
        Bucket="fronted", Key="p/object", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
    )
    # The store's ETag, as the store gives it.
    assert (
        s3.head_object(Bucket="fronted", Key="p/object")["ETag"]
        == direct.head_object(Bucket="demo", Key="wh/p/object")["ETag"]
    )

    os.kill(store.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket="fronted", Key="p/object")
        assert error_of(e) == (503, "SlowDown")
        assert time.monotonic() - started < 10
    finally:
        os.kill(store.process.pid, signal.SIGCONT)
    assert s3.get_object(Bucket="fronted", Key="p/object")["ContentLength"] == 5 * MiB + 10


def test_once_tagged_a_tables_files_are_not_replaced_in_the_store(floe, moto):
    """A warehouse with a tag: keys on main may write but not delete, so nothing a ref reads is
    replaced in the store (a retried write of the very same bytes is accepted)."""
    import requests

    fronted = Fronted(floe, moto)
    cat = catalog(floe, fronted.name)
    table = write_and_read(cat, "tg.t", [1, 2])
    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{fronted.wh['id']}/tags", json={"name": "v1"}, timeout=30
    )
    assert r.status_code == 201, r.text
    table = cat.load_table("tg.t")
    props = table.io.properties
    s3 = client(floe.s3_endpoint, props["s3.access-key-id"], props["s3.secret-access-key"])
    _, data_key = bucket_and_key(next(iter(table.scan().plan_files())).file.file_path)
    before = fronted.stored(data_key)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=fronted.name, Key=data_key, Body=b"tampered")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket=fronted.name, Key=data_key)
    assert error_of(e) == (403, "AccessDenied")
    assert fronted.stored(data_key) == before
    _, folder = bucket_and_key(table.location())
    fresh = f"{folder}/data/new-{uuid.uuid4().hex}.parquet"
    s3.put_object(Bucket=fronted.name, Key=fresh, Body=b"new bytes")
    again = s3.put_object(Bucket=fronted.name, Key=fresh, Body=b"new bytes")
    assert again["ETag"] == f'"{hashlib.md5(b"new bytes").hexdigest()}"'
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=fronted.name, Key=fresh, Body=b"other bytes")
    assert error_of(e) == (403, "AccessDenied")
    assert fronted.stored(fresh) == b"new bytes"


def test_part_copies_and_upload_listings(floe_on_floe):
    _store, _front, s3, direct = floe_on_floe
    source = bytes(range(256)) * (24 * 1024)  # 6 MiB
    s3.put_object(Bucket="fronted", Key="c/source", Body=source)
    upload = s3.create_multipart_upload(Bucket="fronted", Key="c/target")
    listed = s3.list_multipart_uploads(Bucket="fronted", Prefix="c/")
    assert [(u["Key"], u["UploadId"]) for u in listed["Uploads"]] == [("c/target", upload["UploadId"])]
    first = s3.upload_part_copy(
        Bucket="fronted", Key="c/target", UploadId=upload["UploadId"], PartNumber=1,
        CopySource={"Bucket": "fronted", "Key": "c/source"}, CopySourceRange=f"bytes=0-{5 * MiB - 1}",
    )
    second = s3.upload_part_copy(
        Bucket="fronted", Key="c/target", UploadId=upload["UploadId"], PartNumber=2,
        CopySource={"Bucket": "fronted", "Key": "c/source"}, CopySourceRange=f"bytes={5 * MiB}-{6 * MiB - 1}",
    )
    s3.complete_multipart_upload(
        Bucket="fronted", Key="c/target", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
            {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]},
        ]},
    )
    assert direct.get_object(Bucket="demo", Key="wh/c/target")["Body"].read() == source
    assert s3.list_multipart_uploads(Bucket="fronted", Prefix="c/").get("Uploads", []) == []
    # A copy source outside the bucket is refused before the store is asked.
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket="fronted", Key="c/x", CopySource={"Bucket": "demo", "Key": "wh/c/source"})
    assert error_of(e)[0] in (400, 403)


def test_listings_name_nothing_outside_the_keys_folder(floe, moto):
    """A table key lists its own folder only, in front of S3 too: the store is never asked about
    more, so neither its keys, common prefixes, markers nor continuation tokens name a sibling."""
    import base64

    fronted = Fronted(floe, moto)
    main = catalog(floe, fronted.name)
    main.create_namespace("ls")
    main.create_table(
        "ls.t",
        schema=__import__("test_s3_vending").ARROW_SCHEMA,
        location=f"s3://{fronted.name}/ls/t",
    )
    for key in ["ls/t/a", "ls/t/b/c", "ls/t2/x", "ls/t.x/y", "ls/t-z", "ls/u/secret"]:
        fronted.s3.put_object(Bucket=fronted.name, Key=key, Body=b"x")
    props = main.load_table("ls.t").io.properties
    s3 = client(floe.s3_endpoint, props["s3.access-key-id"], props["s3.secret-access-key"])

    listed = s3.list_objects_v2(Bucket=fronted.name, Prefix="ls/t", Delimiter="/")
    assert [p["Prefix"] for p in listed.get("CommonPrefixes", [])] == ["ls/t/"]
    assert listed.get("Contents", []) == []
    names = []
    for start in [None, "ls/a", "ls/t/a"]:
        kwargs = {"StartAfter": start} if start else {}
        token = None
        while True:
            if token:
                kwargs["ContinuationToken"] = token
            page = s3.list_objects_v2(Bucket=fronted.name, Prefix="ls/t", MaxKeys=1, **kwargs)
            names += [o["Key"] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if token:
                names.append(base64.b64decode(token).decode(errors="replace"))
            if not page["IsTruncated"]:
                break
    marker = None
    while True:
        kwargs = {"Marker": marker} if marker else {"Marker": "ls/a"}
        page = s3.list_objects(Bucket=fronted.name, Prefix="ls/t", MaxKeys=1, **kwargs)
        names += [o["Key"] for o in page.get("Contents", [])]
        names += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        marker = page.get("NextMarker")
        if marker:
            names.append(marker)
        if not page["IsTruncated"]:
            break
    keys = [n for n in names if n.startswith("ls/")]
    assert set(keys) >= {"ls/t/a", "ls/t/b/c"}, names
    assert all(n.startswith("ls/t/") for n in keys), keys
    for other in ["t2", "t.x", "t-z", "u/"]:
        assert not any(other in n for n in names), (other, names)


def test_keys_vended_on_a_tag_are_read_only_in_front_of_s3(floe, moto):
    import requests

    fronted = Fronted(floe, moto)
    table = write_and_read(catalog(floe, fronted.name), "ro.t", [1])
    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{fronted.wh['id']}/tags", json={"name": "v1"}, timeout=30
    )
    assert r.status_code == 201, r.text
    tagged = catalog(floe, f"{fronted.name}@v1").load_table("ro.t")
    props = tagged.io.properties
    s3 = client(floe.s3_endpoint, props["s3.access-key-id"], props["s3.secret-access-key"])
    _, key = bucket_and_key(tagged.metadata_location)
    assert s3.get_object(Bucket=fronted.name, Key=key)["Body"].read() == fronted.stored(key)
    _, folder = bucket_and_key(table.location())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=fronted.name, Key=f"{folder}/data/new.parquet", Body=b"x")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=fronted.name, Key=f"{folder}/data/new.parquet")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError):
        fronted.stored(f"{folder}/data/new.parquet")
