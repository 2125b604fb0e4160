"""The built-in S3 gateway, driven by boto3 and by hand-signed requests: buckets, object round trips
with checksums and preconditions, listings and paging, copies, deletes, multipart uploads,
presigned URLs, odd and hostile keys, concurrent writers, access keys and what ends up on disk.

The object store is the same whatever catalog database Floe runs on, so most tests share one
SQLite-backed server (`gw`); the access-key tests, which go through the database, run on both
backends through the `floe` fixture."""

import base64
import concurrent.futures
import datetime
import hashlib
import hmac
import io
import json
import os
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree

import boto3
import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog
from boto3.s3.transfer import TransferConfig
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import Floe

REGION = "us-east-1"
MiB = 1024 * 1024


# --- helpers


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c_b64(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return base64.b64encode((crc ^ 0xFFFFFFFF).to_bytes(4, "big")).decode()


def sha256_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def quoted(etag):
    return f'"{etag}"'


def multipart_etag(parts):
    """S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, then `-<count>`."""
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(joined).hexdigest()}-{len(parts)}"


def warehouse_of(base, name):
    r = requests.get(f"{base}/management/v1/warehouses", timeout=30)
    assert r.status_code == 200, r.text
    for warehouse in r.json()["warehouses"]:
        if warehouse["name"] == name:
            return warehouse
    raise AssertionError(f"no warehouse {name!r} in {r.text}")


def create_key(base, warehouse_id, **body):
    r = requests.post(
        f"{base}/management/v1/warehouses/{warehouse_id}/access-keys", json=body, timeout=30
    )
    assert r.status_code == 201, r.text
    return r.json()


def client_for(endpoint, key_id, secret, **s3_config):
    s3_config.setdefault("addressing_style", "path")
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(
            s3=s3_config,
            signature_version="s3v4",
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=16,
        ),
    )


def error_of(excinfo):
    """(HTTP status, S3 error code) of a boto3 ClientError."""
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def xml_code(response):
    match = re.search(r"<Code>([^<]*)</Code>", response.text)
    return match.group(1) if match else None


class _KeepContentSha256(S3SigV4Auth):
    """S3 SigV4 that signs `X-Amz-Content-SHA256` as the caller set it (streaming payloads) and
    the URL path as written (no normalization)."""

    def _modify_request_before_signing(self, request):
        SigV4Auth._modify_request_before_signing(self, request)
        if "X-Amz-Content-SHA256" not in request.headers:
            request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(
                request.body or b""
            ).hexdigest()


def signed_request(
    endpoint,
    key_id,
    secret,
    method,
    raw_path,
    *,
    query="",
    body=b"",
    headers=None,
    host=None,
    make_body=None,
):
    """Sends a SigV4-signed request whose URL path goes on the wire exactly as `raw_path` is
    written (percent escapes and dot segments included).

    The signature covers the canonical URI the server computes: the percent-decoded path,
    re-encoded the AWS way. `query` must already be encoded (`a=1&b=x%2Fy`). `make_body`, given
    the signed headers, makes the body sent instead of `body` (for signed aws-chunked bodies)."""
    netloc = urlsplit(endpoint).netloc
    host = host or netloc
    canonical_path = quote(unquote(raw_path), safe="/~")
    sign_url = f"http://{host}{canonical_path}" + (f"?{query}" if query else "")
    aws = AWSRequest(method=method, url=sign_url, data=body, headers=dict(headers or {}))
    aws.headers["Host"] = host
    _KeepContentSha256(Credentials(key_id, secret), "s3", REGION).add_auth(aws)
    wire_url = f"{endpoint}{raw_path}" + (f"?{query}" if query else "")
    if make_body is not None:
        body = make_body(aws.headers)
    prepared = requests.Request(
        method, endpoint + "/", headers=dict(aws.headers.items()), data=body
    ).prepare()
    # `requests` normalizes dot segments when it prepares a URL: put the path back as written.
    prepared.url = wire_url
    with requests.Session() as session:
        response = session.send(prepared, timeout=60)
    assert response.request.url == wire_url
    return response


def aws_chunked_trailer_body(data, trailer_name, trailer_value, chunk=64 * 1024):
    out = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i : i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n" + f"{trailer_name}:{trailer_value}\r\n".encode() + b"\r\n"
    return bytes(out)


def signed_chunks(secret, headers, data, chunk_size=64 * 1024, tamper=False):
    """An aws-chunked body whose chunks are signed in a chain from the request's signature
    (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, what the Java SDKs and Hadoop's S3A send over plain
    HTTP). With `tamper`, the first chunk's bytes change after they were signed."""
    authorization = headers["Authorization"]
    previous = re.search(r"Signature=([0-9a-f]{64})", authorization).group(1)
    scope = re.search(r"Credential=[^/]+/([^,]+)", authorization).group(1)
    amz_date = headers["X-Amz-Date"]
    date, region, service, _ = scope.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    empty = hashlib.sha256(b"").hexdigest()
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    out = bytearray()
    for n, chunk in enumerate(chunks):
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                empty,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if tamper and n == 0:
            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
        out += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk + b"\r\n"
        previous = signature
    return bytes(out)


class Gateway:
    """One running Floe with an admin access key for a bucket: `demo` (a local warehouse), or
    `fronted`, an S3 warehouse in front of another Floe's `demo` (`store`; key prefix `wh`)."""

    def __init__(self, floe, bucket="demo", store=None):
        self.floe = floe
        self.store = store
        self.bucket = bucket
        self.endpoint = floe.s3_endpoint
        self.warehouse = warehouse_of(floe.base, bucket)
        self.root = self.warehouse["storage-profile"].get("root")
        issued = create_key(floe.base, self.warehouse["id"], description="gateway tests")
        self.key_id = issued["access-key-id"]
        self.secret = issued["secret-access-key"]
        self.issued = issued
        self.s3 = self.client()

    def client(self, **s3_config):
        s3 = client_for(self.endpoint, self.key_id, self.secret, **s3_config)
        s3.floe_bucket = self.bucket
        return s3

    def signed(self, method, raw_path, **kw):
        return signed_request(self.endpoint, self.key_id, self.secret, method, raw_path, **kw)

    def put(self, key, body, **kw):
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kw)

    def get(self, key, **kw):
        return self.s3.get_object(Bucket=self.bucket, Key=key, **kw)

    def body(self, key, **kw):
        return self.get(key, **kw)["Body"].read()

    def tmp_files(self):
        if self.root is None:
            return []  # in front of S3, the gateway keeps nothing on disk
        tmp = os.path.join(self.root, ".floe~tmp")
        return os.listdir(tmp) if os.path.isdir(tmp) else []

    def local_only(self, why):
        if self.store is not None:
            pytest.skip(f"local warehouses only: {why}")

    def _store_client(self):
        demo = warehouse_of(self.store.base, "demo")
        key = create_key(self.store.base, demo["id"], description="looking at the store")
        return client_for(self.store.s3_endpoint, key["access-key-id"], key["secret-access-key"])

    def holds(self, path):
        """Whether the warehouse's storage holds `path` (an object, or anything under it)."""
        if self.root is not None:
            return os.path.exists(os.path.join(self.root, path))
        s3 = self._store_client()
        listed = s3.list_objects_v2(Bucket="demo", Prefix=f"wh/{path}")
        return listed["KeyCount"] > 0

    def stored(self, key):
        """The bytes the warehouse's storage holds for `key`."""
        if self.root is not None:
            with open(os.path.join(self.root, key), "rb") as f:
                return f.read()
        return self._store_client().get_object(Bucket="demo", Key=f"wh/{key}")["Body"].read()

    def write_behind(self, key, data):
        """Writes `key` into the warehouse's storage without the gateway (as the catalog does)."""
        if self.root is not None:
            os.makedirs(os.path.dirname(os.path.join(self.root, key)), exist_ok=True)
            with open(os.path.join(self.root, key), "wb") as f:
                f.write(data)
        else:
            self._store_client().put_object(Bucket="demo", Key=f"wh/{key}", Body=data)

    def outside_holds(self, name):
        """Whether `name` exists beside the warehouse's storage (outside it)."""
        if self.root is not None:
            return os.path.exists(os.path.join(os.path.dirname(self.root), name))
        s3 = self._store_client()
        return s3.list_objects_v2(Bucket="demo", Prefix=name)["KeyCount"] > 0


def fronted_gateway():
    """A Floe whose S3 warehouse `fronted` (`"s3-gateway": true`) stands in front of another
    Floe's local warehouse `demo`, under the key prefix `wh`."""
    # Three processes share the machine's cores here: neither gateway sheds a request for having
    # waited a moment to be read (the suite is about behaviour; overload has tests of its own).
    patient = {"FLOE__GATEWAY__LIMITS__MAX_QUEUE_MS": "10000"}
    store = Floe("sqlite", env=patient)
    front = Floe("sqlite", env=patient)
    demo = warehouse_of(store.base, "demo")
    key = create_key(store.base, demo["id"], description="the store of fronted")
    r = requests.post(
        f"{front.base}/management/v1/warehouses",
        json={
            "name": "fronted",
            "storage-profile": {"type": "s3", "bucket": "demo", "key-prefix": "wh",
                                "region": REGION, "endpoint": store.s3_endpoint,
                                "path-style-access": True, "s3-gateway": True},
            "storage-credential": {"type": "s3-access-key", "access-key-id": key["access-key-id"],
                                   "secret-access-key": key["secret-access-key"]},
        },
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return Gateway(front, bucket="fronted", store=store)


@pytest.fixture(scope="module", params=["local", "in-front-of-s3"])
def gw(request):
    """The suite runs twice: on a local warehouse, and on an S3 warehouse the gateway fronts."""
    if request.param == "local":
        floe = Floe("sqlite")
        try:
            yield Gateway(floe)
        finally:
            floe.stop()
    else:
        gateway = fronted_gateway()
        try:
            yield gateway
        finally:
            gateway.floe.stop()
            gateway.store.stop()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}/"


# --- 1. buckets


def test_access_key_response_names_the_gateway_and_bucket(gw):
    assert gw.issued["bucket"] == gw.bucket
    assert gw.issued["endpoint"] == gw.endpoint
    assert gw.key_id.startswith("FLA") and len(gw.key_id) == 20
    assert len(gw.secret) == 40
    assert "expires-at" not in gw.issued


