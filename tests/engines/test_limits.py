"""What a slow or greedy client may hold of each listener (catalog and S3 gateway): a client that
sends half a request header, or sits idle on a keep-alive connection, is closed after the header
timeout; past the connection cap, new connections get 503 with `Retry-After` at once."""

import resource
import select
import socket
import time

import pytest
import requests

from conftest import Floe

HEADER_TIMEOUT_MS = 800


def _raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def _host_port(url):
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


def _readable(socks):
    """Whether the first of `socks` has something to read now (data, EOF or a reset)."""
    ready, _, _ = select.select(socks, [], [], 0)
    return bool(ready)


def _closed_by_server(sock, wait):
    """Whether the server closes `sock` within `wait` seconds (EOF or reset)."""
    sock.settimeout(wait)
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


@pytest.fixture
def limited_floe():
    env = {}
    for listener in ["SERVER", "GATEWAY"]:
        env[f"FLOE__{listener}__LIMITS__HEADER_TIMEOUT_MS"] = str(HEADER_TIMEOUT_MS)
        env[f"FLOE__{listener}__LIMITS__MAX_CONNECTIONS"] = "300"
    server = Floe("sqlite", env=env)
    yield server
    server.stop()


@pytest.mark.parametrize("listener", ["catalog", "gateway"])
def test_slow_and_idle_clients_are_closed_after_the_header_timeout(limited_floe, listener):
    _raise_fd_limit(4096)
    url = limited_floe.base if listener == "catalog" else limited_floe.s3_endpoint
    address = _host_port(url)
    slow = []
    for _ in range(200):
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        slow.append(sock)
    # An idle keep-alive connection after one answered request is held to the same timer.
    idle = socket.create_connection(address, timeout=5)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    # (The gateway answers it as an S3 request for a bucket named `health`: any answer will do.)
    assert idle.recv(4096).startswith(b"HTTP/1.1 "), "the idle connection's request was answered"
    everything = slow + [idle]
    started = time.monotonic()
    still_open = [s for s in everything if not _readable([s])]
    assert len(still_open) > 150, "closed before the timeout: the test would prove nothing"
    # Every one is closed by the server within a few header timeouts.
    deadline = started + HEADER_TIMEOUT_MS / 1000 * 3 + 2
    remaining = list(everything)
    while remaining and time.monotonic() < deadline:
        remaining = [s for s in remaining if not (_readable([s]) and _closed_by_server(s, 1))]
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    for s in everything:
        s.close()
    assert remaining == [], f"{len(remaining)} connections still open {elapsed:.1f} s later"
    # The listener still serves.
    if listener == "catalog":
        assert requests.get(f"{url}/health", timeout=5).status_code == 200


def test_past_the_connection_cap_new_connections_get_503_with_retry_after():
    server = Floe(
        "sqlite",
        env={
            "FLOE__SERVER__LIMITS__MAX_CONNECTIONS": "5",
            "FLOE__SERVER__LIMITS__HEADER_TIMEOUT_MS": "1500",
        },
    )
    try:
        address = _host_port(server.base)
        held = []
        for _ in range(5):
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers not finished
            held.append(sock)
        time.sleep(0.2)  # the listener has accepted them (they hold every slot)
        started = time.monotonic()
        response = requests.get(f"{server.base}/health", timeout=5)
        assert time.monotonic() - started < 1.0, "queued instead of refused"
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "ServiceUnavailableException"
        # Once the slow ones are closed by the header timeout, the slots are free again.
        for sock in held:
            assert _closed_by_server(sock, 5)
            sock.close()
        time.sleep(0.1)
        assert requests.get(f"{server.base}/health", timeout=5).status_code == 200
    finally:
        server.stop()
