#!/usr/bin/env python3
"""Throughput of Floe's built-in S3 gateway, beside what the machine does without it.

Starts a release `floe` on a fresh data dir, issues an access key, and measures with curl
(`--aws-sigv4`, `x-amz-content-sha256: UNSIGNED-PAYLOAD`, so the client hashes nothing):

  - PUT and GET of 64 MiB objects, one stream at a time;
  - PUT and GET of 1 MiB objects, 4 streams;
  - 4 KiB objects, 16 streams (operations per second);

and in the same run, as yardsticks: the same bytes written (with fsync) and read directly on the
gateway's disk, and a minimal HTTP server answering GETs from memory, measured with the same curl.

    cargo build --release --bins
    python3 benches/gateway.py --floe target/release/floe [--json]

Only the Python standard library and curl are needed. Not a test: it asserts nothing.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchutil import free_port

MIB = 1 << 20


def serve_bytes(port, sizes):
    """A minimal HTTP/1.1 server: GET /<size> answers <size> bytes from memory."""
    bodies = {size: os.urandom(size) for size in sizes}
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)

    def handle(conn):
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].decode()
                body = bodies[int(path.strip("/").split("/")[0])]
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                )
                conn.sendall(body)

    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


class Floe:
    def __init__(self, binary, workdir):
        self.api_port, self.s3_port = free_port(), free_port()
        self.data = os.path.join(workdir, "data")
        env = dict(os.environ, FLOE__LOG__LEVEL="warn")
        self.process = subprocess.Popen(
            [
                binary,
                "serve",
                "--listen",
                f"127.0.0.1:{self.api_port}",
                "--s3-listen",
                f"127.0.0.1:{self.s3_port}",
                "--data-dir",
                self.data,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        base = f"http://127.0.0.1:{self.api_port}/management/v1"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/info").read()
                break
            except OSError:
                time.sleep(0.1)
        warehouses = json.loads(urllib.request.urlopen(f"{base}/warehouses").read())
        wh = next(w for w in warehouses["warehouses"] if w["name"] == "demo")
        request = urllib.request.Request(f"{base}/warehouses/{wh['id']}/access-keys", method="POST")
        key = json.loads(urllib.request.urlopen(request).read())
        self.key_id, self.secret = key["access-key-id"], key["secret-access-key"]
        self.endpoint = f"http://127.0.0.1:{self.s3_port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


def curl_batch(entries, parallel, auth=None):
    """Runs one curl process over `entries` (each a dict of curl config options) and returns the
    wall time. Fails loudly on any HTTP error."""
    lines = []
    for entry in entries:
        for option, value in entry.items():
            lines.append(f'{option} = "{value}"')
        if auth:
            # Per URL: options given once apply to one URL group of a config only.
            lines.append('aws-sigv4 = "aws:amz:us-east-1:s3"')
            lines.append(f'user = "{auth}"')
            lines.append('header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"')
        lines.append("fail")
        lines.append("next")
    config = "\n".join(lines[:-1]) + "\n"
    args = ["curl", "-s", "-S", "-K", "-"]
    if parallel > 1:
        args += ["--parallel", "--parallel-max", str(parallel), "--parallel-immediate"]
    started = time.perf_counter()
    result = subprocess.run(args, input=config.encode(), capture_output=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"curl failed: {result.stderr.decode()[:500]}")
    return elapsed


def disk_write(path, data, count):
    started = time.perf_counter()
    for i in range(count):
        with open(f"{path}.{i}", "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        dirfd = os.open(os.path.dirname(path), os.O_RDONLY)
        os.fsync(dirfd)
        os.close(dirfd)
    return time.perf_counter() - started


def disk_read(path, count):
    started = time.perf_counter()
    for i in range(count):
        with open(f"{path}.{i}", "rb", buffering=0) as f:
            while f.read(MIB):
                pass
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--floe", default="target/release/floe")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = {"64MiB": 64 * MIB, "1MiB": MIB, "4KiB": 4096}
    if args.serve_bytes:
        serve_bytes(args.serve_bytes, list(sizes.values()))
        return

    workdir = tempfile.mkdtemp(prefix="floe-gateway-bench-", dir=os.environ.get("TMPDIR", "/tmp"))
    floe = Floe(os.path.abspath(args.floe), workdir)
    http_port = free_port()
    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-bytes", str(http_port)])
    time.sleep(1.0)
    auth = f"{floe.key_id}:{floe.secret}"
    results = []

    def report(name, seconds, count, size):
        entry = {
            "name": name,
            "objects": count,
            "object_bytes": size,
            "seconds": round(seconds, 3),
            "mb_per_second": round(count * size / seconds / 1e6, 1),
            "objects_per_second": round(count / seconds, 1),
        }
        results.append(entry)
        if not args.json:
            print(
                f"{name:<34} {entry['mb_per_second']:>9.1f} MB/s {entry['objects_per_second']:>10.1f} obj/s"
                f"   ({count} x {size} B in {seconds:.2f} s)",
                flush=True,
            )

    try:
        plan = [("64MiB", 16, 1), ("1MiB", 800, 4), ("4KiB", 8000, 16)]
        for label, count, parallel in plan:
            size = sizes[label]
            source = os.path.join(workdir, f"src-{label}")
            with open(source, "wb") as f:
                f.write(os.urandom(size))
            data = open(source, "rb").read()
            # Yardsticks: the bytes on the same disk, with fsync; read back (page cache).
            disk_dir = os.path.join(floe.data, "warehouses", "demo", "direct")
            os.makedirs(disk_dir, exist_ok=True)
            disk_count = min(count, 400)
            report(f"disk write+fsync {label}", disk_write(os.path.join(disk_dir, label), data, disk_count), disk_count, size)
            report(f"disk read {label}", disk_read(os.path.join(disk_dir, label), disk_count), disk_count, size)
            shutil.rmtree(disk_dir)
            # Plain HTTP from memory, same curl, same parallelism.
            entries = [{"url": f"http://127.0.0.1:{http_port}/{size}/{i}", "output": "/dev/null"} for i in range(count)]
            curl_batch(entries[: max(1, count // 10)], parallel)  # warm up
            report(f"memory HTTP GET {label} x{parallel}", curl_batch(entries, parallel), count, size)
            # The gateway.
            keys = [f"{floe.endpoint}/demo/bench/{label}/{i}" for i in range(count)]
            puts = [{"url": k, "upload-file": source, "output": "/dev/null"} for k in keys]
            report(f"gateway PUT {label} x{parallel}", curl_batch(puts, parallel, auth), count, size)
            gets = [{"url": k, "output": "/dev/null"} for k in keys]
            curl_batch(gets[: max(1, count // 10)], parallel, auth)  # warm up
            report(f"gateway GET {label} x{parallel}", curl_batch(gets, parallel, auth), count, size)
    finally:
        server.terminate()
        floe.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps({"workload": "s3-gateway", "results": results}, indent=2))


if __name__ == "__main__":
    main()