def test_list_buckets_head_bucket_and_location(gw):
    buckets = gw.s3.list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == [gw.bucket]

    head = gw.s3.head_bucket(Bucket=gw.bucket)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region") == REGION

    # S3 answers an empty location constraint for us-east-1.
    assert gw.s3.get_bucket_location(Bucket=gw.bucket).get("LocationConstraint") in (None, "")

    # A bucket the key does not open (it does not even exist).
    with pytest.raises(ClientError) as e:
        gw.s3.head_bucket(Bucket="no-such-bucket")
    assert error_of(e)[0] == 403


# --- 2. object round trips and checksums


def test_put_get_head_round_trip_with_metadata(gw):
    key = unique("rt") + "object.bin"
    body = os.urandom(100_000)
    put = gw.put(
        key,
        body,
        ContentType="application/x-floe-test",
        Metadata={"color": "blue", "answer": "42"},
    )
    assert put["ETag"] == quoted(md5_hex(body))

    got = gw.get(key)
    assert got["Body"].read() == body
    assert got["ETag"] == quoted(md5_hex(body))
    assert got["ContentLength"] == len(body)
    assert got["ContentType"] == "application/x-floe-test"
    assert got["Metadata"] == {"color": "blue", "answer": "42"}
    assert got["AcceptRanges"] == "bytes"

    head = gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert head["ETag"] == quoted(md5_hex(body))
    assert head["ContentLength"] == len(body)
    assert head["ContentType"] == "application/x-floe-test"
    assert head["Metadata"] == {"color": "blue", "answer": "42"}
    age = datetime.datetime.now(datetime.timezone.utc) - head["LastModified"]
    assert abs(age.total_seconds()) < 120

    # Overwriting replaces bytes, ETag and metadata.
    gw.put(key, b"short")
    head = gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert head["ContentLength"] == 5 and head["ETag"] == quoted(md5_hex(b"short"))
    assert head["Metadata"] == {}
    assert gw.body(key) == b"short"


def test_empty_object(gw):
    key = unique("empty") + "nothing"
    assert gw.put(key, b"")["ETag"] == quoted(md5_hex(b""))
    got = gw.get(key)
    assert got["ContentLength"] == 0 and got["Body"].read() == b""


def test_missing_object_is_404(gw):
    key = unique("missing") + "nope"
    with pytest.raises(ClientError) as e:
        gw.get(key)
    assert error_of(e) == (404, "NoSuchKey")
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404


def test_content_md5_is_checked(gw):
    prefix = unique("md5")
    body = b"hello content-md5"
    put = gw.put(prefix + "good", body, ContentMD5=md5_b64(body))
    assert put["ETag"] == quoted(md5_hex(body))
    assert gw.body(prefix + "good") == body

    with pytest.raises(ClientError) as e:
        gw.put(prefix + "bad", body, ContentMD5=md5_b64(b"something else"))
    assert error_of(e) == (400, "BadDigest")
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=prefix + "bad")
    assert error_of(e)[0] == 404
    assert gw.tmp_files() == []


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_flexible_checksums_computed_by_boto3_are_accepted(gw, algorithm):
    key = unique("cks") + algorithm
    body = os.urandom(300_000)
    put = gw.put(key, body, ChecksumAlgorithm=algorithm)
    assert put["ETag"] == quoted(md5_hex(body))
    expected = {
        "CRC32": crc32_b64(body),
        "SHA256": sha256_b64(body),
        "SHA1": base64.b64encode(hashlib.sha1(body).digest()).decode(),
    }
    assert put[f"Checksum{algorithm}"] == expected[algorithm]
    assert gw.body(key) == body


def test_crc32c_checksum_header(gw):
    """CRC32C needs botocore's CRT extra to compute, so it is sent by hand."""
    p = unique("cks-crc32c")
    body = os.urandom(50_000)
    ok = gw.signed(
        "PUT", f"/{gw.bucket}/" + p + "good", body=body, headers={"x-amz-checksum-crc32c": crc32c_b64(body)}
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers.get("x-amz-checksum-crc32c") == crc32c_b64(body)
    assert gw.body(p + "good") == body
    bad = gw.signed(
        "PUT", f"/{gw.bucket}/" + p + "bad", body=body, headers={"x-amz-checksum-crc32c": crc32c_b64(b"x")}
    )
    assert bad.status_code == 400, bad.text
    assert xml_code(bad) == "BadDigest"
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=p + "bad")
    assert error_of(e)[0] == 404


def test_default_checksum_of_boto3_is_accepted(gw):
    # botocore's default (`when_supported`) sends a CRC32 with every PutObject.
    key = unique("cks-default") + "x"
    body = b"default flexible checksum"
    put = gw.put(key, body)
    assert put.get("ChecksumCRC32") == crc32_b64(body)
    assert gw.body(key) == body


@pytest.mark.parametrize(
    "header",
    ["ChecksumCRC32", "ChecksumSHA256"],
)
def test_wrong_checksum_header_is_refused(gw, header):
    key = unique("cks-bad") + header
    body = b"the real body"
    wrong = {"ChecksumCRC32": crc32_b64(b"other"), "ChecksumSHA256": sha256_b64(b"other")}
    with pytest.raises(ClientError) as e:
        gw.put(key, body, **{header: wrong[header]})
    status, code = error_of(e)
    assert status == 400 and code == "BadDigest"
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404


def test_checksum_in_aws_chunked_trailer(gw):
    """What SDKs send over TLS: an unsigned aws-chunked body with the checksum as a trailer."""
    prefix = unique("trailer")
    body = os.urandom(200_000)

    def send(key, crc):
        return gw.signed(
            "PUT",
            f"/{gw.bucket}/" + quote(key),
            body=aws_chunked_trailer_body(body, "x-amz-checksum-crc32", crc),
            headers={
                "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                "Content-Encoding": "aws-chunked",
                "X-Amz-Decoded-Content-Length": str(len(body)),
                "X-Amz-Trailer": "x-amz-checksum-crc32",
            },
        )

    ok = send(prefix + "good", crc32_b64(body))
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == quoted(md5_hex(body))
    assert gw.body(prefix + "good") == body

    bad = send(prefix + "bad", crc32_b64(b"not the body"))
    assert bad.status_code == 400, bad.text
    assert xml_code(bad) == "BadDigest"
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=prefix + "bad")
    assert error_of(e)[0] == 404
    assert gw.tmp_files() == []


def test_signed_aws_chunked_body(gw):
    """`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed in a chain."""
    p = unique("chunked")
    body = os.urandom(300_000)

    def send(key, tamper):
        return gw.signed(
            "PUT",
            f"/{gw.bucket}/" + key,
            headers={
                "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                "Content-Encoding": "aws-chunked",
                "X-Amz-Decoded-Content-Length": str(len(body)),
            },
            make_body=lambda headers: signed_chunks(gw.secret, headers, body, tamper=tamper),
        )

    ok = send(p + "good", tamper=False)
    assert ok.status_code == 200, ok.text
    assert ok.headers["ETag"] == quoted(md5_hex(body))
    assert gw.body(p + "good") == body

    bad = send(p + "tampered", tamper=True)
    assert bad.status_code in (400, 403), bad.text
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=p + "tampered")
    assert error_of(e)[0] == 404
    assert gw.tmp_files() == []


# --- 3. ranges and conditional reads


def test_range_reads(gw):
    key = unique("range") + "digits"
    body = b"0123456789"
    gw.put(key, body)

    got = gw.get(key, Range="bytes=1-3")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == b"123"
    assert got["ContentRange"] == "bytes 1-3/10"
    assert got["ContentLength"] == 3
    assert got["ETag"] == quoted(md5_hex(body))

    got = gw.get(key, Range="bytes=-4")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == b"6789"
    assert got["ContentRange"] == "bytes 6-9/10"

    got = gw.get(key, Range="bytes=7-")
    assert got["Body"].read() == b"789"
    assert got["ContentRange"] == "bytes 7-9/10"

    # A last byte past the end is cut to the object.
    got = gw.get(key, Range="bytes=8-100")
    assert got["Body"].read() == b"89"
    assert got["ContentRange"] == "bytes 8-9/10"

    with pytest.raises(ClientError) as e:
        gw.get(key, Range="bytes=20-30")
    assert error_of(e) == (416, "InvalidRange")

    head = gw.s3.head_object(Bucket=gw.bucket, Key=key, Range="bytes=2-5")
    assert head["ContentLength"] == 4
    assert head["ContentRange"] == "bytes 2-5/10"


def test_range_on_a_larger_object_crosses_read_chunks(gw):
    key = unique("range-big") + "blob"
    body = os.urandom(3 * MiB + 17)
    gw.put(key, body)
    first, last = MiB - 5, 2 * MiB + 9
    got = gw.get(key, Range=f"bytes={first}-{last}")
    assert got["Body"].read() == body[first : last + 1]


def test_conditional_gets(gw):
    key = unique("cond") + "obj"
    body = b"conditional"
    etag = quoted(md5_hex(body))
    gw.put(key, body)

    assert gw.body(key, IfMatch=etag) == body
    with pytest.raises(ClientError) as e:
        gw.get(key, IfMatch=quoted(md5_hex(b"other")))
    assert error_of(e) == (412, "PreconditionFailed")

    with pytest.raises(ClientError) as e:
        gw.get(key, IfNoneMatch=etag)
    assert error_of(e)[0] == 304
    assert gw.body(key, IfNoneMatch=quoted(md5_hex(b"other"))) == body

    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    with pytest.raises(ClientError) as e:
        gw.get(key, IfModifiedSince=future)
    assert error_of(e)[0] == 304
    assert gw.body(key, IfModifiedSince=past) == body

    with pytest.raises(ClientError) as e:
        gw.get(key, IfUnmodifiedSince=past)
    assert error_of(e) == (412, "PreconditionFailed")
    assert gw.body(key, IfUnmodifiedSince=future) == body

    # HEAD answers the same preconditions (without a body).
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key, IfMatch=quoted(md5_hex(b"x")))
    assert error_of(e)[0] == 412
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key, IfNoneMatch=etag)
    assert error_of(e)[0] == 304


