"""Operator comfort: `floe --version`, `floe config check`, `floe health`, the start-up log's
configuration lines (secrets redacted), and what a taken port's error says."""

import os
import re
import socket
import subprocess
import tempfile

import pytest

from conftest import ANSI, FLOE_BIN, Floe

SECRET = "s3cr3t-SENTINEL-value"
KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="  # 32 bytes, base64


def cargo_version():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "Cargo.toml")) as f:
        return re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)


def run(*args, env=None, timeout=60):
    full = dict(os.environ)
    full.pop("RUST_LOG", None)
    full.update(env or {})
    return subprocess.run([FLOE_BIN, *args], capture_output=True, text=True, env=full, timeout=timeout)


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"floe {cargo_version()}"


def test_config_check_validates_without_starting(tmp_path):
    config = tmp_path / "floe.toml"
    config.write_text('[server]\nlisten = "0.0.0.0:8181"\n[database]\nmax_connections = 4\n')
    env = {
        "FLOE__DATABASE__URL": f"postgres://floe:{SECRET}@db.invalid/floe",
        "FLOE__SECRETS__ENCRYPTION_KEY": KEY,
        "FLOE__EVENTS__NATS__TOKEN": SECRET,
    }
    ok = run("--config", str(config), "config", "check", env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("the configuration is valid")
    assert "listen=0.0.0.0:8181" in ok.stdout and "max_connections=4" in ok.stdout
    # Nothing was opened: the database host does not exist.
    assert SECRET not in ok.stdout + ok.stderr and KEY not in ok.stdout
    assert "encryption_key=<redacted>" in ok.stdout
    for bad_env, names in [
        ({"FLOE__SERVER__LISTN": "x"}, "server.listn"),
        ({"FLOE__DATABASE__MAX_CONNECTIONS": "0"}, "database.max_connections"),
        ({"FLOE__GATEWAY__LISTEN": "nine-thousand"}, "gateway.listen"),
        ({"FLOE__SECRETS__ENCRYPTION_KEY": "short"}, "secrets.encryption_key"),
    ]:
        bad = run("--config", str(config), "config", "check", env=bad_env)
        assert bad.returncode == 2, bad_env
        assert bad.stderr.startswith("floe: ") and names in bad.stderr, bad.stderr
    config.write_text("[servr]\nlisten = 1\n")
    typo = run("--config", str(config), "config", "check")
    assert typo.returncode == 2 and "servr" in typo.stderr, typo.stderr


def test_health_and_the_start_up_log(tmp_path):
    log = tmp_path / "floe.log"
    server = Floe(
        "sqlite",
        log_path=str(log),
        env={
            "FLOE__LOG__LEVEL": "info",
            "FLOE__SECRETS__ENCRYPTION_KEY": KEY,
            "FLOE__EVENTS__NATS__TOKEN": SECRET,
            "FLOE__SECRETS__VAULT__TOKEN": SECRET,
        },
    )
    try:
        healthy = run("health", "--endpoint", server.base)
        assert healthy.returncode == 0 and healthy.stdout.strip() == "ok", healthy.stderr
        ready = run("health", "--ready", "--endpoint", server.base)
        assert ready.returncode == 0 and ready.stdout.strip() == "ready", ready.stderr
        # Without --endpoint: the configuration's server.listen.
        port = server.base.rsplit(":", 1)[1]
        found = run("health", env={"FLOE__SERVER__LISTEN": f"0.0.0.0:{port}"})
        assert found.returncode == 0 and found.stdout.strip() == "ok", found.stderr
    finally:
        server.stop()
    text = ANSI.sub("", log.read_text())
    assert f'starting floe version="{cargo_version()}"' in text
    sections = re.findall(r"config (\w+): ", text)
    assert {"server", "database", "gateway", "secrets", "authn", "authz", "events", "metrics"} <= set(sections)
    assert "encryption_key=<redacted>" in text and "nats.token=<redacted>" in text
    assert SECRET not in text and KEY not in text
    assert "Config {" not in text, "the configuration is logged as lines, not a Debug dump"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = run("health", "--endpoint", f"http://127.0.0.1:{port}", "--timeout", "2")
    assert down.returncode == 1 and down.stderr.startswith("floe: "), down.stderr


def test_a_taken_gateway_port_says_how_to_move_or_disable_the_gateway():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with tempfile.TemporaryDirectory() as data:
            out = run(
                "serve", "--listen", "127.0.0.1:0", "--s3-listen", f"127.0.0.1:{port}", "--data-dir", data,
                env={"FLOE__LOG__LEVEL": "warn"},
            )
    assert out.returncode == 1
    message = out.stderr.strip().splitlines()[-1]
    assert message.startswith(f"floe: the S3 gateway cannot listen on 127.0.0.1:{port}"), out.stderr
    for hint in ["--s3-listen", "FLOE__GATEWAY__LISTEN", "MinIO", "FLOE__GATEWAY__ENABLED=false"]:
        assert hint in message, message
