"""An S3 store that stalls or fails, behind a proxy the test controls in front of moto: Floe
answers 503 (the store did not answer in time) or 502 (the store's own error, named) within its
configured store timeouts, never hangs, never 500, writes nothing half-way, and works again as
soon as the store does."""

import socket
import threading
import time
import uuid

import pytest
import requests

from conftest import Floe, create_moto_warehouse

SCHEMA = {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}
ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)


class FaultyProxy:
    """Forwards TCP to `target` ("pass"), holds requests without answering ("stall"), or answers
    every request with S3's 500 InternalError ("error")."""

    def __init__(self, target):
        host, port = target.split("://", 1)[1].rsplit(":", 1)
        self.target = (host, int(port))
        self.mode = "pass"
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.open = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.open.append(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client, mode):
        if mode == "stall":
            return  # held open, never answered
        if mode == "error":
            try:
                buffer = b""
                while True:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                    while b"\r\n\r\n" in buffer:
                        head, rest = buffer.split(b"\r\n\r\n", 1)
                        length = 0
                        for line in head.split(b"\r\n")[1:]:
                            name, _, value = line.partition(b":")
                            if name.strip().lower() == b"content-length":
                                length = int(value.strip())
                        while len(rest) < length:
                            more = client.recv(65536)
                            if not more:
                                return
                            rest += more
                        buffer = rest[length:]
                        client.sendall(
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/xml\r\n"
                            + f"content-length: {len(ERROR_BODY)}\r\n\r\n".encode()
                            + ERROR_BODY
                        )
            except OSError:
                return
        upstream = socket.create_connection(self.target)
        self.open.append(upstream)

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        pump(upstream, client)

    def set(self, mode):
        """Switches mode; connections opened before are cut, so the next call sees it."""
        self.mode = mode
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.open = []

    def close(self):
        self.sock.close()
        self.set("pass")


@pytest.fixture
def faulty(moto):
    proxy = FaultyProxy(moto)
    floe = Floe(
        "sqlite",
        env={
            "FLOE__STORAGE__S3__CONNECT_TIMEOUT_MS": "500",
            "FLOE__STORAGE__S3__ATTEMPT_TIMEOUT_MS": "700",
            "FLOE__STORAGE__S3__OPERATION_TIMEOUT_MS": "2000",
            "FLOE__STORAGE__S3__MAX_ATTEMPTS": "2",
        },
    )
    try:
        warehouse = create_moto_warehouse(floe, moto, sts=False, endpoint=proxy.url)
        prefix = requests.get(f"{floe.uri}/v1/config?warehouse={warehouse['name']}", timeout=30).json()["overrides"]["prefix"]
        catalog = f"{floe.uri}/v1/{prefix}"
        assert requests.post(f"{catalog}/namespaces", json={"namespace": ["f"]}, timeout=30).status_code == 200
        yield proxy, catalog
    finally:
        floe.stop()
        proxy.close()


def _create(catalog, name):
    started = time.monotonic()
    r = requests.post(f"{catalog}/namespaces/f/tables", json={"name": name, "schema": SCHEMA}, timeout=60)
    return r, time.monotonic() - started


def test_a_stalled_store_gives_503_in_bounded_time_and_recovers(faulty):
    proxy, catalog = faulty
    ok, _ = _create(catalog, "before")
    assert ok.status_code == 200, ok.text
    proxy.set("stall")
    r, elapsed = _create(catalog, "during")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["type"] == "ServiceUnavailableException"
    assert "did not answer in time" in error["message"] or "could not be reached" in error["message"], error
    # The store timeouts are 0.7 s per attempt, 2 s per call: a bounded wait, not a hang.
    assert elapsed < 6, f"answered after {elapsed:.1f} s"
    # A commit waits the same bounded time and lands nothing.
    commit = requests.post(
        f"{catalog}/namespaces/f/tables/before",
        json={"requirements": [], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]},
        timeout=60,
    )
    assert commit.status_code == 503, commit.text
    proxy.set("pass")
    assert requests.get(f"{catalog}/namespaces/f/tables/during", timeout=30).status_code == 404
    loaded = requests.get(f"{catalog}/namespaces/f/tables/before", timeout=30)
    assert loaded.status_code == 200 and "k" not in loaded.json()["metadata"].get("properties", {})
    # Back as soon as the store is.
    again, _ = _create(catalog, "after")
    assert again.status_code == 200, again.text


def test_a_failing_store_gives_502_naming_its_error(faulty):
    proxy, catalog = faulty
    proxy.set("error")
    r, elapsed = _create(catalog, f"t_{uuid.uuid4().hex[:6]}")
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["type"] == "BadGatewayException"
    assert "InternalError" in error["message"] and "We encountered an internal error" in error["message"], error
    assert elapsed < 6
    proxy.set("pass")
    again, _ = _create(catalog, "after_error")
    assert again.status_code == 200, again.text