# --- 4. conditional writes


def test_put_if_none_match_creates_only_when_absent(gw):
    key = unique("ifnone") + "obj"
    first = gw.put(key, b"original", IfNoneMatch="*")
    assert first["ETag"] == quoted(md5_hex(b"original"))

    with pytest.raises(ClientError) as e:
        gw.put(key, b"replacement", IfNoneMatch="*")
    assert error_of(e) == (412, "PreconditionFailed")

    got = gw.get(key)
    assert got["Body"].read() == b"original"
    assert got["ETag"] == quoted(md5_hex(b"original"))
    assert gw.tmp_files() == []


def test_put_if_match(gw):
    key = unique("ifmatch") + "obj"
    gw.put(key, b"v1")
    with pytest.raises(ClientError) as e:
        gw.put(key, b"v2", IfMatch=quoted(md5_hex(b"nope")))
    assert error_of(e) == (412, "PreconditionFailed")
    assert gw.body(key) == b"v1"
    gw.put(key, b"v2", IfMatch=quoted(md5_hex(b"v1")))
    assert gw.body(key) == b"v2"
    with pytest.raises(ClientError) as e:
        gw.put(unique("ifmatch") + "absent", b"x", IfMatch="*")
    assert error_of(e)[0] == 412


def test_concurrent_if_none_match_has_exactly_one_winner(gw):
    key = unique("race-create") + "obj"
    barrier = threading.Barrier(8)

    def create(i):
        barrier.wait()
        try:
            gw.put(key, bytes([i]) * 1000, IfNoneMatch="*")
            return i
        except ClientError as e:
            assert error_of_response(e) == (412, "PreconditionFailed")
            return None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(create, range(8)))
    winners = [i for i in outcomes if i is not None]
    assert len(winners) == 1, outcomes
    assert gw.body(key) == bytes([winners[0]]) * 1000


def error_of_response(e):
    return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


# --- 5. listings


def list_v2_all(s3, **kw):
    keys, prefixes, pages = [], [], 0
    token = None
    while True:
        args = dict(kw)
        if token:
            args["ContinuationToken"] = token
        page = s3.list_objects_v2(Bucket=s3.floe_bucket, **args)
        pages += 1
        keys += [o["Key"] for o in page.get("Contents", [])]
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        assert page["KeyCount"] == len(page.get("Contents", [])) + len(
            page.get("CommonPrefixes", [])
        )
        if not page["IsTruncated"]:
            assert "NextContinuationToken" not in page
            return keys, prefixes, pages
        token = page["NextContinuationToken"]
        assert pages < 100, "listing does not end"


def test_list_v2_prefix_and_delimiter(gw):
    p = unique("lst")
    for k in ["a/1", "a/2", "a/deep/3", "b/1", "c", "d", "a-b", "a0"]:
        gw.put(p + k, k.encode())

    page = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p, Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == [p + "a-b", p + "a0", p + "c", p + "d"]
    assert [c["Prefix"] for c in page["CommonPrefixes"]] == [p + "a/", p + "b/"]
    assert page["KeyCount"] == 6
    assert page["IsTruncated"] is False
    obj = {o["Key"]: o for o in page["Contents"]}[p + "c"]
    assert obj["Size"] == 1 and obj["ETag"] == quoted(md5_hex(b"c"))

    page = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p + "a/", Delimiter="/")
    assert [o["Key"] for o in page["Contents"]] == [p + "a/1", p + "a/2"]
    assert [c["Prefix"] for c in page["CommonPrefixes"]] == [p + "a/deep/"]

    # A prefix that is not a whole folder name.
    page = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p + "a")
    assert [o["Key"] for o in page["Contents"]] == [
        p + "a-b",
        p + "a/1",
        p + "a/2",
        p + "a/deep/3",
        p + "a0",
    ]

    # Without a delimiter everything under the prefix, in key (byte) order.
    keys, prefixes, _ = list_v2_all(gw.s3, Prefix=p)
    assert keys == sorted(p + k for k in ["a/1", "a/2", "a/deep/3", "b/1", "c", "d", "a-b", "a0"])
    assert prefixes == []

    empty = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p + "zzz")
    assert empty["KeyCount"] == 0 and "Contents" not in empty


def test_list_v2_paging_returns_every_key_once_in_order(gw):
    p = unique("page")
    keys = [p + f"k{i:02d}" for i in range(13)]
    keys += [p + f"sub{i % 3}/x{i:02d}" for i in range(8)]
    keys += [p + "a-b", p + "a/x", p + "a0", p + "a/y/z"]
    assert len(keys) == 25
    for k in keys:
        gw.put(k, b"x")

    for max_keys in (1, 7, 10, 25, 1000):
        got, _, pages = list_v2_all(gw.s3, Prefix=p, MaxKeys=max_keys)
        assert got == sorted(keys), max_keys
        assert pages == -(-25 // max_keys), (max_keys, pages)
        assert len(set(got)) == 25

    first = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p, MaxKeys=7)
    assert first["IsTruncated"] is True and first["KeyCount"] == 7 and first["MaxKeys"] == 7

    # With a delimiter, pages mix keys and common prefixes, each once.
    got, prefixes, _ = list_v2_all(gw.s3, Prefix=p, Delimiter="/", MaxKeys=2)
    assert got == sorted(k for k in keys if "/" not in k[len(p) :])
    assert prefixes == [p + "a/", p + "sub0/", p + "sub1/", p + "sub2/"]


def test_list_v2_start_after(gw):
    p = unique("after")
    keys = [p + f"k{i:02d}" for i in range(10)] + [p + "n/1", p + "n/2", p + "o"]
    for k in keys:
        gw.put(k, b"x")
    got, _, _ = list_v2_all(gw.s3, Prefix=p, StartAfter=p + "k04")
    assert got == sorted(k for k in keys if k > p + "k04")
    # Inside a folder.
    got, _, _ = list_v2_all(gw.s3, Prefix=p, StartAfter=p + "n/1")
    assert got == [p + "n/2", p + "o"]
    # A StartAfter that is not a key.
    got, _, _ = list_v2_all(gw.s3, Prefix=p, StartAfter=p + "k055")
    assert got == sorted(k for k in keys if k > p + "k055")
    # Paging on top of StartAfter.
    got, _, _ = list_v2_all(gw.s3, Prefix=p, StartAfter=p + "k02", MaxKeys=3)
    assert got == sorted(k for k in keys if k > p + "k02")


def test_list_v1_marker_paging(gw):
    p = unique("v1")
    keys = [p + f"k{i:02d}" for i in range(11)] + [p + "d/1", p + "d/2"]
    for k in keys:
        gw.put(k, b"x")
    seen, marker, pages = [], None, 0
    while True:
        args = {"Bucket": gw.bucket, "Prefix": p, "MaxKeys": 4}
        if marker:
            args["Marker"] = marker
        page = gw.s3.list_objects(**args)
        pages += 1
        contents = [o["Key"] for o in page.get("Contents", [])]
        seen += contents
        if not page["IsTruncated"]:
            break
        marker = page.get("NextMarker") or contents[-1]
        assert marker == contents[-1]
        assert pages < 20
    assert seen == sorted(keys)
    assert pages == 4

    page = gw.s3.list_objects(Bucket=gw.bucket, Prefix=p, Delimiter="/")
    assert [c["Prefix"] for c in page["CommonPrefixes"]] == [p + "d/"]
    assert len(page["Contents"]) == 11

    page = gw.s3.list_objects(Bucket=gw.bucket, Prefix=p, Marker=p + "k09")
    assert [o["Key"] for o in page["Contents"]] == [p + "k10"]


def test_list_negative_max_keys_is_refused(gw):
    r = gw.signed("GET", f"/{gw.bucket}", query="list-type=2&max-keys=-1")
    assert r.status_code == 400, r.text


MODEL_KEYS = [
    "a b", "a-b", "a.b", "a//c", "a/b", "a/b-c/d", "a/b-c-d", "a0", "A",
    "b/a/a", "b/aa", "ba", "c-", "c.d/", "c/d-e", "c/d/e-f", "c/d/e/f",
    "x%y", "x+y", "z~", "~", "é/x", "éa",
]  # fmt: skip


def raw_list_page(gw, prefix, delimiter=None, max_keys=None, token=None, start_after=None):
    """One ListObjectsV2 page without `encoding-type`: (keys, prefixes, truncated, next token)."""
    query = ["list-type=2", "prefix=" + quote(prefix, safe="")]
    if delimiter:
        query.append("delimiter=" + quote(delimiter, safe=""))
    if max_keys is not None:
        query.append(f"max-keys={max_keys}")
    if token:
        query.append("continuation-token=" + quote(token, safe=""))
    if start_after:
        query.append("start-after=" + quote(start_after, safe=""))
    r = gw.signed("GET", f"/{gw.bucket}", query="&".join(query))
    assert r.status_code == 200, r.text
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    root = ElementTree.fromstring(r.content)
    keys = [e.text for e in root.findall("s3:Contents/s3:Key", ns)]
    prefixes = [e.text for e in root.findall("s3:CommonPrefixes/s3:Prefix", ns)]
    truncated = root.find("s3:IsTruncated", ns).text == "true"
    token = root.find("s3:NextContinuationToken", ns)
    assert int(root.find("s3:KeyCount", ns).text) == len(keys) + len(prefixes)
    return keys, prefixes, truncated, None if token is None else token.text


def s3_listing_model(keys, prefix, delimiter, start_after=None):
    """What S3 lists: keys in byte order, those with the delimiter after the prefix rolled up
    into common prefixes; each entry ('K' key or 'P' prefix) once."""
    out = []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or (start_after is not None and key <= start_after):
            continue
        rest = key[len(prefix) :]
        at = rest.find(delimiter) if delimiter else -1
        if at >= 0:
            group = prefix + rest[: at + len(delimiter)]
            if out and out[-1] == ("P", group):
                continue
            out.append(("P", group))
        else:
            out.append(("K", key))
    return out


