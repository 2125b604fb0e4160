"""The OpenFGA backend (`authz.backend = "openfga"`) when OpenFGA cannot answer.

No OpenFGA server can run here (no package ships one), so what these tests prove is the failure
side, against real sockets: an OpenFGA that refuses connections, and one that accepts them and
never answers. Either way every request that needs a decision answers 503 within the configured
time (never a silent allow, never a 500), readiness reports it, the pre-shared key never reaches the
log, and `floe migrate` / `floe serve` refuse clearly when they cannot write the model. What the
backend sends OpenFGA is checked against OpenFGA's own engine in `cargo test`
(src/authz/openfga.rs)."""

import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import ADMIN_URL, FLOE_BIN, Floe, _free_port, authn_config

API_TOKEN = "fga-preshared-key-4f9d0c"


def openfga_config(idp, endpoint, pinned=True, timeout_ms=300, retries=1, extra=""):
    ids = (
        'store_id = "01JSTORE0000000000000000000"\n'
        'authorization_model_id = "01JMODEL0000000000000000000"\n'
        if pinned
        else ""
    )
    return (
        authn_config(idp, extra_authn='admins = ["idp~breakglass", "idp~minter"]')
        + f"""
[authz]
backend = "openfga"

[authz.openfga]
endpoint = "{endpoint}"
api_token = "{API_TOKEN}"
timeout_ms = {timeout_ms}
retries = {retries}
{ids}
{extra}
"""
    )


