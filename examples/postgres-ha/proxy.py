"""A tiny round-robin TCP load balancer: each new client connection goes to the next backend (an
HTTP keep-alive connection stays on the backend it was given); a backend that refuses the
connection is skipped. On SIGTERM or SIGINT it prints how many connections each backend got.

    python proxy.py --listen 127.0.0.1:8181 http://127.0.0.1:8281 http://127.0.0.1:8282

Standard library only, for the example; in production use HAProxy, nginx, Envoy or a cloud load
balancer (see README.md).
"""

import argparse
import asyncio
import itertools
import json
import signal
from urllib.parse import urlsplit


def host_port(text):
    """(host, port) of `host:port` or `http://host:port`."""
    parts = urlsplit(text if "//" in text else f"//{text}")
    return parts.hostname, parts.port


async def pipe(reader, writer):
    """Copies bytes until either side closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(listen, backends):
    turn = itertools.cycle(backends)
    counts = {backend: 0 for backend in backends}

    async def handle(client_reader, client_writer):
        for _ in backends:
            backend = next(turn)
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*host_port(backend))
                break
            except OSError:
                continue  # down: the next one
        else:
            client_writer.close()
            return
        counts[backend] += 1
        await asyncio.gather(
            pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer)
        )

    server = await asyncio.start_server(handle, *host_port(listen))
    host, port = server.sockets[0].getsockname()[:2]
    print(f"proxy listening on http://{host}:{port} -> {' '.join(backends)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    print(f"connections per backend: {json.dumps(counts)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8181", help="host:port (port 0: any free one)")
    parser.add_argument("backends", nargs="+", help="backend URLs or host:port")
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.backends))