def test_listing_matches_the_s3_model(gw):
    """Prefixes, delimiters (one or more characters) and page sizes over keys whose byte order
    differs from their folder layout, against a model of S3's listing."""
    p = unique("model")
    keys = [p + k for k in MODEL_KEYS]
    for k in keys:
        gw.put(k, b"m")
    for prefix in ["", "a", "a/", "a/b", "b/", "c/d", "é", "x", "none"]:
        for delimiter in [None, "/", "-", "a", "//"]:
            expected = s3_listing_model(keys, p + prefix, delimiter)
            for max_keys in (1, 3, 1000):
                pages, token, got_keys, got_prefixes = 0, None, [], []
                while True:
                    k, c, truncated, token = raw_list_page(
                        gw, p + prefix, delimiter, max_keys, token
                    )
                    page = expected[pages * max_keys : (pages + 1) * max_keys]
                    where = (prefix, delimiter, max_keys, pages)
                    assert k == [x for t, x in page if t == "K"], where
                    assert c == [x for t, x in page if t == "P"], where
                    pages += 1
                    got_keys += k
                    got_prefixes += c
                    if not truncated:
                        assert token is None
                        break
                    assert token, where
                assert pages == max(1, -(-len(expected) // max_keys)), (prefix, delimiter, max_keys)
    for start_after in ["a/b", "a/b-", "b", "c.d/", "ª", "é/x"]:
        expected = s3_listing_model(keys, p, None, p + start_after)
        k, c, truncated, _ = raw_list_page(gw, p, start_after=p + start_after)
        assert (k, c, truncated) == ([x for _, x in expected], [], False), start_after


def test_listing_cannot_climb_out_of_the_bucket(gw):
    # <data-dir> holds catalog.db and secret.key; <data-dir>/warehouses holds demo.
    for prefix in ["../", "..", "../../", "a/../../", "%2e%2e/", "./", ".floe~tmp/", ".floe~"]:
        for delimiter in (None, "/"):
            keys, prefixes, truncated, _ = raw_list_page(gw, prefix, delimiter)
            assert (keys, prefixes, truncated) == ([], [], False), (prefix, delimiter)
    keys, prefixes, _, _ = raw_list_page(gw, "", "/", start_after="../")
    assert not any(".." in x or "floe~" in x or "secret" in x for x in keys + prefixes)


def test_invalid_continuation_token(gw):
    with pytest.raises(ClientError) as e:
        gw.s3.list_objects_v2(Bucket=gw.bucket, ContinuationToken="!!not base64!!")
    assert error_of(e) == (400, "InvalidArgument")


# --- 6. copies


def test_copy_object_copy_and_replace_metadata(gw):
    p = unique("copy")
    body = os.urandom(50_000)
    gw.put(p + "src", body, ContentType="text/x-src", Metadata={"origin": "src"})

    out = gw.s3.copy_object(Bucket=gw.bucket, Key=p + "dst", CopySource={"Bucket": gw.bucket, "Key": p + "src"})
    assert out["CopyObjectResult"]["ETag"] == quoted(md5_hex(body))
    head = gw.s3.head_object(Bucket=gw.bucket, Key=p + "dst")
    assert head["ContentType"] == "text/x-src"
    assert head["Metadata"] == {"origin": "src"}
    assert gw.body(p + "dst") == body

    gw.s3.copy_object(
        Bucket=gw.bucket,
        Key=p + "replaced",
        CopySource={"Bucket": gw.bucket, "Key": p + "src"},
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"fresh": "yes"},
    )
    head = gw.s3.head_object(Bucket=gw.bucket, Key=p + "replaced")
    assert head["ContentType"] == "text/x-new"
    assert head["Metadata"] == {"fresh": "yes"}
    assert gw.body(p + "replaced") == body

    # Copying onto itself with REPLACE updates the metadata in place.
    gw.s3.copy_object(
        Bucket=gw.bucket,
        Key=p + "src",
        CopySource={"Bucket": gw.bucket, "Key": p + "src"},
        MetadataDirective="REPLACE",
        Metadata={"origin": "rewritten"},
    )
    head = gw.s3.head_object(Bucket=gw.bucket, Key=p + "src")
    assert head["Metadata"] == {"origin": "rewritten"}
    assert gw.body(p + "src") == body

    with pytest.raises(ClientError) as e:
        gw.s3.copy_object(Bucket=gw.bucket, Key=p + "x", CopySource={"Bucket": gw.bucket, "Key": p + "absent"})
    assert error_of(e) == (404, "NoSuchKey")


def test_copy_object_honours_copy_source_conditions(gw):
    p = unique("copy-cond")
    gw.put(p + "src", b"source")
    etag = quoted(md5_hex(b"source"))
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    source = {"Bucket": gw.bucket, "Key": p + "src"}
    refused = [
        ({"CopySourceIfMatch": quoted(md5_hex(b"other"))}, 412),
        ({"CopySourceIfNoneMatch": etag}, 412),
        ({"CopySourceIfUnmodifiedSince": past}, 412),
        ({"CopySourceIfModifiedSince": future}, 412),
    ]
    failures = []
    for n, (condition, status) in enumerate(refused):
        target = p + f"dst{n}"
        try:
            gw.s3.copy_object(Bucket=gw.bucket, Key=target, CopySource=source, **condition)
            failures.append((condition, "copied"))
        except ClientError as e:
            if error_of_response(e)[0] != status:
                failures.append((condition, error_of_response(e)))
        if gw.holds(target):
            failures.append((condition, "target written"))
    gw.s3.copy_object(Bucket=gw.bucket, Key=p + "ok", CopySource=source, CopySourceIfMatch=etag)
    assert gw.body(p + "ok") == b"source"
    assert failures == []


def test_upload_part_copy_honours_copy_source_if_match(gw):
    p = unique("partcopy-cond")
    gw.put(p + "src", b"source")
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=p + "dst")["UploadId"]
    try:
        with pytest.raises(ClientError) as e:
            gw.s3.upload_part_copy(
                Bucket=gw.bucket,
                Key=p + "dst",
                UploadId=upload_id,
                PartNumber=1,
                CopySource={"Bucket": gw.bucket, "Key": p + "src"},
                CopySourceIfMatch=quoted(md5_hex(b"other")),
            )
        assert error_of(e) == (412, "PreconditionFailed")
    finally:
        gw.s3.abort_multipart_upload(Bucket=gw.bucket, Key=p + "dst", UploadId=upload_id)


# --- 7. deletes


def test_delete_object(gw):
    p = unique("del")
    gw.put(p + "nested/obj", b"bye")
    out = gw.s3.delete_object(Bucket=gw.bucket, Key=p + "nested/obj")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=p + "nested/obj")
    assert error_of(e)[0] == 404
    # The folders it left empty are gone too.
    assert not gw.holds(p)
    assert gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p)["KeyCount"] == 0

    out = gw.s3.delete_object(Bucket=gw.bucket, Key=p + "never-existed")
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_delete_objects(gw):
    p = unique("multidel")
    keys = [p + f"k{i}" for i in range(5)]
    for k in keys:
        gw.put(k, b"x")

    out = gw.s3.delete_objects(
        Bucket=gw.bucket,
        Delete={"Objects": [{"Key": k} for k in keys[:3]] + [{"Key": p + "absent"}]},
    )
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(keys[:3] + [p + "absent"])
    assert out.get("Errors", []) == []
    remaining, _, _ = list_v2_all(gw.s3, Prefix=p)
    assert remaining == keys[3:]

    out = gw.s3.delete_objects(
        Bucket=gw.bucket, Delete={"Objects": [{"Key": k} for k in keys[3:]], "Quiet": True}
    )
    assert out.get("Deleted", []) == []
    assert out.get("Errors", []) == []
    assert list_v2_all(gw.s3, Prefix=p)[0] == []

    # An invalid key fails alone.
    gw.put(p + "ok", b"x")
    out = gw.s3.delete_objects(
        Bucket=gw.bucket, Delete={"Objects": [{"Key": p + "ok"}, {"Key": "../escape"}]}
    )
    assert [d["Key"] for d in out["Deleted"]] == [p + "ok"]
    assert [(x["Key"], x["Code"]) for x in out["Errors"]] == [("../escape", "InvalidArgument")]
    assert list_v2_all(gw.s3, Prefix=p)[0] == []


# --- 8. multipart uploads


def test_multipart_upload_lifecycle(gw):
    p = unique("mpu")
    key = p + "big.bin"
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 123), os.urandom(1000)]
    created = gw.s3.create_multipart_upload(
        Bucket=gw.bucket, Key=key, ContentType="application/x-mpu", Metadata={"kind": "multi"}
    )
    upload_id = created["UploadId"]
    assert created["Key"] == key and created["Bucket"] == gw.bucket

    etags = []
    for n, data in enumerate(parts, start=1):
        out = gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=data)
        assert out["ETag"] == quoted(md5_hex(data))
        etags.append(out["ETag"])

    listed = gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id)
    assert [(x["PartNumber"], x["ETag"], x["Size"]) for x in listed["Parts"]] == [
        (n, etags[n - 1], len(parts[n - 1])) for n in (1, 2, 3)
    ]
    assert listed["IsTruncated"] is False

    page = gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id, MaxParts=2)
    assert [x["PartNumber"] for x in page["Parts"]] == [1, 2]
    assert page["IsTruncated"] is True and page["NextPartNumberMarker"] == 2
    page = gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumberMarker=2)
    assert [x["PartNumber"] for x in page["Parts"]] == [3]

    uploads = gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p)
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [(key, upload_id)]

    # Not visible as an object until completed.
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404

    done = gw.s3.complete_multipart_upload(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n - 1]} for n in (1, 2, 3)]},
    )
    assert done["ETag"] == quoted(multipart_etag(parts))

    got = gw.get(key)
    assert got["ETag"] == quoted(multipart_etag(parts))
    assert got["ContentType"] == "application/x-mpu"
    assert got["Metadata"] == {"kind": "multi"}
    assert got["ContentLength"] == sum(len(x) for x in parts)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()

    assert gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p).get("Uploads", []) == []
    if gw.root is not None:
        assert not os.path.exists(os.path.join(gw.root, ".floe~uploads", upload_id))
    with pytest.raises(ClientError) as e:
        gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id)
    assert error_of(e) == (404, "NoSuchUpload")


