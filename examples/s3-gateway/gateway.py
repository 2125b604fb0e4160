"""Floe's built-in S3 gateway with boto3: an admin access key for the `demo` warehouse, then
listing, reading and writing the files of an Iceberg table as S3 objects, and revoking the key.

Needs a running `floe serve` (FLOE_ENDPOINT, default http://127.0.0.1:8181) with its gateway on
(the default) and the packages of ../requirements.txt. Re-running it starts the table over.
"""

import io
import json
import os
import urllib.error
import urllib.request
import uuid

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config
from botocore.exceptions import ClientError
from pyiceberg.catalog import load_catalog

ENDPOINT = os.environ.get("FLOE_ENDPOINT", "http://127.0.0.1:8181").rstrip("/")
WAREHOUSE = os.environ.get("FLOE_WAREHOUSE", "demo")
REGION = os.environ.get("FLOE_S3_REGION", "us-east-1")  # the gateway's `gateway.region`


def api(method, path, body=None):
    """A call of Floe's management API; returns (status, JSON body)."""
    request = urllib.request.Request(
        f"{ENDPOINT}/management/v1{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def split(location):
    """(bucket, key) of an s3:// location."""
    assert location.startswith("s3://"), location
    bucket, _, key = location[len("s3://") :].partition("/")
    return bucket, key


# 1. A table to look at, written by PyIceberg (which gets its own table-scoped key from the catalog).
catalog = load_catalog("floe", type="rest", uri=f"{ENDPOINT}/catalog", warehouse=WAREHOUSE)
catalog.create_namespace_if_not_exists("gateway_demo")
if catalog.table_exists("gateway_demo.events"):
    catalog.drop_table("gateway_demo.events")
schema = pa.schema([("id", pa.int64()), ("kind", pa.string())])
table = catalog.create_table("gateway_demo.events", schema=schema)
table.append(pa.table({"id": [1, 2], "kind": ["click", "view"]}, schema=schema))
print("table location:", table.location())

# 2. An admin key for the whole warehouse (management API). The secret is shown only once.
status, listing = api("GET", "/warehouses")
assert status == 200, listing
(warehouse_id,) = [w["id"] for w in listing["warehouses"] if w["name"] == WAREHOUSE]
status, key = api(
    "POST",
    f"/warehouses/{warehouse_id}/access-keys",
    {"description": "examples/s3-gateway", "expires-in-seconds": 3600},
)
assert status == 201, key
print(f"access key {key['access-key-id']} for bucket {key['bucket']} at {key['endpoint']}")

s3 = boto3.client(
    "s3",
    endpoint_url=key["endpoint"],
    aws_access_key_id=key["access-key-id"],
    aws_secret_access_key=key["secret-access-key"],
    region_name=REGION,
    config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
)
bucket, folder = split(table.location())
assert bucket == key["bucket"] == WAREHOUSE, (bucket, key["bucket"])

# 3. Buckets are warehouses; a table is a folder of objects.
print("buckets:", [b["Name"] for b in s3.list_buckets()["Buckets"]])
listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{folder}/")
for obj in listed.get("Contents", []):
    print(f"  {obj['Size']:>8}  {obj['Key']}")

# 4. Read the table's current metadata file: the same JSON the catalog serves.
_, metadata_key = split(table.metadata_location)
metadata = json.loads(s3.get_object(Bucket=bucket, Key=metadata_key)["Body"].read())
assert metadata["table-uuid"] == str(table.metadata.table_uuid), metadata["table-uuid"]
print(
    f"metadata file {metadata_key}: format-version {metadata['format-version']}, "
    f"{len(metadata['snapshots'])} snapshot(s), current {metadata['current-snapshot-id']}"
)

# 5. Write a Parquet file into the table's data folder over S3, then add it to the table: PyIceberg
#    reads its footer and commits a snapshot that references it.
buffer = io.BytesIO()
pq.write_table(pa.table({"id": [3, 4, 5], "kind": ["buy", "click", "buy"]}, schema=schema), buffer)
data_key = f"{folder}/data/imported-{uuid.uuid4()}.parquet"
put = s3.put_object(Bucket=bucket, Key=data_key, Body=buffer.getvalue())
print(f"put {data_key} (ETag {put['ETag']})")
print("head:", s3.head_object(Bucket=bucket, Key=data_key)["ContentLength"], "bytes")
table.add_files([f"s3://{bucket}/{data_key}"])
ids = sorted(catalog.load_table("gateway_demo.events").scan().to_arrow()["id"].to_pylist())
print("table ids after add_files:", ids)
assert ids == [1, 2, 3, 4, 5], ids

# 6. A presigned URL: any HTTP client can GET the object with it, no key needed.
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": data_key}, ExpiresIn=300)
with urllib.request.urlopen(url, timeout=30) as response:
    assert response.read() == buffer.getvalue()
print("presigned GET returned the same bytes")

# 7. Revoke the key: the gateway refuses it from then on.
status, _ = api("DELETE", f"/warehouses/{warehouse_id}/access-keys/{key['access-key-id']}")
assert status == 204, status
try:
    s3.head_object(Bucket=bucket, Key=data_key)
    raise SystemExit("the revoked key still works")
except ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
print(f"revoked {key['access-key-id']}: the gateway now answers 403")
