"""What a slow or greedy client may hold of each listener (catalog and S3 gateway): a client that
sends half a request header, or sits idle on a keep-alive connection, is closed after the header
timeout; past the connection cap, new connections get 503 with `Retry-After` at once; requests
that waited too long to be read (the server behind) get 503 instead of a late answer."""

import json
import os
import resource
import select
import signal
import socket
import time

import pytest
import requests

from conftest import Floe

# Long enough that opening a few hundred connections on a busy machine takes well under it.
HEADER_TIMEOUT_MS = 3000


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
    poller = select.poll()
    poller.register(socks[0], select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _closed_by_server(sock, wait):
    """Whether the server closes `sock` within `wait` seconds (EOF or reset)."""
    sock.settimeout(wait)
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def _answered(sock, wait):
    """Whether the server answered or closed `sock` within `wait` seconds (nothing is read)."""
    sock.settimeout(wait)
    try:
        sock.recv(1, socket.MSG_PEEK)
        return True
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
    slow, opened = [], []
    for _ in range(200):
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        slow.append(sock)
        opened.append(time.monotonic())
    # An idle keep-alive connection after one answered request is held to the same timer.
    idle = socket.create_connection(address, timeout=5)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    # (The gateway answers it as an S3 request for a bucket named `health`: any answer will do.)
    assert idle.recv(4096).startswith(b"HTTP/1.1 "), "the idle connection's request was answered"
    opened.append(time.monotonic())
    everything = slow + [idle]
    started = time.monotonic()
    # Nothing is closed early: every connection younger than half the timeout is still open
    # (and most are, or the test would prove nothing).
    young = [s for s, at in zip(everything, opened) if started - at < HEADER_TIMEOUT_MS / 2000]
    closed_early = [s for s in young if _readable([s])]
    assert not closed_early, f"{len(closed_early)} connections closed before the header timeout"
    assert len(young) > 150, f"only {len(young)} connections opened within half the timeout"
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
        deadline = time.monotonic() + 15
        while len(held) < 5:
            sock = socket.create_connection(address, timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # headers not finished
            held.append(sock)
            if len(held) == 5:
                time.sleep(0.2)  # the listener has accepted them (they hold every slot)
                # A connection the server still counted when these came (the fixture's own,
                # closing) makes one of them the sixth, refused: replace those.
                kept = []
                for sock in held:
                    if _answered(sock, 0.05):
                        sock.close()
                    else:
                        kept.append(sock)
                held = kept
            assert time.monotonic() < deadline, "could not hold five connections"
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


def _partial_post(address, path, declared=1000, sent=b'{"namespace": ['):
    """A request whose body stops after a few bytes (of `declared`)."""
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {declared}\r\n\r\n".encode()
        + sent
    )
    return sock


def _answer_or_close(sock, wait):
    """The status line the server answers `sock` with within `wait` s, '' when it closes it,
    None when neither happens."""
    sock.settimeout(wait)
    try:
        data = sock.recv(4096)
    except (ConnectionResetError, BrokenPipeError):
        return ""
    except socket.timeout:
        return None
    return data.split(b"\r\n", 1)[0].decode() if data else ""


def _prefix(server):
    config = requests.get(f"{server.uri}/v1/config?warehouse=demo", timeout=10)
    assert config.status_code == 200, config.text
    return config.json()["overrides"]["prefix"]


def test_in_flight_cap_and_request_time_on_the_catalog():
    server = Floe(
        "sqlite",
        env={
            "FLOE__SERVER__LIMITS__MAX_REQUESTS_IN_FLIGHT": "3",
            "FLOE__SERVER__LIMITS__REQUEST_TIMEOUT_MS": "1500",
            "FLOE__SERVER__LIMITS__BODY_TIMEOUT_MS": "20000",
        },
    )
    try:
        address = _host_port(server.base)
        path = f"/catalog/v1/{_prefix(server)}/namespaces"
        stalled = [_partial_post(address, path) for _ in range(3)]
        time.sleep(0.3)  # all three are being read by their handlers: every slot is taken
        started = time.monotonic()
        refused = requests.get(f"{server.uri}/v1/config?warehouse=demo", timeout=5)
        assert time.monotonic() - started < 1.0, "queued instead of refused"
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "ServiceUnavailableException"
        # Health and readiness are not counted: a prober still sees a live server.
        assert requests.get(f"{server.base}/health", timeout=5).status_code == 200
        assert requests.get(f"{server.base}/ready", timeout=5).status_code == 200
        # The stalled requests end at the request timeout with 503, which frees their slots.
        for sock in stalled:
            status = _answer_or_close(sock, 5)
            assert status is not None and status.startswith("HTTP/1.1 503"), status
            sock.close()
        assert time.monotonic() - started < 4
        again = requests.get(f"{server.uri}/v1/config?warehouse=demo", timeout=5)
        assert again.status_code == 200, again.text
        # Nothing was created by the cut-off requests.
        listed = requests.get(f"{server.base}{path}", timeout=5).json()
        assert listed["namespaces"] == []
    finally:
        server.stop()


@pytest.mark.parametrize("listener", ["catalog", "gateway"])
def test_a_stalled_request_body_fails_after_the_body_timeout(listener):
    server = Floe(
        "sqlite",
        env={
            "FLOE__SERVER__LIMITS__BODY_TIMEOUT_MS": "700",
            "FLOE__GATEWAY__LIMITS__BODY_TIMEOUT_MS": "700",
        },
    )
    try:
        if listener == "catalog":
            sock = _partial_post(_host_port(server.base), f"/catalog/v1/{_prefix(server)}/namespaces")
        else:
            sock = _presigned_partial_put(server, "limits/stalled.bin")
        # Not answered before the body timeout: the server is reading the body.
        started = time.monotonic()
        assert _answer_or_close(sock, 0.3) is None
        status = _answer_or_close(sock, 6)
        elapsed = time.monotonic() - started
        sock.close()
        # Answered with a client error or closed, within a few body timeouts; never left hanging.
        assert status is not None, "the stalled request was still open after 6 s"
        assert status == "" or status.split()[1][0] == "4" or status.startswith("HTTP/1.1 503"), status
        assert elapsed < 4, f"took {elapsed:.1f} s"
    finally:
        server.stop()


def _presigned_partial_put(server, key, declared=100_000, sent=b"x" * 100):
    """A presigned PUT (so the gateway accepts it and reads its body) whose body stalls."""
    from test_s3_gateway import client_for, create_key, warehouse_of

    demo = warehouse_of(server.base, "demo")
    made = create_key(server.base, demo["id"], description="limits")
    s3 = client_for(server.s3_endpoint, made["access-key-id"], made["secret-access-key"])
    url = s3.generate_presigned_url("put_object", Params={"Bucket": "demo", "Key": key}, ExpiresIn=300)
    host, port = _host_port(server.s3_endpoint)
    target = url.split(f"{host}:{port}", 1)[1]
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(
        f"PUT {target} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-length: {declared}\r\n\r\n".encode() + sent
    )
    return sock


def test_past_the_in_flight_cap_the_gateway_says_slow_down():
    server = Floe("sqlite", env={"FLOE__GATEWAY__LIMITS__MAX_REQUESTS_IN_FLIGHT": "2"})
    try:
        stalled = [_presigned_partial_put(server, f"limits/s{i}") for i in range(2)]
        time.sleep(0.3)
        for sock in stalled:
            assert _answer_or_close(sock, 0.1) is None, "the stalled PUT was answered: it holds no slot"
        response = requests.get(f"{server.s3_endpoint}/demo?list-type=2", timeout=5)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert "<Code>SlowDown</Code>" in response.text
        for sock in stalled:
            sock.close()
    finally:
        server.stop()


def _send(sock, method, path, host="x"):
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


def _response(sock, wait=10):
    """One whole HTTP/1.1 response on `sock`: (status, headers, body)."""
    sock.settimeout(wait)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a body"
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def _wait_stopped(pid, timeout=10):
    """Waits until every thread of `pid` is stopped: SIGSTOP returns before the last thread has
    stopped, and one still running could read a request sent in that moment."""
    deadline = time.monotonic() + timeout
    while True:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    states.append(f.read().rsplit(")", 1)[1].split()[0])
            except FileNotFoundError:
                continue
        if states and all(state in ("T", "t") for state in states):
            return
        assert time.monotonic() < deadline, f"the server did not stop: {states}"
        time.sleep(0.01)


def test_requests_that_waited_too_long_to_be_read_are_refused_and_health_still_answers():
    """Overload queues requests outside the process (connections not yet accepted, requests not
    yet read); a request found to have waited longer than `max_queue_ms` is refused with 503 at
    once instead of served late, on both listeners, while `/health` is served. The server is
    made to fall behind by stopping it (SIGSTOP) while clients send, exactly where a real
    overload would leave their requests."""
    env = {}
    for listener in ["SERVER", "GATEWAY"]:
        env[f"FLOE__{listener}__LIMITS__MAX_QUEUE_MS"] = "300"
    server = Floe("sqlite", env=env)
    from test_s3_gateway import client_for, create_key, warehouse_of

    try:
        catalog = _host_port(server.base)
        gateway = _host_port(server.s3_endpoint)
        config = "/catalog/v1/config?warehouse=demo"
        demo = warehouse_of(server.base, "demo")
        made = create_key(server.base, demo["id"], description="queue")
        s3 = client_for(server.s3_endpoint, made["access-key-id"], made["secret-access-key"])
        s3.put_object(Bucket="demo", Key="queue/object.txt", Body=b"kept")
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "demo", "Key": "queue/object.txt"}, ExpiresIn=300)
        s3_host = f"{gateway[0]}:{gateway[1]}"
        get_object = url.split(s3_host, 1)[1]

        # Keep-alive connections that have been served once: their next requests will wait in
        # their sockets' buffers.
        warm = [socket.create_connection(catalog, timeout=10) for _ in range(6)]
        warm_s3 = [socket.create_connection(gateway, timeout=10) for _ in range(3)]
        for sock in warm:
            _send(sock, "GET", config)
            assert _response(sock)[0] == 200
        for sock in warm_s3:
            _send(sock, "GET", get_object, host=s3_host)
            status, _, body = _response(sock)
            assert (status, body) == (200, b"kept")

        os.kill(server.process.pid, signal.SIGSTOP)
        _wait_stopped(server.process.pid)
        try:
            for sock in warm:
                _send(sock, "GET", config)
            for sock in warm_s3:
                _send(sock, "GET", get_object, host=s3_host)
            # New connections too: they wait in the accept backlog.
            fresh = [socket.create_connection(catalog, timeout=10) for _ in range(4)]
            for sock in fresh:
                _send(sock, "GET", config)
            probe = socket.create_connection(catalog, timeout=10)
            _send(probe, "GET", "/health")
            time.sleep(1.0)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)

        started = time.monotonic()
        status, _, body = _response(probe)
        assert status == 200 and json.loads(body)["status"] == "ok", body
        for sock in warm + fresh:
            status, headers, body = _response(sock)
            assert status == 503, body
            assert headers["retry-after"] == "1"
            assert json.loads(body)["error"]["type"] == "ServiceUnavailableException"
        for sock in warm_s3:
            status, headers, body = _response(sock)
            assert status == 503, body
            assert headers["retry-after"] == "1"
            assert b"<Code>SlowDown</Code>" in body
        assert time.monotonic() - started < 5, "the refusals were not quick"

        # The server has caught up: the same connections are served again at once.
        for sock in warm + fresh:
            _send(sock, "GET", config)
            assert _response(sock)[0] == 200
        for sock in warm_s3:
            _send(sock, "GET", get_object, host=s3_host)
            status, _, body = _response(sock)
            assert (status, body) == (200, b"kept")
        for sock in warm + warm_s3 + fresh + [probe]:
            sock.close()
    finally:
        server.stop()