def test_multipart_subset_of_parts_and_replaced_part(gw):
    key = unique("mpu-subset") + "obj"
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]
    one = os.urandom(5 * MiB)
    gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"first try")
    e1 = gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=one)["ETag"]
    gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"skipped")
    e3 = gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=b"tail")["ETag"]
    done = gw.s3.complete_multipart_upload(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e3}]},
    )
    assert done["ETag"] == quoted(multipart_etag([one, b"tail"]))
    assert gw.body(key) == one + b"tail"


def test_multipart_errors(gw):
    p = unique("mpu-err")
    key = p + "obj"
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]
    small = [b"a" * 1024, b"b" * 1024]
    etags = [
        gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=d)["ETag"]
        for n, d in enumerate(small, start=1)
    ]

    with pytest.raises(ClientError) as e:
        gw.s3.complete_multipart_upload(
            Bucket=gw.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n - 1]} for n in (1, 2)]},
        )
    assert error_of(e) == (400, "EntityTooSmall")

    # Part order is checked on a list whose first part is large enough.
    big = os.urandom(5 * MiB)
    big_etag = gw.s3.upload_part(
        Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=big
    )["ETag"]
    for order in ((3, 1), (3, 3)):
        with pytest.raises(ClientError) as e:
            gw.s3.complete_multipart_upload(
                Bucket=gw.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": n, "ETag": big_etag if n == 3 else etags[n - 1]}
                        for n in order
                    ]
                },
            )
        assert error_of(e) == (400, "InvalidPartOrder"), order

    with pytest.raises(ClientError) as e:
        gw.s3.complete_multipart_upload(
            Bucket=gw.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": quoted(md5_hex(b"wrong"))}]},
        )
    assert error_of(e) == (400, "InvalidPart")

    with pytest.raises(ClientError) as e:
        gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=10001, Body=b"x")
    assert error_of(e)[0] == 400
    with pytest.raises(ClientError) as e:
        gw.s3.upload_part(
            Bucket=gw.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=4,
            Body=b"part body",
            ContentMD5=md5_b64(b"another body"),
        )
    assert error_of(e) == (400, "BadDigest")

    # A failed completion leaves the upload as it was.
    listed = gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id)
    assert [x["PartNumber"] for x in listed["Parts"]] == [1, 2, 3]
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404

    # An upload id belongs to its key.
    with pytest.raises(ClientError) as e:
        gw.s3.list_parts(Bucket=gw.bucket, Key=p + "other", UploadId=upload_id)
    assert error_of(e) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId="0" * 32, PartNumber=1, Body=b"x")
    assert error_of(e) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId="../../etc")
    assert error_of(e) == (404, "NoSuchUpload")

    # The last part alone may be small.
    done = gw.s3.complete_multipart_upload(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[1]}]},
    )
    assert done["ETag"] == quoted(multipart_etag([small[1]]))
    assert gw.body(key) == small[1]


def test_multipart_abort(gw):
    p = unique("mpu-abort")
    key = p + "obj"
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]
    gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    if gw.root is not None:
        assert os.path.isdir(os.path.join(gw.root, ".floe~uploads", upload_id))

    out = gw.s3.abort_multipart_upload(Bucket=gw.bucket, Key=key, UploadId=upload_id)
    assert out["ResponseMetadata"]["HTTPStatusCode"] == 204

    with pytest.raises(ClientError) as e:
        gw.s3.list_parts(Bucket=gw.bucket, Key=key, UploadId=upload_id)
    assert error_of(e) == (404, "NoSuchUpload")
    assert gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p).get("Uploads", []) == []
    if gw.root is not None:
        assert not os.path.exists(os.path.join(gw.root, ".floe~uploads", upload_id))
    with pytest.raises(ClientError) as e:
        gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"x")
    assert error_of(e) == (404, "NoSuchUpload")
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404


def test_list_multipart_uploads_orders_and_filters(gw):
    p = unique("mpu-list")
    keys = [p + "b", p + "a", p + "dir/x", p + "a"]
    ids = [gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=k)["UploadId"] for k in keys]
    try:
        listed = gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p)
        got = [(u["Key"], u["UploadId"]) for u in listed["Uploads"]]
        assert got == sorted(zip(keys, ids))

        grouped = gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p, Delimiter="/")
        assert [u["Key"] for u in grouped["Uploads"]] == [p + "a", p + "a", p + "b"]
        assert [c["Prefix"] for c in grouped["CommonPrefixes"]] == [p + "dir/"]

        page = gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p, MaxUploads=2)
        assert page["IsTruncated"] is True
        assert [(u["Key"], u["UploadId"]) for u in page["Uploads"]] == got[:2]
        rest = gw.s3.list_multipart_uploads(
            Bucket=gw.bucket,
            Prefix=p,
            KeyMarker=page["NextKeyMarker"],
            UploadIdMarker=page["NextUploadIdMarker"],
        )
        assert [(u["Key"], u["UploadId"]) for u in rest["Uploads"]] == got[2:]
    finally:
        for k, i in zip(keys, ids):
            gw.s3.abort_multipart_upload(Bucket=gw.bucket, Key=k, UploadId=i)


def test_upload_part_copy_with_range(gw):
    p = unique("mpu-copy")
    source = os.urandom(11 * MiB)
    gw.put(p + "source", source)
    key = p + "assembled"
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]

    first = 5 * MiB
    copied = gw.s3.upload_part_copy(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": gw.bucket, "Key": p + "source"},
        CopySourceRange=f"bytes=0-{first - 1}",
    )
    assert copied["CopyPartResult"]["ETag"] == quoted(md5_hex(source[:first]))
    whole = gw.s3.upload_part_copy(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": gw.bucket, "Key": p + "source"},
        CopySourceRange=f"bytes={first}-{len(source) - 1}",
    )
    tail = source[first:]
    assert whole["CopyPartResult"]["ETag"] == quoted(md5_hex(tail))
    last = gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=3, Body=b"end")

    with pytest.raises(ClientError) as e:
        gw.s3.upload_part_copy(
            Bucket=gw.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=4,
            CopySource={"Bucket": gw.bucket, "Key": p + "source"},
            CopySourceRange=f"bytes=0-{len(source)}",
        )
    assert error_of(e)[0] == 400

    done = gw.s3.complete_multipart_upload(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": whole["CopyPartResult"]["ETag"]},
                {"PartNumber": 3, "ETag": last["ETag"]},
            ]
        },
    )
    assert done["ETag"] == quoted(multipart_etag([source[:first], tail, b"end"]))
    assert gw.body(key) == source + b"end"

    # A copy of a multipart object is one whole object again.
    gw.s3.copy_object(Bucket=gw.bucket, Key=p + "flat", CopySource={"Bucket": gw.bucket, "Key": key})
    head = gw.s3.head_object(Bucket=gw.bucket, Key=p + "flat")
    assert head["ETag"] == quoted(md5_hex(source + b"end"))


def test_large_upload_with_transfer_manager(gw):
    key = unique("large") + "100mib.bin"
    data = os.urandom(100 * MiB)
    config = TransferConfig(
        multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB, max_concurrency=4
    )
    gw.s3.upload_fileobj(io.BytesIO(data), gw.bucket, key, Config=config)

    head = gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert head["ContentLength"] == len(data)
    parts = [data[i : i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]
    assert head["ETag"] == quoted(multipart_etag(parts))

    out = io.BytesIO()
    gw.s3.download_fileobj(gw.bucket, key, out, Config=config)
    assert hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(gw.stored(key)).hexdigest() == hashlib.sha256(data).hexdigest()
    gw.s3.delete_object(Bucket=gw.bucket, Key=key)


def test_complete_multipart_if_none_match(gw):
    p = unique("mpu-ifnone")
    gw.put(p + "taken", b"first")
    for key, exists in ((p + "taken", True), (p + "free", False)):
        upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]
        part = gw.s3.upload_part(
            Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"second"
        )
        complete = dict(
            Bucket=gw.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
            IfNoneMatch="*",
        )
        if exists:
            with pytest.raises(ClientError) as e:
                gw.s3.complete_multipart_upload(**complete)
            assert error_of(e) == (412, "PreconditionFailed")
            assert gw.body(key) == b"first"
            gw.s3.abort_multipart_upload(Bucket=gw.bucket, Key=key, UploadId=upload_id)
        else:
            gw.s3.complete_multipart_upload(**complete)
            assert gw.body(key) == b"second"
    assert gw.tmp_files() == []


def test_list_multipart_uploads_key_marker_alone(gw):
    p = unique("mpu-marker")
    keys = [p + "a", p + "b", p + "c"]
    ids = [gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=k)["UploadId"] for k in keys]
    try:
        listed = gw.s3.list_multipart_uploads(Bucket=gw.bucket, Prefix=p, KeyMarker=p + "b")
        assert [u["Key"] for u in listed.get("Uploads", [])] == [p + "c"]
    finally:
        for k, i in zip(keys, ids):
            gw.s3.abort_multipart_upload(Bucket=gw.bucket, Key=k, UploadId=i)


def test_get_object_by_part_number(gw):
    p = unique("mpu-partget")
    key = p + "obj"
    parts = [os.urandom(5 * MiB), b"the small tail"]
    upload_id = gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=key)["UploadId"]
    etags = [
        gw.s3.upload_part(Bucket=gw.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=d)["ETag"]
        for n, d in enumerate(parts, start=1)
    ]
    gw.s3.complete_multipart_upload(
        Bucket=gw.bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n - 1]} for n in (1, 2)]},
    )
    head = gw.s3.head_object(Bucket=gw.bucket, Key=key, PartNumber=2)
    assert head["ContentLength"] == len(parts[1])
    got = gw.get(key, PartNumber=2)
    assert got["PartsCount"] == 2
    assert got["Body"].read() == parts[1]
    gw.put(p + "plain", b"plain")
    with pytest.raises(ClientError) as e:
        gw.get(p + "plain", PartNumber=2)
    assert error_of(e)[0] == 416


# --- 9. presigned URLs


