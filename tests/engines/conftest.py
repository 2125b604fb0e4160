"""Fixtures for the engine suites: a real `floe` binary on a free port, on the embedded default
(SQLite) and on PostgreSQL, each on fresh state."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

FLOE_BIN = os.environ.get("FLOE_BIN", "target/debug/floe")
# Every server's log (its stderr) is kept here, one file per server, and shown when a test fails.
LOG_DIR = tempfile.mkdtemp(prefix="floe-test-logs-")
_SERVER_LOGS = []
# No test runs longer than this (seconds): a hang fails the test instead of stalling CI.
TEST_TIMEOUT = int(os.environ.get("FLOE_TEST_TIMEOUT", "900"))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _bounded_and_logged(request):
    """Fails a test that runs past TEST_TIMEOUT, and prints the tail of the log of every server it
    started when it fails."""
    import signal

    def expire(signum, frame):
        raise TimeoutError(f"the test ran longer than {TEST_TIMEOUT} s (FLOE_TEST_TIMEOUT)")

    first = len(_SERVER_LOGS)
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    failed = any(getattr(request.node, f"rep_{w}", None) is not None and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call"))
    if failed:
        for path in _SERVER_LOGS[first:]:
            try:
                with open(path, errors="replace") as f:
                    tail = f.readlines()[-80:]
            except OSError:
                continue
            print(f"\n--- last lines of {path} ---\n" + "".join(tail))
ADMIN_URL = os.environ.get(
    "FLOE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
TEST_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def _psql(sql):
    subprocess.run(["psql", ADMIN_URL, "-XAtqc", sql], check=True, capture_output=True)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(process, matches, timeout):
    """The first line of `process`'s stdout for which `matches` is true, waited for at most
    `timeout` seconds (None if the process exits or stays silent); the rest of its stdout is
    drained in the background so the pipe never fills."""
    import queue
    import threading

    lines = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if line is None:
            return None
        line = ANSI.sub("", line)
        if matches(line):
            return line


def read_uri(process, timeout):
    """The catalog URI a starting `floe serve` prints once it listens (None after `timeout`)."""
    line = first_line(process, lambda l: re.search(r'uri="([^"]+)"', l), timeout)
    return re.search(r'uri="([^"]+)"', line).group(1) if line else None


class Floe:
    """A running floe process.

    `log_path`, when given, receives the server's log (its stderr) instead of it being dropped;
    `env` adds or overrides environment variables of the process (e.g. `FLOE__LOG__LEVEL`)."""

    def __init__(self, backend, log_path=None, env=None, config=None, token=None, data_dir=None):
        self.backend = backend
        self.dir = tempfile.mkdtemp(prefix="floe-engines-")
        self.log_path = log_path
        # A bearer token for the fixture's own management calls, when authentication is on.
        self.token = token
        overrides = dict(env or {})
        env = dict(os.environ)
        # Warnings, and the one line each table drop ends in (see `purge_outcomes`).
        env["FLOE__LOG__LEVEL"] = "warn,floe::purge=info"
        self.database = None
        if backend == "postgres":
            self.database = "floe_t_" + uuid.uuid4().hex
            _psql(f"CREATE DATABASE {self.database}")
            base = ADMIN_URL.rsplit("/", 1)[0]
            env["FLOE__DATABASE__URL"] = f"{base}/{self.database}"
            env["FLOE__DATABASE__AUTO_MIGRATE"] = "true"
            env["FLOE__BOOTSTRAP__AUTO"] = "true"
            env["FLOE__SECRETS__ENCRYPTION_KEY"] = TEST_KEY
        # RUST_LOG would take precedence over the configured level (and hide the purge lines
        # tests wait for).
        env.pop("RUST_LOG", None)
        env.update(overrides)
        if not log_path:
            log_path = os.path.join(LOG_DIR, f"floe-{uuid.uuid4().hex[:12]}.log")
        self.log_file = log_path
        _SERVER_LOGS.append(log_path)
        self._log = open(log_path, "ab")
        extra = []
        if config is not None:
            config_path = os.path.join(self.dir, "floe.toml")
            with open(config_path, "w") as f:
                f.write(config)
            extra = ["--config", config_path]
        self.process = subprocess.Popen(
            [
                FLOE_BIN,
                "serve",
                *extra,
                "--listen",
                "127.0.0.1:0",
                "--s3-listen",
                "127.0.0.1:0",
                "--data-dir",
                data_dir or os.path.join(self.dir, "data"),
            ],
            stdout=subprocess.PIPE,
            stderr=self._log if self._log else subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self.uri = read_uri(self.process, timeout=120)
        if self.uri is None:
            self.process.kill()
            raise RuntimeError(f"floe did not start within 120 s (exit code {self.process.poll()})")
        self.base = self.uri.rsplit("/catalog", 1)[0]
        try:
            info = json.loads(
                urllib.request.urlopen(
                    urllib.request.Request(f"{self.base}/management/v1/info", headers=self._auth())
                ).read()
            )
        except urllib.error.HTTPError as e:
            if e.code != 401 or config is None:
                raise
            # Authentication is on and the fixture has no token that server accepts.
            info = {}
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
                headers={"content-type": "application/json", **self._auth()},
                method="POST",
            )
            urllib.request.urlopen(request).read()
            self._file_warehouse = True
        return name

    def purge_outcomes(self, table_uuid, count=1, timeout=20):
        """Waits until `count` drops of the table with `table_uuid` have settled what happens to
        its files (each ends in one `purge finished` line of the server's log) and returns their
        outcomes in order: `deleted`, or `kept: ...` with the reason."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_file, errors="replace") as f:
                text = ANSI.sub("", f.read())
            outcomes = [
                m.group(1)
                for line in text.splitlines()
                if "purge finished" in line and str(table_uuid) in line
                for m in [re.search(r'outcome="([^"]*)"', line)]
                if m
            ]
            if len(outcomes) >= count:
                return outcomes
            assert time.monotonic() < deadline, f"only {len(outcomes)} of {count} purges of {table_uuid} finished"
            time.sleep(0.05)

    def _auth(self):
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        if self._log:
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.database:
            _psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def floe(request):
    server = Floe(request.param)
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# moto: a local S3 and STS for S3 warehouses

MOTO_SERVER = os.path.join(os.path.dirname(sys.executable), "moto_server")
MOTO_REGION = "us-east-1"
# The role S3 warehouses assume for vended credentials (moto's default account).
MOTO_ROLE_ARN = "arn:aws:iam::123456789012:role/floe"
# The admin key of each running moto, by URL (see `moto`).
_MOTO_ADMIN = {}
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_client(service, moto_url, key_id, secret, session_token=None):
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        endpoint_url=moto_url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        aws_session_token=session_token,
        region_name=MOTO_REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _start_moto(log):
    """Starts moto_server on a free port; returns (process, url)."""
    for _attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 30
        while time.time() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).read()
                return process, url
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        # The port was taken in between, or moto did not come up: try again.
        process.kill()
        process.wait()
    log.seek(0)
    pytest.fail(f"moto_server did not start: {log.read().decode(errors='replace')}", pytrace=False)


