"""PostgreSQL stopped and started under a running Floe: while it is down, requests answer 503
naming the database (never a 500, never a hang past the pool's acquire timeout) and readiness
says so; once it is back, Floe recovers on its own, with nothing lost.

The test runs a PostgreSQL cluster of its own (initdb into a temporary folder, on a free port), so
stopping it disturbs nothing else. Needs PostgreSQL's server binaries (scripts/ensure-postgres
installs them from Debian when missing)."""

import glob
import os
import shutil
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import TEST_KEY, Floe, _free_port


def _bindir():
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return candidate
    return None


class Cluster:
    def __init__(self):
        self.bindir = _bindir()
        if self.bindir is None:
            pytest.skip("no PostgreSQL server binaries (initdb) here")
        self.dir = tempfile.mkdtemp(prefix="floe-pg-")
        os.chmod(self.dir, 0o777)
        self.data = os.path.join(self.dir, "data")
        self.port = _free_port()
        self.as_user = []
        if os.geteuid() == 0:
            subprocess.run(["id", "postgres"], check=True, capture_output=True)
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool, *args):
        result = subprocess.run([*self.as_user, os.path.join(self.bindir, tool), *args], capture_output=True, text=True)
        assert result.returncode == 0, (tool, result.stdout, result.stderr)

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.dir, "log"), "-w", "start")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def remove(self):
        subprocess.run([*self.as_user, os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_postgres_down_gives_503_and_floe_recovers_on_its_own():
    cluster = Cluster()
    floe = None
    try:
        floe = Floe(
            "sqlite",  # the fixture's own PostgreSQL setup is not used: the URL below wins
            env={
                "FLOE__DATABASE__URL": cluster.url,
                "FLOE__DATABASE__AUTO_MIGRATE": "true",
                "FLOE__BOOTSTRAP__AUTO": "true",
                "FLOE__SECRETS__ENCRYPTION_KEY": TEST_KEY,
                "FLOE__DATABASE__ACQUIRE_TIMEOUT_MS": "1000",
            },
        )
        prefix = requests.get(f"{floe.uri}/v1/config?warehouse=demo", timeout=30).json()["overrides"]["prefix"]
        catalog = f"{floe.uri}/v1/{prefix}"
        assert requests.post(f"{catalog}/namespaces", json={"namespace": ["before"]}, timeout=30).status_code == 200

        cluster.stop()
        for method, path, body in [
            ("GET", "/namespaces", None),
            ("POST", "/namespaces", {"namespace": ["during"]}),
            ("GET", "/namespaces/before", None),
        ]:
            started = time.monotonic()
            r = requests.request(method, f"{catalog}{path}", json=body, timeout=30)
            elapsed = time.monotonic() - started
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            error = r.json()["error"]
            assert error["type"] == "ServiceUnavailableException"
            assert "database" in error["message"], error
            assert elapsed < 5, f"{method} {path} answered after {elapsed:.1f} s"
        assert requests.get(f"{floe.base}/ready", timeout=10).status_code == 503
        assert requests.get(f"{floe.base}/health", timeout=10).status_code == 200

        cluster.start()
        back = time.monotonic()
        while True:
            r = requests.get(f"{catalog}/namespaces", timeout=30)
            if r.status_code == 200:
                break
            assert r.status_code == 503, r.text
            assert time.monotonic() - back < 15, "Floe did not recover within 15 s of PostgreSQL's return"
            time.sleep(0.05)
        recovery = time.monotonic() - back
        print(f"\nrecovered {recovery:.2f} s after PostgreSQL accepted connections again")
        assert {tuple(n) for n in r.json()["namespaces"]} == {("before",)}, r.json()
        assert requests.post(f"{catalog}/namespaces", json={"namespace": ["after"]}, timeout=30).status_code == 200
        assert requests.get(f"{floe.base}/ready", timeout=10).status_code == 200
    finally:
        if floe:
            floe.stop()
        cluster.remove()