def test_presigned_get_and_put(gw):
    p = unique("presign")
    gw.put(p + "readme", b"presigned body")
    url = gw.s3.generate_presigned_url(
        "get_object", Params={"Bucket": gw.bucket, "Key": p + "readme"}, ExpiresIn=300
    )
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=30)
    assert r.status_code == 200, r.text
    assert r.content == b"presigned body"
    assert r.headers["ETag"] == quoted(md5_hex(b"presigned body"))

    # A tampered signature is refused.
    bad = re.sub(r"X-Amz-Signature=([0-9a-f])", lambda m: "X-Amz-Signature=" + ("0" if m.group(1) != "0" else "1"), url)
    r = requests.get(bad, timeout=30)
    assert r.status_code == 403

    url = gw.s3.generate_presigned_url(
        "put_object", Params={"Bucket": gw.bucket, "Key": p + "uploaded"}, ExpiresIn=300
    )
    body = os.urandom(10_000)
    r = requests.put(url, data=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == quoted(md5_hex(body))
    assert gw.body(p + "uploaded") == body


def test_expired_presigned_url_is_refused(gw):
    key = unique("presign-exp") + "obj"
    gw.put(key, b"x")
    url = gw.s3.generate_presigned_url(
        "get_object", Params={"Bucket": gw.bucket, "Key": key}, ExpiresIn=1
    )
    time.sleep(2.1)
    r = requests.get(url, timeout=30)
    assert r.status_code == 403, r.text


# --- 10. keys


ODD_KEYS = [
    "ünï/cödé.txt",
    "100% sure",
    "with spaces / and more spaces",
    "a+b=c&d",
    "folder/",
    "a//b",
    "trailing.dot.",
    "~tilde/#hash?question",
    "x..y/..z/z..",
    "emoji-🦆.bin",
    "<xml>&'\"",
]


def raw_listing(gw, prefix, extra=""):
    """Keys and common prefixes of a ListObjectsV2 sent without `encoding-type`, parsed from the
    XML (so they are exactly what the gateway holds)."""
    query = "list-type=2&prefix=" + quote(prefix, safe="") + extra
    r = gw.signed("GET", f"/{gw.bucket}", query=query)
    assert r.status_code == 200, r.text
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    root = ElementTree.fromstring(r.content)
    assert root.find("s3:EncodingType", ns) is None
    keys = [e.text for e in root.findall("s3:Contents/s3:Key", ns)]
    prefixes = [e.text for e in root.findall("s3:CommonPrefixes/s3:Prefix", ns)]
    return keys, prefixes


@pytest.mark.parametrize("odd", ODD_KEYS)
def test_odd_keys_round_trip(gw, odd):
    p = unique("odd")
    key = p + odd
    body = odd.encode() + b"!"
    put = gw.put(key, body)
    assert put["ETag"] == quoted(md5_hex(body))
    assert gw.body(key) == body
    assert gw.s3.head_object(Bucket=gw.bucket, Key=key)["ContentLength"] == len(body)
    assert gw.body(key, Range="bytes=0-0") == body[:1]
    gw.s3.copy_object(Bucket=gw.bucket, Key=key + ".copy", CopySource={"Bucket": gw.bucket, "Key": key})
    assert gw.body(key + ".copy") == body
    gw.s3.delete_object(Bucket=gw.bucket, Key=key + ".copy")

    assert raw_listing(gw, p) == ([key], [])
    presigned = gw.s3.generate_presigned_url(
        "get_object", Params={"Bucket": gw.bucket, "Key": key}, ExpiresIn=60
    )
    assert requests.get(presigned, timeout=30).content == body

    gw.s3.delete_object(Bucket=gw.bucket, Key=key)
    with pytest.raises(ClientError) as e:
        gw.s3.head_object(Bucket=gw.bucket, Key=key)
    assert error_of(e)[0] == 404
    assert raw_listing(gw, p) == ([], [])


def test_odd_keys_listed_exactly_without_encoding(gw):
    p = unique("odd-raw")
    keys = [p + k for k in ODD_KEYS]
    for k in keys:
        gw.put(k, b"x")
    assert raw_listing(gw, p) == (sorted(keys), [])
    listed, prefixes = raw_listing(gw, p, "&delimiter=%2F")
    assert listed == sorted(k for k in keys if "/" not in k[len(p) :])
    assert prefixes == sorted({p + k.split("/")[0] + "/" for k in ODD_KEYS if "/" in k})


def test_odd_keys_listed_exactly_by_boto3(gw):
    """boto3 asks listings for `encoding-type=url` and URL-decodes the keys it gets back, so the
    gateway must encode them."""
    p = unique("odd-list")
    keys = [p + k for k in ODD_KEYS + ["100%25 encoded", "a+1", "a+2"]]
    for k in keys:
        gw.put(k, b"x")
    listed, _, _ = list_v2_all(gw.s3, Prefix=p)
    assert listed == sorted(keys)
    v1 = gw.s3.list_objects(Bucket=gw.bucket, Prefix=p)
    assert [o["Key"] for o in v1["Contents"]] == sorted(keys)
    page = gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p, Delimiter="/")
    assert [c["Prefix"] for c in page["CommonPrefixes"]] == sorted(
        {p + k.split("/")[0] + "/" for k in ODD_KEYS if "/" in k}
    )
    seen, marker = [], None
    for _ in range(2 * len(keys)):
        args = {"Bucket": gw.bucket, "Prefix": p, "MaxKeys": 1}
        if marker:
            args["Marker"] = marker
        page = gw.s3.list_objects(**args)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        marker = page["NextMarker"]
    assert seen == sorted(keys)


def test_odd_keys_are_plain_files_on_disk(gw):
    gw.local_only("the file layout of odd keys")
    p = unique("odd-disk")
    gw.put(p + "folder/", b"folder marker")
    gw.put(p + "a//b", b"double")
    gw.put(p + "ünï/cödé.txt", b"unicode")
    with open(os.path.join(gw.root, p, "folder", ".floe~empty"), "rb") as f:
        assert f.read() == b"folder marker"
    with open(os.path.join(gw.root, p, "a", ".floe~empty", "b"), "rb") as f:
        assert f.read() == b"double"
    with open(os.path.join(gw.root, p, "ünï", "cödé.txt"), "rb") as f:
        assert f.read() == b"unicode"
    # "folder/" and "folder/inner" live side by side.
    gw.put(p + "folder/inner", b"inner")
    keys, _, _ = list_v2_all(gw.s3, Prefix=p)
    assert keys == sorted([p + "folder/", p + "folder/inner", p + "a//b", p + "ünï/cödé.txt"])
    assert gw.body(p + "folder/") == b"folder marker"


ESCAPING_KEYS = [
    "../x",
    "a/../../x",
    "./a",
    "a/./b",
    "..",
    ".floe~tmp/x",
    "a/.floe~uploads/b",
    ".floe~empty",
    "a/.floe~anything",
    "a\\..\\x",
    "a/..\\x",
]


@pytest.mark.parametrize("bad", ESCAPING_KEYS)
def test_escaping_and_reserved_keys_are_refused_by_boto3(gw, bad):
    with pytest.raises(ClientError) as e:
        gw.put(bad, b"evil")
    assert error_of(e) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        gw.get(bad)
    assert error_of(e) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        gw.s3.create_multipart_upload(Bucket=gw.bucket, Key=bad)
    assert error_of(e) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as e:
        gw.s3.copy_object(Bucket=gw.bucket, Key="fine-target", CopySource={"Bucket": gw.bucket, "Key": bad})
    assert error_of(e)[0] == 400
    assert gw.tmp_files() == []


@pytest.mark.parametrize(
    "raw",
    [
        "/demo/%2e%2e/escaped",
        "/demo/trav/a/%2e%2e/x",
        "/demo/trav/a/%2E%2e/%2e%2E/escaped",
        "/demo/trav/a/../x",
        "/demo/trav/%2e/x",
        "/demo/trav/a/..%2fx",
        "/demo/trav/a/..%5cx",
        "/demo/trav/a%2f%2e%2e%2fx",
        "/demo/trav/%2efloe~tmp/x",
        "/demo/..%2f..%2fsecret.key",
        "/demo/trav/a%00b",
        "/demo/trav/a/%2e%2e%5cx",
    ],
)
def test_traversal_in_raw_paths_is_refused(gw, raw):
    raw = raw.replace("/demo", f"/{gw.bucket}", 1)
    # What a client that normalized the path would reach is a real object, so a 400 here shows the
    # server got (and refused) the dot segments.
    gw.put("trav/x", b"the normalized target")
    gw.put("escaped", b"the normalized target")

    got = gw.signed("GET", raw)
    assert got.status_code == 400, (got.status_code, got.text)
    assert xml_code(got) == "InvalidArgument"

    put = gw.signed("PUT", raw, body=b"evil")
    assert put.status_code == 400, (put.status_code, put.text)
    assert xml_code(put) == "InvalidArgument"

    assert not gw.outside_holds("escaped")
    if gw.root is not None:
        data = os.path.dirname(gw.root)  # <data-dir>/warehouses
        assert not os.path.exists(os.path.join(os.path.dirname(data), "escaped"))
    assert gw.body("trav/x") == b"the normalized target"
    assert gw.body("escaped") == b"the normalized target"
    if gw.root is not None:
        with open(os.path.join(os.path.dirname(data), "secret.key"), "rb") as f:
            assert f.read() != b"evil"
    else:
        assert not gw.outside_holds("secret.key")
    assert gw.tmp_files() == []


def test_raw_signed_requests_reach_plain_keys(gw):
    """The control for the traversal tests: the same signing reaches ordinary keys."""
    r = gw.signed("PUT", f"/{gw.bucket}/raw/plain%20key", body=b"raw body")
    assert r.status_code == 200, r.text
    assert gw.body("raw/plain key") == b"raw body"
    r = gw.signed("GET", f"/{gw.bucket}/raw/plain%20key")
    assert r.status_code == 200 and r.content == b"raw body"


def test_key_too_long(gw):
    with pytest.raises(ClientError) as e:
        gw.put("k" * 1025, b"x")
    assert error_of(e)[0] == 400
    segment = "s" * 256
    with pytest.raises(ClientError) as e:
        gw.put(segment + "/x", b"x")
    assert error_of(e)[0] == 400
    fine = "/".join(["d" * 200] * 5)
    gw.put(fine, b"long but fine")
    assert gw.body(fine) == b"long but fine"


