"""Purge speed: files deleted per second by a purge task, on local disk and through the S3 path
(an S3 warehouse on moto_server). Starts its own Floe (FLOE_BIN, release build recommended) and
moto; needs the engines venv (boto3, moto, requests):

    FLOE_BIN=target/release/floe ~/.cache/floe-ci/venv-*/bin/python benches/purge.py [--files N]

For each store: creates a table, puts N small files in its folder, drops it with purge, and times
the purge task from its creation to its end (`created-at` .. `updated-at` of the task), as the
server recorded them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import boto3
import requests
from botocore.config import Config

from benchutil import free_port, wait_http

FLOE_BIN = os.environ.get("FLOE_BIN", "target/release/floe")
MOTO_SERVER = os.path.join(os.path.dirname(sys.executable), "moto_server")
SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}


def purge_rate(base, warehouse, put_files, files):
    """Creates table `bench.t<N>` in `warehouse`, fills it with `put_files(location, files)`,
    drops it with purge and returns (files deleted, seconds)."""
    prefix = requests.get(f"{base}/catalog/v1/config", params={"warehouse": warehouse}).json()["overrides"]["prefix"]
    catalog = f"{base}/catalog/v1/{prefix}"
    requests.post(f"{catalog}/namespaces", json={"namespace": ["bench"]})
    name = f"t{int(time.time() * 1000)}"
    r = requests.post(f"{catalog}/namespaces/bench/tables", json={"name": name, "schema": SCHEMA})
    r.raise_for_status()
    table = r.json()["metadata"]
    put_files(table["location"], files)
    r = requests.delete(f"{catalog}/namespaces/bench/tables/{name}", params={"purgeRequested": "true"})
    assert r.status_code == 204, r.text
    warehouse_id = prefix.split("@")[0]
    manage = f"{base}/management/v1/warehouses/{warehouse_id}"
    deadline = time.time() + 600
    while True:
        tasks = requests.get(f"{manage}/tasks", params={"target": f"table:{table['table-uuid']}"}).json()["tasks"]
        if tasks and tasks[0]["status"] in ("succeeded", "failed"):
            task = tasks[0]
            break
        assert time.time() < deadline, "purge did not finish"
        time.sleep(0.05)
    assert task["status"] == "succeeded", task
    return task["progress"]["deleted"], (task["updated-at"] - task["created-at"]) / 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="floe-purge-bench-")
    moto_port, floe_port = free_port(), free_port()
    moto_url = f"http://127.0.0.1:{moto_port}"
    moto = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, FLOE__LOG__LEVEL="warn")
    floe = subprocess.Popen([FLOE_BIN, "serve", "--listen", f"127.0.0.1:{floe_port}", "--s3-listen", "127.0.0.1:0",
                             "--data-dir", os.path.join(work, "data")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{floe_port}"
    try:
        wait_http(f"{moto_url}/moto-api/")
        wait_http(f"{base}/health")
        # Local disk: the embedded `demo` warehouse, whose folder is <data>/warehouses/demo.
        def put_local(location, n):
            key = location.split("s3://demo/", 1)[1]
            folder = os.path.join(work, "data", "warehouses", "demo", key, "data")
            for i in range(n):
                sub = os.path.join(folder, f"part={i % 100}")
                os.makedirs(sub, exist_ok=True)
                with open(os.path.join(sub, f"{i}.parquet"), "wb") as f:
                    f.write(b"x")

        deleted, seconds = purge_rate(base, "demo", put_local, args.files)
        results = {"local": {"files": deleted, "seconds": seconds, "files_per_second": round(deleted / seconds)}}

        # S3: a bucket on moto, reached by Floe through the AWS SDK.
        s3 = boto3.client("s3", endpoint_url=moto_url, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="purge-bench")
        r = requests.post(f"{base}/management/v1/warehouses", json={
            "name": "s3bench",
            "storage-profile": {"type": "s3", "bucket": "purge-bench", "key-prefix": "wh", "region": "us-east-1",
                                "endpoint": moto_url, "path-style-access": True},
            "storage-credential": {"type": "s3-access-key", "access-key-id": "k", "secret-access-key": "s"},
        })
        r.raise_for_status()

        def put_s3(location, n):
            key = location.split("s3://purge-bench/", 1)[1]
            for i in range(n):
                s3.put_object(Bucket="purge-bench", Key=f"{key}/data/part={i % 100}/{i}.parquet", Body=b"x")

        s3_files = max(1000, args.files // 10)
        deleted, seconds = purge_rate(base, "s3bench", put_s3, s3_files)
        results["s3 (moto)"] = {"files": deleted, "seconds": seconds, "files_per_second": round(deleted / seconds)}
        print(json.dumps(results, indent=2))
    finally:
        floe.terminate()
        moto.terminate()
        floe.wait()
        moto.wait()


if __name__ == "__main__":
    main()
