"""Fixtures for the engine suites: a real `floe` binary on a free port, on the embedded default
(SQLite) and on PostgreSQL, each on fresh state."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import uuid

import pytest

FLOE_BIN = os.environ.get("FLOE_BIN", "target/debug/floe")
ADMIN_URL = os.environ.get(
    "FLOE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
TEST_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def _psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-XAtqc", sql], check=True, capture_output=True)


class Floe:
    """A running floe process."""

    def __init__(self, backend):
        self.backend = backend
        self.dir = tempfile.mkdtemp(prefix="floe-engines-")
        env = dict(os.environ)
        env["FLOE__LOG__LEVEL"] = "warn"
        self.database = None
        if backend == "postgres":
            self.database = "floe_t_" + uuid.uuid4().hex
            _psql(f"CREATE DATABASE {self.database}")
            base = ADMIN_URL.rsplit("/", 1)[0]
            env["FLOE__DATABASE__URL"] = f"{base}/{self.database}"
            env["FLOE__DATABASE__AUTO_MIGRATE"] = "true"
            env["FLOE__BOOTSTRAP__AUTO"] = "true"
            env["FLOE__SECRETS__ENCRYPTION_KEY"] = TEST_KEY
        self.process = subprocess.Popen(
            [
                FLOE_BIN,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--s3-listen",
                "127.0.0.1:0",
                "--data-dir",
                os.path.join(self.dir, "data"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.uri = None
        for line in self.process.stdout:
            match = re.search(r'uri="([^"]+)"', line)
            if match:
                self.uri = match.group(1)
                break
        if self.uri is None:
            raise RuntimeError(f"floe did not start (exit code {self.process.poll()})")
        self.base = self.uri.rsplit("/catalog", 1)[0]
        info = json.loads(urllib.request.urlopen(f"{self.base}/management/v1/info").read())
        # The built-in S3 gateway's URL (enabled by default).
        self.s3_endpoint = info.get("s3-endpoint")

    def file_warehouse(self):
        """The name of a plain local warehouse (`file://` locations, no S3 gateway), created on
        first use: Spark here has no S3 client (no AWS SDK jar can be fetched), so its suite uses
        this one while the other engines use the gateway-served `demo`."""
        name = "files"
        if not getattr(self, "_file_warehouse", False):
            body = json.dumps(
                {
                    "name": name,
                    "storage-profile": {
                        "type": "local",
                        "root": os.path.join(self.dir, "data", "warehouses", name),
                    },
                }
            ).encode()
            request = urllib.request.Request(
                f"{self.base}/management/v1/warehouses",
                data=body,
                headers={"content-type": "application/json"},
                method="POST",
            )
            urllib.request.urlopen(request).read()
            self._file_warehouse = True
        return name

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.database:
            _psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def floe(request):
    server = Floe(request.param)
    yield server
    server.stop()