def test_key_that_is_also_a_prefix_conflicts(gw):
    p = unique("conflict")
    gw.put(p + "dir/file", b"x")
    with pytest.raises(ClientError) as e:
        gw.put(p + "dir", b"y")
    assert error_of(e)[0] == 409
    gw.put(p + "leaf", b"x")
    with pytest.raises(ClientError) as e:
        gw.put(p + "leaf/child", b"y")
    assert error_of(e)[0] == 409
    assert gw.body(p + "dir/file") == b"x" and gw.body(p + "leaf") == b"x"
    assert gw.tmp_files() == []


# --- virtual-host style


def test_virtual_host_style_with_signed_requests(gw):
    port = urlsplit(gw.endpoint).port
    host = f"{gw.bucket}.localhost:{port}"
    gw.put("vh/obj", b"virtual host")

    r = gw.signed("GET", "/vh/obj", host=host)
    assert r.status_code == 200, r.text
    assert r.content == b"virtual host"

    r = gw.signed("PUT", "/vh/put", host=host, body=b"written virtually")
    assert r.status_code == 200, r.text
    assert gw.body("vh/put") == b"written virtually"

    r = gw.signed("GET", "/", host=host, query="list-type=2&prefix=vh%2F")
    assert r.status_code == 200, r.text
    assert re.findall(r"<Key>([^<]*)</Key>", r.text) == ["vh/obj", "vh/put"]

    # The bucket in the host name is authorized like any other.
    r = gw.signed("GET", "/vh/obj", host=f"other.localhost:{port}")
    assert r.status_code == 403


def test_virtual_host_style_with_boto3(gw):
    """boto3 in virtual-host style; `demo.localhost` is sent to 127.0.0.1 when it does not
    resolve."""
    port = urlsplit(gw.endpoint).port
    s3 = client_for(f"http://localhost:{port}", gw.key_id, gw.secret, addressing_style="virtual")
    try:
        socket.gethostbyname("demo.localhost")
    except OSError:

        def redirect(request, **_):
            parts = urlsplit(request.url)
            request.headers["Host"] = parts.netloc
            request.url = request.url.replace(parts.netloc, f"127.0.0.1:{port}", 1)

        s3.meta.events.register_first("before-send.s3", redirect)

    s3.put_object(Bucket=gw.bucket, Key="vh-boto/obj", Body=b"boto virtual")
    got = s3.get_object(Bucket=gw.bucket, Key="vh-boto/obj")
    assert got["Body"].read() == b"boto virtual"
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    listed = s3.list_objects_v2(Bucket=gw.bucket, Prefix="vh-boto/")
    assert [o["Key"] for o in listed["Contents"]] == ["vh-boto/obj"]
    assert gw.body("vh-boto/obj") == b"boto virtual"


def test_virtual_host_style_with_boto3_and_real_dns(gw):
    try:
        socket.gethostbyname("demo.localhost")
    except OSError:
        pytest.skip("demo.localhost does not resolve here")
    port = urlsplit(gw.endpoint).port
    s3 = client_for(f"http://localhost:{port}", gw.key_id, gw.secret, addressing_style="virtual")
    s3.put_object(Bucket=gw.bucket, Key="vh-dns/obj", Body=b"dns")
    assert s3.get_object(Bucket=gw.bucket, Key="vh-dns/obj")["Body"].read() == b"dns"


# --- 11. concurrency


def test_concurrent_writers_leave_exactly_one_body(gw):
    key = unique("race") + "same-key"
    size = MiB
    for _ in range(3):
        barrier = threading.Barrier(8)

        def write(i):
            barrier.wait()
            return gw.put(key, bytes([i]) * size)["ETag"]

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            etags = list(pool.map(write, range(8)))
        assert etags == [quoted(md5_hex(bytes([i]) * size)) for i in range(8)]

        got = gw.get(key)
        body = got["Body"].read()
        assert len(body) == size
        value = body[0]
        assert value in range(8)
        assert body == bytes([value]) * size
        assert got["ETag"] == quoted(md5_hex(body))
        assert got["ContentLength"] == size
    assert gw.tmp_files() == []


def test_readers_never_see_a_partial_object(gw):
    key = unique("race-read") + "obj"
    size = 2 * MiB
    gw.put(key, b"\x00" * size)
    stop = threading.Event()
    problems = []

    def read():
        while not stop.is_set():
            got = gw.get(key)
            body = got["Body"].read()
            if len(body) != size or body != bytes([body[0]]) * size:
                problems.append((len(body), body[:1]))
            elif got["ETag"] != quoted(md5_hex(body)):
                problems.append(("etag", got["ETag"], body[:1]))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(1, 13):
            gw.put(key, bytes([i]) * size)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert problems == []


def test_requests_signed_long_ago_or_ahead_are_refused(gw, monkeypatch):
    import botocore.auth

    gw.put("skew/obj", b"x")
    real_now = botocore.auth.get_current_datetime
    for shift in (datetime.timedelta(hours=-1), datetime.timedelta(hours=1)):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: real_now() + shift)
        with pytest.raises(ClientError) as e:
            gw.get("skew/obj")
        assert error_of(e) == (403, "RequestTimeTooSkewed"), shift
    monkeypatch.setattr(botocore.auth, "get_current_datetime", real_now)
    assert gw.body("skew/obj") == b"x"


def test_writes_and_deletes_in_one_folder_do_not_trip_over_each_other(gw):
    """Deleting a folder's last object removes the folder, while other writers create it again."""
    p = unique("churn")
    failures = []

    def churn(name):
        key = f"{p}x/y/{name}"
        for _ in range(60):
            try:
                gw.put(key, name.encode())
                if gw.body(key) != name.encode():
                    failures.append((key, "wrong body"))
                gw.s3.delete_object(Bucket=gw.bucket, Key=key)
            except ClientError as e:
                failures.append((key, error_of_response(e)))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, ["a", "b", "c", "d"]))
    assert failures == []
    assert list_v2_all(gw.s3, Prefix=p)[0] == []
    assert gw.tmp_files() == []


# --- 13. durability


def test_completed_put_is_a_file_on_disk(gw):
    gw.local_only("objects are files under the warehouse's root")
    data_dir = os.path.join(gw.floe.dir, "data")
    assert gw.root == os.path.join(data_dir, "warehouses", "demo")
    p = unique("durable")
    key = p + "nested/deeper/file.bin"
    body = os.urandom(123_456)
    gw.put(key, body, ContentType="application/x-durable", Metadata={"m": "1"})

    path = os.path.join(data_dir, "warehouses", "demo", p, "nested", "deeper", "file.bin")
    with open(path, "rb") as f:
        assert f.read() == body
    # The ETag, content type and user metadata live in an extended attribute written with the
    # file. Where the file system has none (checked on this very folder), the README's fallback
    # holds instead: no content type or metadata kept, an ETag made from the file's identity.
    probe = os.path.join(data_dir, f".xattr-probe-{uuid.uuid4().hex}")
    open(probe, "wb").close()
    try:
        os.setxattr(probe, "user.floe.probe", b"1")
        xattrs = True
    except OSError:
        xattrs = False
    finally:
        os.remove(probe)
    head = gw.s3.head_object(Bucket=gw.bucket, Key=key)
    if xattrs:
        stored = json.loads(os.getxattr(path, "user.floe.s3"))
        assert stored["etag"] == md5_hex(body)
        assert stored["content_type"] == "application/x-durable"
        assert stored["user"] == {"m": "1"}
        assert head["ContentType"] == "application/x-durable" and head["Metadata"] == {"m": "1"}
    else:
        assert head["Metadata"] == {}
        assert head["ETag"] != quoted(md5_hex(body))

    # A failed upload leaves nothing behind either.
    with pytest.raises(ClientError):
        gw.put(p + "bad", body, ContentMD5=md5_b64(b"x"))
    assert gw.tmp_files() == []
    assert not gw.holds(p + "bad")
    # Floe's own folders never show in listings.
    keys, prefixes, _ = list_v2_all(gw.s3, Delimiter="/")
    assert not any(x.startswith(".floe~") for x in keys + prefixes)


def test_files_written_by_others_are_served(gw):
    """The catalog writes files into the same tree: they are objects too, with a stable ETag."""
    p = unique("foreign")
    gw.write_behind(p + "data.parquet", b"written by the catalog")
    got = gw.get(p + "data.parquet")
    assert got["Body"].read() == b"written by the catalog"
    again = gw.s3.head_object(Bucket=gw.bucket, Key=p + "data.parquet")
    assert again["ETag"] == got["ETag"]
    with pytest.raises(ClientError) as e:
        gw.get(p + "data.parquet", IfNoneMatch=got["ETag"])
    assert error_of(e)[0] == 304
    assert [o["Key"] for o in gw.s3.list_objects_v2(Bucket=gw.bucket, Prefix=p)["Contents"]] == [
        p + "data.parquet"
    ]


# --- 12. access keys (these go through the catalog database: both backends)


