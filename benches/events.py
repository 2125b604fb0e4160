#!/usr/bin/env python3
"""Change events: commit throughput with events on (NATS JetStream) and off, in the same run,
and each event's delay from its commit to NATS.

For each backend, alternating `--rounds` times: a fresh Floe with `events.backends = []`, then
one publishing to a `nats-server` this script starts (on a port found free), each running
`floe-bench commits` for `--seconds`. While events are on, a plain NATS subscriber (the NATS
text protocol over a socket, on `floe.>`) stamps each event's arrival; the delay is arrival
minus the event's `time` (when the commit was made), both read off this machine's clock.
JetStream hands a message to subscribers once it has stored it, so this is the delay to the
stream's acknowledgement, within a fraction of a millisecond.

    cargo build --release --bins
    python3 benches/events.py [--floe target/release/floe] [--seconds 10] [--rounds 2] [--backends sqlite,postgres]
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import datetime

from benchutil import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN_URL = os.environ.get("FLOE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

p = argparse.ArgumentParser()
p.add_argument("--floe", default=os.environ.get("FLOE_BIN", os.path.join(ROOT, "target/release/floe")))
p.add_argument("--seconds", type=float, default=10)
p.add_argument("--rounds", type=int, default=2)
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--backends", default="sqlite,postgres")
p.add_argument("--publisher", default="nats", choices=["nats", "log"],
               help="where events go when on (log: the outbox and relay alone, no NATS; no delays measured)")
a = p.parse_args()
bench = os.path.join(os.path.dirname(a.floe), "floe-bench")


class Subscriber(threading.Thread):
    """Receives every message on `floe.>` and records (arrival, event) pairs."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.file.readline()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nSUB floe.> 1\r\nPING\r\n')
        assert self.file.readline().startswith(b"PONG")
        self.received = []
        self.stopped = False

    def run(self):
        while not self.stopped:
            line = self.file.readline()
            if not line:
                return
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                total, header = int(parts[-1]), 0
            elif parts[0] == b"HMSG":
                header, total = int(parts[-2]), int(parts[-1])
            else:
                continue
            data = self.file.read(total + 2)[:total]
            arrived = time.time()
            self.received.append((arrived, json.loads(data[header:])))

    def stop(self):
        self.stopped = True
        self.sock.close()


def start_floe(work, backend, events_on, nats_port):
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    env["FLOE__LOG__LEVEL"] = "error"
    env["FLOE__EVENTS__BACKENDS"] = f"[{a.publisher}]" if events_on else "[]"
    env["FLOE__EVENTS__NATS__URL"] = f"nats://127.0.0.1:{nats_port}"
    database = None
    if backend == "postgres":
        database = "floe_ev_" + uuid.uuid4().hex
        subprocess.run(["psql", ADMIN_URL, "-XAtqc", f"CREATE DATABASE {database}"], check=True)
        env["FLOE__DATABASE__URL"] = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
        env["FLOE__DATABASE__AUTO_MIGRATE"] = "true"
        env["FLOE__BOOTSTRAP__AUTO"] = "true"
        env["FLOE__DATABASE__MAX_CONNECTIONS"] = "16"
        env["FLOE__SECRETS__ENCRYPTION_KEY"] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    data = tempfile.mkdtemp(prefix="floe-events-", dir=work)
    server = subprocess.Popen(
        [a.floe, "serve", "--listen", "127.0.0.1:0", "--s3-listen", "127.0.0.1:0", "--data-dir", data],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    uri = next(m.group(1) for line in server.stdout if (m := re.search(r'uri="([^"]+)"', line)))
    return server, uri, database


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else None


work = tempfile.mkdtemp(prefix="floe-events-bench-")
nats_port = free_port()
nats = subprocess.Popen(
    ["nats-server", "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", os.path.join(work, "js")],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
results = {}
try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", nats_port)).close()
            break
        except OSError:
            time.sleep(0.05)
    for backend in a.backends.split(","):
        runs = {"off": [], "on": []}
        delays = []
        for _ in range(a.rounds):
            for mode in ["off", "on"]:
                server, uri, database = start_floe(work, backend, mode == "on", nats_port)
                subscriber = Subscriber(nats_port) if mode == "on" and a.publisher == "nats" else None
                if subscriber:
                    subscriber.start()
                try:
                    run = subprocess.run(
                        [bench, "--uri", uri, "--warehouse", "demo", "--progress", "0", "--json",
                         "commits", "--concurrency", str(a.concurrency), "--duration", str(a.seconds)],
                        capture_output=True, text=True, check=True,
                    )
                    out = json.loads(run.stdout)
                    op = next(o for o in out["operations"] if o["name"] == "updateTable")
                    runs[mode].append(round(op["requests"] / out["elapsed_s"], 1))
                    if subscriber:
                        time.sleep(2)  # the last events of the run
                        for arrived, event in subscriber.received:
                            if event.get("type") == "io.floe.table.committed":
                                made = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
                                delays.append((arrived - made) * 1000)
                finally:
                    if subscriber:
                        subscriber.stop()
                    server.terminate()
                    server.wait(timeout=30)
                    if database:
                        subprocess.run(["psql", ADMIN_URL, "-XAtqc", f"DROP DATABASE {database} WITH (FORCE)"])
        off, on = statistics.mean(runs["off"]), statistics.mean(runs["on"])
        results[backend] = {
            "commits_per_second_events_off": runs["off"],
            "commits_per_second_events_on": runs["on"],
            "on_over_off": round(on / off, 3),
            "events_received": len(delays),
            "delay_p50_ms": round(percentile(delays, 0.5), 1) if delays else None,
            "delay_p99_ms": round(percentile(delays, 0.99), 1) if delays else None,
            "delay_max_ms": round(max(delays), 1) if delays else None,
        }
    print(json.dumps(results, indent=2))
finally:
    nats.terminate()
    nats.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)