@pytest.fixture(scope="session")
def moto():
    """A moto server (S3, STS, IAM) on a free port for the whole session; yields its URL.

    moto runs with its IAM authentication on: every request must be signed by a key moto knows
    (an IAM user's key, or an STS session key with its session token), and the signature is
    checked. So what reaches moto with a bad signature, a wrong secret or a missing session token
    fails as it would on S3. (moto does not evaluate STS session policies: the scope of a vended
    key can only be tested on Floe's own gateway.) The admin key it is set up with is what
    `moto_s3` uses; the role `MOTO_ROLE_ARN` may do anything on S3.

    A missing moto_server is an error, not a reason to skip."""
    if not os.access(MOTO_SERVER, os.X_OK):
        pytest.fail(
            f"moto_server not found at {MOTO_SERVER}: install moto[server] "
            "(tests/engines/requirements.txt) into the Python running the tests",
            pytrace=False,
        )
    log = tempfile.TemporaryFile()
    process, url = _start_moto(log)
    try:
        # Set up with authentication still off, then turn it on for every later request.
        iam = _moto_client("iam", url, "testing", "testing")
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=_ALLOW_ALL)
        admin = iam.create_access_key(UserName="admin")["AccessKey"]
        iam.create_role(
            RoleName=MOTO_ROLE_ARN.rsplit("/", 1)[1],
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )
        iam.put_role_policy(
            RoleName=MOTO_ROLE_ARN.rsplit("/", 1)[1], PolicyName="s3", PolicyDocument=_ALLOW_ALL
        )
        request = urllib.request.Request(
            f"{url}/moto-api/reset-auth",
            data=b"0",
            headers={"content-type": "text/plain"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()
        _MOTO_ADMIN[url] = (admin["AccessKeyId"], admin["SecretAccessKey"])
        # Authentication is on: a made-up key no longer opens anything.
        import botocore.exceptions

        try:
            _moto_client("s3", url, "AKIAIOSFODNN7EXAMPLE", "x" * 40).list_buckets()
        except botocore.exceptions.ClientError:
            pass
        else:
            pytest.fail("moto accepted an unknown key: its authentication is not on", pytrace=False)
        yield url
    finally:
        _MOTO_ADMIN.pop(url, None)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def moto_client(moto_url, service="s3", key_id=None, secret=None, session_token=None):
    """A boto3 client on moto, with the admin key unless a key is given."""
    if key_id is None:
        key_id, secret = _MOTO_ADMIN[moto_url]
    return _moto_client(service, moto_url, key_id, secret, session_token)


def moto_s3(moto_url, **key):
    return moto_client(moto_url, "s3", **key)


def create_moto_warehouse(floe, moto_url, sts=True, name=None, endpoint=None, gateway=False):
    """Creates a bucket in moto, an IAM user of its own with a fresh key, and an S3 warehouse of
    `floe` on that bucket (key prefix `wh`) storing that key, with STS vending (`MOTO_ROLE_ARN`)
    when `sts`, served by Floe's S3 gateway when `gateway`; Floe reaches the store at `endpoint`
    (default: moto itself). Returns a dict: name, id, bucket, access-key-id, secret-access-key,
    response (the 201 body)."""
    suffix = uuid.uuid4().hex[:12]
    bucket = f"lake-{suffix}"
    name = name or f"moto-{suffix}"
    iam = moto_client(moto_url, "iam")
    user = f"floe-{suffix}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="all", PolicyDocument=_ALLOW_ALL)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    moto_s3(moto_url).create_bucket(Bucket=bucket)
    profile = {
        "type": "s3",
        "bucket": bucket,
        "key-prefix": "wh",
        "region": MOTO_REGION,
        "endpoint": endpoint or moto_url,
        "path-style-access": True,
    }
    if gateway:
        # Floe's S3 gateway in front of the bucket: engines get the gateway and Floe's keys.
        profile["s3-gateway"] = True
    if sts:
        profile.update(
            {"sts-enabled": True, "sts-role-arn": MOTO_ROLE_ARN, "sts-endpoint": moto_url}
        )
    body = json.dumps(
        {
            "name": name,
            "storage-profile": profile,
            "storage-credential": {
                "type": "s3-access-key",
                "access-key-id": key["AccessKeyId"],
                "secret-access-key": key["SecretAccessKey"],
            },
        }
    ).encode()
    request = urllib.request.Request(
        f"{floe.base}/management/v1/warehouses",
        data=body,
        headers={"content-type": "application/json", **floe._auth()},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise AssertionError(f"creating warehouse {name}: {e.code} {e.read()!r}") from None
    assert status == 201, (status, answer)
    return {
        "name": name,
        "id": answer["id"],
        "bucket": bucket,
        "access-key-id": key["AccessKeyId"],
        "secret-access-key": key["SecretAccessKey"],
        "response": answer,
    }


# ---------------------------------------------------------------------------------------------
# A real OpenID provider (panva's oidc-provider, tests/oidc) for the authentication suites

OIDC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "oidc")
# Clients of the test IdP: engines send their id and secret in the form body.
OIDC_CLIENTS = [
    {"client_id": "spark-etl", "client_secret": "spark-secret", "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "pyiceberg", "client_secret": "pyiceberg-secret", "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "duckdb", "client_secret": "duckdb-secret", "token_endpoint_auth_method": "client_secret_post"},
    {"client_id": "minter", "client_secret": "minter-secret", "token_endpoint_auth_method": "client_secret_post"},
]
OIDC_AUDIENCES = [
    "urn:floe:catalog",
    "urn:floe:catalog:ps256",
    "urn:floe:catalog:es256",
    "urn:floe:catalog:eddsa",
]


class Idp:
    """A running oidc-provider. `token()` gets a client-credentials token; `user_token()` mints one
    for a named user through the provider's test-only grant."""

    def __init__(self):
        node_modules = os.path.join(OIDC_DIR, "node_modules", "oidc-provider")
        if not os.path.isdir(node_modules):
            pytest.fail(
                f"{node_modules} is missing: run `npm ci` in {OIDC_DIR} (scripts/test does)",
                pytrace=False,
            )
        # Started again when it stays silent: once in CI, on a loaded machine, a first start
        # printed nothing for 60 s (and as a session fixture, that failed 86 tests).
        for attempt in range(3):
            log_path = os.path.join(LOG_DIR, f"oidc-{uuid.uuid4().hex[:12]}.log")
            _SERVER_LOGS.append(log_path)
            with open(log_path, "ab") as log:
                self.process = subprocess.Popen(
                    ["node", "server.mjs", json.dumps(OIDC_CLIENTS)],
                    cwd=OIDC_DIR,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            line = first_line(self.process, lambda l: l.startswith("{"), timeout=60)
            if line:
                break
            self.process.kill()
            code = self.process.wait()
            print(f"the OpenID provider did not start within 60 s (exit {code}; attempt {attempt + 1})")
        else:
            raise RuntimeError(f"the OpenID provider did not start within 60 s, three times (see {log_path})")
        self.issuer = json.loads(line)["issuer"]
        self.token_url = f"{self.issuer}/token"

    def _post(self, form):
        import requests

        response = requests.post(self.token_url, data=form, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def token(self, client_id="minter", scope="catalog"):
        secret = next(c["client_secret"] for c in OIDC_CLIENTS if c["client_id"] == client_id)
        return self._post(
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": scope}
        )

    def user_token(self, sub, name=None, email=None, resource=None, ttl=None, claims=None, scope="catalog"):
        form = {
            "grant_type": "urn:floe:test:user-token",
            "client_id": "minter",
            "client_secret": "minter-secret",
            "sub": sub,
            "scope": scope,
        }
        for key, value in (("name", name), ("email", email), ("resource", resource), ("ttl", ttl)):
            if value is not None:
                form[key] = str(value)
        if claims is not None:
            form["claims"] = json.dumps(claims)
        return self._post(form)

    def jwks_hits(self):
        return self.stats()["jwks"]

    def stats(self):
        return json.loads(urllib.request.urlopen(f"{self.issuer}/test/stats").read())

    def jwks(self):
        return json.loads(urllib.request.urlopen(f"{self.issuer}/jwks").read())

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def authn_config(idp, provider_id="idp", extra_authn="", extra_provider="", kind="oidc"):
    """Floe's TOML for one provider of `idp`."""
    audiences = ", ".join(f'"{a}"' for a in OIDC_AUDIENCES)
    return f"""
[authn]
{extra_authn}

[[authn.providers]]
id = "{provider_id}"
kind = "{kind}"
issuer = "{idp.issuer}"
audiences = [{audiences}]
{extra_provider}
"""


@pytest.fixture(scope="session")
def idp():
    server = Idp()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def secure_floe(request, idp):
    """Floe with authentication on (the `idp` provider), on each backend. `token` is a machine
    token of the `minter` client."""
    token = idp.token()
    server = Floe(
        request.param,
        config=authn_config(
            idp, extra_authn='admins = ["idp~breakglass", "idp~minter"]', extra_provider='roles-claim = "groups"'
        ),
        token=token,
    )
    yield server
    server.stop()


def management(floe, method, path, token, **kwargs):
    """A management API call with a bearer token."""
    import requests

    return requests.request(
        method,
        f"{floe.base}/management/v1{path}",
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def warehouse_id(floe, token, name="demo"):
    response = management(floe, "GET", "/warehouses", token)
    assert response.status_code == 200, response.text
    return next(w["id"] for w in response.json()["warehouses"] if w["name"] == name)


def grant(floe, token, object_type, object_id, subject, relation, revoke=False):
    """Grants (or revokes) `relation` on `object_type`/`object_id` to `subject` (`user:...` or
    `role:...`) as the holder of `token`; fails the test unless it lands."""
    entry = [{"subject": subject, "relation": relation}]
    body = {"revoke": entry} if revoke else {"grant": entry}
    response = management(
        floe, "POST", f"/grants/{object_type}/{urllib.parse.quote(object_id, safe='')}", token, json=body
    )
    assert response.status_code == 200, response.text
    return response.json()


def duckdb_with_iceberg():
    """A DuckDB connection with the pinned iceberg, httpfs and avro extensions loaded from their
    wheels (never downloaded)."""
    import duckdb
    from duckdb_extensions import import_extension

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    for extension in ("httpfs", "avro", "iceberg"):
        import_extension(extension, con=con)
        con.execute(f"LOAD {extension}")
    return con


def list_tasks(url, timeout=60):
    """The tasks a `GET .../tasks?...` lists. A 503 is Floe shedding a request it could not read
    soon (a loaded machine: engines, tests and Floe share two cores in CI); like any client, this
    comes back after `Retry-After`, for up to `timeout` seconds. Any other failure fails the test
    with the answer's body."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(url, timeout=30)
        if r.status_code == 503 and time.monotonic() < deadline:
            time.sleep(float(r.headers.get("Retry-After", "1")))
            continue
        assert r.status_code == 200, r.text
        return r.json()["tasks"]