def test_unsigned_and_badly_signed_requests_are_refused(floe):
    gateway = Gateway(floe)
    gateway.put("auth/obj", b"secret stuff")

    for url in (f"{gateway.endpoint}/demo/auth/obj", f"{gateway.endpoint}/", f"{gateway.endpoint}/demo"):
        r = requests.get(url, timeout=30)
        assert r.status_code == 403, (url, r.status_code, r.text)
        assert xml_code(r) == "AccessDenied"
    r = requests.put(f"{gateway.endpoint}/demo/auth/unsigned", data=b"x", timeout=30)
    assert r.status_code == 403
    assert not os.path.exists(os.path.join(gateway.root, "auth", "unsigned"))

    wrong = client_for(gateway.endpoint, gateway.key_id, "x" * 40)
    with pytest.raises(ClientError) as e:
        wrong.get_object(Bucket="demo", Key="auth/obj")
    assert error_of(e) == (403, "SignatureDoesNotMatch")

    for unknown in ("FLA" + "A" * 17, "AKIAIOSFODNN7EXAMPLE", "FLS1AAAA"):
        stranger = client_for(gateway.endpoint, unknown, gateway.secret)
        with pytest.raises(ClientError) as e:
            stranger.get_object(Bucket="demo", Key="auth/obj")
        assert error_of(e) == (403, "InvalidAccessKeyId"), unknown

    # A well-formed scoped key id for this warehouse, signed without the server's key.
    payload = (
        uuid.UUID(gateway.warehouse["id"]).bytes
        + struct.pack(">q", int(time.time()) + 3600)
        + b"\x00"
        + b"auth/"
    )
    forged = "FLS1" + base64.urlsafe_b64encode(payload).decode().rstrip("=")
    with pytest.raises(ClientError) as e:
        client_for(gateway.endpoint, forged, gateway.secret).get_object(Bucket="demo", Key="auth/obj")
    assert error_of(e) == (403, "SignatureDoesNotMatch")

    # A tampered body under a valid signature.
    r = gateway.signed("PUT", "/demo/auth/tampered", body=b"signed body")
    assert r.status_code == 200
    aws = AWSRequest(method="PUT", url=f"{gateway.endpoint}/demo/auth/tampered", data=b"signed body")
    S3SigV4Auth(Credentials(gateway.key_id, gateway.secret), "s3", REGION).add_auth(aws)
    r = requests.put(aws.url, data=b"evil body!!", headers=dict(aws.headers.items()), timeout=30)
    assert r.status_code in (400, 403), r.text
    assert gateway.body("auth/tampered") == b"signed body"


def test_key_listing_expiry_and_revocation(floe):
    warehouse = warehouse_of(floe.base, "demo")
    wid = warehouse["id"]
    keys_url = f"{floe.base}/management/v1/warehouses/{wid}/access-keys"

    short = create_key(floe.base, wid, description="short-lived", **{"expires-in-seconds": 3})
    minted = time.monotonic()
    s3 = client_for(floe.s3_endpoint, short["access-key-id"], short["secret-access-key"])
    assert s3.head_bucket(Bucket="demo")["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "expires-at" in short

    keep = create_key(floe.base, wid, description="revoke me")
    kept = client_for(floe.s3_endpoint, keep["access-key-id"], keep["secret-access-key"])
    kept.put_object(Bucket="demo", Key="keys/obj", Body=b"x")
    assert kept.get_object(Bucket="demo", Key="keys/obj")["Body"].read() == b"x"

    listed = requests.get(keys_url, timeout=30)
    assert listed.status_code == 200
    by_id = {k["access-key-id"]: k for k in listed.json()["access-keys"]}
    assert by_id[short["access-key-id"]]["description"] == "short-lived"
    assert "expires-at" in by_id[short["access-key-id"]]
    assert by_id[keep["access-key-id"]]["description"] == "revoke me"
    assert "expires-at" not in by_id[keep["access-key-id"]]
    assert "secret-access-key" not in listed.text and keep["secret-access-key"] not in listed.text

    # Expired once its time, counted from before the answer that minted it, has passed.
    time.sleep(max(0.0, minted + 3.2 - time.monotonic()))
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="demo")
    assert error_of(e)[0] == 403
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="demo", Key="keys/obj")
    assert error_of(e)[0] == 403

    presigned = kept.generate_presigned_url(
        "get_object", Params={"Bucket": "demo", "Key": "keys/obj"}, ExpiresIn=300
    )
    assert requests.get(presigned, timeout=30).content == b"x"

    r = requests.delete(f"{keys_url}/{keep['access-key-id']}", timeout=30)
    assert r.status_code == 204, r.text
    assert requests.get(presigned, timeout=30).status_code == 403
    with pytest.raises(ClientError) as e:
        kept.get_object(Bucket="demo", Key="keys/obj")
    assert error_of(e)[0] == 403
    with pytest.raises(ClientError) as e:
        kept.put_object(Bucket="demo", Key="keys/after-revoke", Body=b"x")
    assert error_of(e)[0] == 403
    assert not os.path.exists(os.path.join(warehouse["storage-profile"]["root"], "keys", "after-revoke"))
    listed = requests.get(keys_url, timeout=30).json()["access-keys"]
    assert keep["access-key-id"] not in [k["access-key-id"] for k in listed]

    # Deleting it again: it is gone.
    r = requests.delete(f"{keys_url}/{keep['access-key-id']}", timeout=30)
    assert r.status_code == 404, r.text


def test_bad_access_key_requests_are_refused(floe):
    wid = warehouse_of(floe.base, "demo")["id"]
    url = f"{floe.base}/management/v1/warehouses/{wid}/access-keys"
    for body in ({"expires-in-seconds": 0}, {"description": "bad\ncontrol"}, {"unknown-field": 1}):
        r = requests.post(url, json=body, timeout=30)
        assert r.status_code == 400, (body, r.text)
    r = requests.post(
        f"{floe.base}/management/v1/warehouses/{uuid.uuid4()}/access-keys", json={}, timeout=30
    )
    assert r.status_code == 404, r.text


def test_a_key_opens_only_its_own_warehouse(floe):
    demo = Gateway(floe)
    demo.put("mine/obj", b"demo's")
    other_root = os.path.join(floe.dir, "data", "warehouses", "other-root")
    r = requests.post(
        f"{floe.base}/management/v1/warehouses",
        json={"name": "other", "storage-profile": {"type": "local", "root": other_root}},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    other_key = create_key(floe.base, r.json()["id"])
    assert other_key["bucket"] == "other"
    other = client_for(floe.s3_endpoint, other_key["access-key-id"], other_key["secret-access-key"])

    # Each key works on its own bucket...
    other.put_object(Bucket="other", Key="theirs/obj", Body=b"other's")
    assert other.get_object(Bucket="other", Key="theirs/obj")["Body"].read() == b"other's"
    assert [b["Name"] for b in other.list_buckets()["Buckets"]] == ["other"]
    with open(os.path.join(other_root, "theirs", "obj"), "rb") as f:
        assert f.read() == b"other's"

    # ...and on no other.
    with pytest.raises(ClientError) as e:
        demo.s3.get_object(Bucket="other", Key="theirs/obj")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        demo.s3.put_object(Bucket="other", Key="theirs/obj", Body=b"overwrite")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        demo.s3.list_objects_v2(Bucket="other")
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        demo.s3.head_bucket(Bucket="other")
    assert error_of(e)[0] == 403
    with pytest.raises(ClientError) as e:
        other.get_object(Bucket="demo", Key="mine/obj")
    assert error_of(e) == (403, "AccessDenied")
    # Copies stay inside one bucket.
    with pytest.raises(ClientError) as e:
        demo.s3.copy_object(Bucket="demo", Key="mine/stolen", CopySource={"Bucket": "other", "Key": "theirs/obj"})
    assert error_of(e) == (403, "AccessDenied")
    with pytest.raises(ClientError) as e:
        other.copy_object(Bucket="other", Key="theirs/stolen", CopySource={"Bucket": "demo", "Key": "mine/obj"})
    assert error_of(e) == (403, "AccessDenied")

    with open(os.path.join(other_root, "theirs", "obj"), "rb") as f:
        assert f.read() == b"other's"
    assert not os.path.exists(os.path.join(demo.root, "mine", "stolen"))
    assert not os.path.exists(os.path.join(other_root, "theirs", "stolen"))


def test_deleting_a_warehouse_closes_its_bucket(floe):
    root = os.path.join(floe.dir, "data", "warehouses", "short-lived-root")
    r = requests.post(
        f"{floe.base}/management/v1/warehouses",
        json={"name": "brief", "storage-profile": {"type": "local", "root": root}},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    issued = create_key(floe.base, wid)
    s3 = client_for(floe.s3_endpoint, issued["access-key-id"], issued["secret-access-key"])
    s3.put_object(Bucket="brief", Key="obj", Body=b"x")
    assert s3.get_object(Bucket="brief", Key="obj")["Body"].read() == b"x"

    r = requests.delete(f"{floe.base}/management/v1/warehouses/{wid}", timeout=30)
    assert r.status_code == 204, r.text

    def refused():
        try:
            s3.get_object(Bucket="brief", Key="obj")
        except ClientError as e:
            return error_of_response(e)[0]
        return None

    # Caches may hold a warehouse or key for a few seconds; revocation must happen within them.
    deadline = time.time() + 12
    status = refused()
    while status is None and time.time() < deadline:
        time.sleep(0.5)
        status = refused()
    assert status in (403, 404)

    # A new warehouse of the same name is not opened by the old warehouse's key.
    r = requests.post(
        f"{floe.base}/management/v1/warehouses",
        json={"name": "brief", "storage-profile": {"type": "local", "root": root}},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert refused() in (403, 404)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="brief", Key="planted", Body=b"x")
    assert error_of(e)[0] in (403, 404)
    assert not os.path.exists(os.path.join(root, "planted"))


def test_warehouse_names_of_other_catalogs_get_a_bucket_safe_gateway_bucket(floe, tmp_path):
    """`Sales_Prod` (what Lakekeeper or Polaris users name warehouses) is not an S3 bucket name;
    served by the gateway it gets a bucket-safe one of its own, which engines and boto3 use."""
    name = "Sales_Prod"
    r = requests.post(
        f"{floe.base}/management/v1/warehouses",
        json={
            "name": name,
            "storage-profile": {
                "type": "local",
                "root": os.path.join(floe.dir, "data", "warehouses", "sales-prod"),
                "s3-gateway": True,
            },
        },
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse=name)
    catalog.create_namespace("ns")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    table = catalog.create_table("ns.t", schema=schema)
    table.append(pa.Table.from_pydict({"id": [1, 2]}, schema=schema))
    location = catalog.load_table("ns.t").location()
    assert location.startswith("s3://sales-prod-"), location
    assert catalog.load_table("ns.t").scan().to_arrow().num_rows == 2
    bucket = location.removeprefix("s3://").split("/")[0]
    key = create_key(floe.base, warehouse_of(floe.base, name)["id"])
    assert key["bucket"] == bucket
    s3 = client_for(floe.s3_endpoint, key["access-key-id"], key["secret-access-key"])
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="ns/")
    assert any(o["Key"].endswith(".metadata.json") for o in listed.get("Contents", []))
    # The name itself is not a bucket of the gateway.
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket=name.lower(), Prefix="ns/")