class BlackHole:
    """A TCP server that accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.stopped = True
        self.sock.close()
        for conn in self.held:
            conn.close()


def _call(floe, method, path, token, **kwargs):
    started = time.monotonic()
    response = requests.request(
        method, f"{floe.base}{path}", headers={"authorization": f"Bearer {token}"}, timeout=30, **kwargs
    )
    return response, time.monotonic() - started


def _assert_refused_503(response, elapsed, bound):
    assert response.status_code == 503, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] == 503
    assert error["type"] == "ServiceUnavailableException", error
    # The caller learns what is unavailable and that it may retry.
    assert error["message"].startswith("service unavailable: the authorization service (OpenFGA)"), error
    assert "error id" in error["message"] and API_TOKEN not in error["message"]
    assert elapsed < bound, f"answered after {elapsed:.2f} s (bound {bound} s)"


def _demo_prefix(floe):
    """The catalog prefix of the bootstrapped `demo` warehouse (its id), read from the database:
    with OpenFGA away, no API call that would tell it can answer."""
    sql = "SELECT id FROM warehouses WHERE name = 'demo'"
    if floe.database:
        base = ADMIN_URL.rsplit("/", 1)[0]
        return subprocess.run(
            ["psql", f"{base}/{floe.database}", "-XAtqc", sql], check=True, capture_output=True, text=True
        ).stdout.strip()
    with sqlite3.connect(os.path.join(floe.dir, "data", "catalog.db")) as db:
        return str(uuid.UUID(bytes=db.execute(sql).fetchone()[0]))


def _requests_needing_decisions(floe, token):
    """Catalog and management requests of an admin (who may do all of them), each needing an
    authorization decision."""
    ns = f"fga_{os.getpid()}"
    prefix = _demo_prefix(floe)
    return [
        ("GET", "/catalog/v1/config?warehouse=demo", {}),
        ("GET", f"/catalog/v1/{prefix}/namespaces", {}),
        ("POST", f"/catalog/v1/{prefix}/namespaces", {"json": {"namespace": [ns]}}),
        ("GET", f"/catalog/v1/{prefix}/namespaces/{ns}/tables", {}),
        ("GET", "/management/v1/warehouses", {}),
        ("GET", "/management/v1/projects", {}),
        ("POST", "/management/v1/roles", {"json": {"name": f"r{os.getpid()}"}}),
    ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_unreachable_openfga_gives_503_never_an_allow(idp, backend, tmp_path):
    closed = _free_port()  # nothing listens there
    log = tmp_path / "floe.log"
    floe = Floe(
        backend,
        config=openfga_config(idp, f"http://127.0.0.1:{closed}"),
        token=idp.token(),
        log_path=str(log),
        env={"FLOE__LOG__LEVEL": "trace"},
    )
    try:
        admin = idp.user_token("breakglass")
        # timeout 0.3 s, one retry: a refused connection fails fast; well under 3 s in any case.
        for method, path, kwargs in _requests_needing_decisions(floe, admin):
            response, elapsed = _call(floe, method, path, admin, **kwargs)
            _assert_refused_503(response, elapsed, 3.0)
        # A user with no rights at all is not let through either, and learns nothing.
        nobody = idp.user_token("nobody")
        response, elapsed = _call(floe, "GET", f"/catalog/v1/{_demo_prefix(floe)}/namespaces", nobody)
        _assert_refused_503(response, elapsed, 3.0)
        # Readiness says so (a load balancer stops sending it requests); liveness is not in
        # question (a restart would not bring OpenFGA back).
        ready = requests.get(f"{floe.base}/ready", timeout=10)
        assert ready.status_code == 503, ready.text
        assert requests.get(f"{floe.base}/health", timeout=10).status_code == 200
        # Nothing was created while OpenFGA was away: the namespace POST above was refused
        # before any write, and so was the role.
        if backend == "postgres":
            base = ADMIN_URL.rsplit("/", 1)[0]
            for table in ["namespaces", "roles"]:
                count = subprocess.run(
                    ["psql", f"{base}/{floe.database}", "-XAtqc", f"SELECT count(*) FROM {table}"],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                assert count == "0", (table, count)
    finally:
        floe.stop()
    text = log.read_text(errors="replace")
    assert "OpenFGA" in text, "the log says what failed"
    assert API_TOKEN not in text, "the OpenFGA key reached the log"
    assert idp.user_token("breakglass")[:40] not in text


def test_an_openfga_that_never_answers_times_out_to_503(idp):
    hole = BlackHole()
    floe = Floe(
        "sqlite",
        config=openfga_config(idp, f"http://127.0.0.1:{hole.port}", timeout_ms=400, retries=1),
        token=idp.token(),
    )
    try:
        admin = idp.user_token("breakglass")
        # Two attempts of at most 0.4 s each plus a short backoff: bounded, not hung.
        for method, path, kwargs in _requests_needing_decisions(floe, admin)[:3]:
            response, elapsed = _call(floe, method, path, admin, **kwargs)
            _assert_refused_503(response, elapsed, 3.0)
            assert elapsed >= 0.4, f"answered in {elapsed:.2f} s: was OpenFGA asked at all?"
        assert requests.get(f"{floe.base}/ready", timeout=10).status_code == 503
        assert hole.held, "Floe never tried to reach OpenFGA"
    finally:
        floe.stop()
        hole.close()


def _run_floe(args, config, env_extra=None, timeout=60):
    work = tempfile.mkdtemp(prefix="floe-fga-")
    path = os.path.join(work, "floe.toml")
    with open(path, "w") as f:
        f.write(config)
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env["FLOE__DATABASE__URL"] = f"sqlite://{work}/catalog.db"
    env.update(env_extra or {})
    return subprocess.run(
        [FLOE_BIN, *args, "--config", path],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_migrate_and_serve_refuse_clearly_when_the_model_cannot_be_written(idp):
    closed = _free_port()
    config = openfga_config(idp, f"http://127.0.0.1:{closed}", pinned=False)
    started = time.monotonic()
    migrate = _run_floe(["migrate"], config)
    assert migrate.returncode != 0
    assert "OpenFGA" in migrate.stderr and f"127.0.0.1:{closed}" in migrate.stderr, migrate.stderr
    assert time.monotonic() - started < 20
    assert API_TOKEN not in migrate.stderr + migrate.stdout
    # A pinned store and model are checked to be there.
    pinned = _run_floe(["migrate"], openfga_config(idp, f"http://127.0.0.1:{closed}"))
    assert pinned.returncode != 0 and "OpenFGA" in pinned.stderr, pinned.stderr
    # `serve` on an embedded database migrates at start, so it needs OpenFGA too, and says so.
    serve = _run_floe(["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0"], config)
    assert serve.returncode != 0
    assert "OpenFGA" in serve.stderr, serve.stderr
    # Without migrations at start and no model recorded, it names the command to run.
    serve = _run_floe(
        ["serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0"],
        config,
        env_extra={"FLOE__DATABASE__AUTO_MIGRATE": "false"},
    )
    assert serve.returncode != 0
    assert "floe migrate" in serve.stderr, serve.stderr


def test_openfga_settings_are_checked_at_start(idp):
    for bad, message in [
        ('endpoint = "openfga:8081"', "must start with http"),
        ('endpoint = "http://x:1"\nstore_id = "s"', "together"),
    ]:
        config = authn_config(idp) + f'\n[authz]\nbackend = "openfga"\n\n[authz.openfga]\n{bad}\n'
        result = _run_floe(["serve"], config)
        assert result.returncode != 0
        assert message in result.stderr, result.stderr
    # Without identity providers there is nobody to authorize.
    result = _run_floe(["serve"], '[authz]\nbackend = "openfga"\n')
    assert result.returncode != 0 and "authn.providers" in result.stderr, result.stderr
