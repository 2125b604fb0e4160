"""The web console on a warehouse of 10,000 tables: how long each page takes to show in headless
Chromium (Debian's, through Playwright), and how much the page holds once it has. Starts its own
Floe (FLOE_BIN, release build recommended); needs the engines venv:

    FLOE_BIN=target/release/floe ~/.cache/floe-ci/venv-*/bin/python benches/console.py [--tables N]

The warehouse holds one namespace `big` of N tables (`t00000`..., N over 100, so that it pages)
and 200 other namespaces. Each step is timed 5 times from the navigation (or click) until the
console marks the view rendered; the median is printed. The server's search is timed alone too (plain HTTP).
"""

import argparse
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import requests

from benchutil import free_port, wait_http

FLOE_BIN = os.environ.get("FLOE_BIN", "target/release/floe")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCHEMA = {"type": "struct", "fields": [{"id": 1, "name": "id", "required": False, "type": "long"}]}


def fill(base, tables):
    with requests.Session() as s:
        assert s.post(f"{base}/namespaces", json={"namespace": ["big"]}).status_code == 200
        for n in range(200):
            assert s.post(f"{base}/namespaces", json={"namespace": [f"ns{n:03d}"]}).status_code == 200

    def create(chunk):
        with requests.Session() as s:
            for n in chunk:
                r = s.post(f"{base}/namespaces/big/tables", json={"name": f"t{n:05d}", "schema": SCHEMA})
                assert r.status_code == 200, r.text

    chunks = [range(i, min(tables, i + 500)) for i in range(0, tables, 500)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(create, chunks))


def median_of(fn, runs=5):
    times = []
    for _ in range(runs):
        times.append(fn())
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=10_000)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="floe-bench-console-")
    port = free_port()
    env = {**os.environ, "FLOE__LOG__LEVEL": "warn"}
    floe = subprocess.Popen([FLOE_BIN, "serve", "--listen", f"127.0.0.1:{port}", "--s3-listen", "127.0.0.1:0",
                             "--data-dir", os.path.join(work, "data")], env=env, stdout=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{port}"
        wait_http(f"{root}/health")
        prefix = requests.get(f"{root}/catalog/v1/config", params={"warehouse": "demo"}).json()["overrides"]["prefix"]
        started = time.perf_counter()
        fill(f"{root}/catalog/v1/{prefix}", args.tables)
        print(f"{args.tables} tables in namespace big, 200 more namespaces: made in {time.perf_counter() - started:.1f} s")
        wid = next(w["id"] for w in requests.get(f"{root}/management/v1/warehouses").json()["warehouses"] if w["name"] == "demo")

        search = f"{root}/management/v1/warehouses/{wid}/search"
        narrow = f"t{(args.tables - 1) // 10:04d}"
        # A branch too: its search walks the history of the lines it forked from.
        r = requests.post(f"{root}/management/v1/warehouses/{wid}/branches", json={"name": "dev"})
        assert r.status_code in (200, 201), r.text
        for ref in ["main", "dev"]:
            for needle in [narrow, "t0"]:
                def one():
                    start = time.perf_counter()
                    r = requests.get(search, params={"name": needle, "ref": ref, "page-size": 100})
                    assert r.status_code == 200 and r.json()["tabulars"], r.text
                    return time.perf_counter() - start
                print(f"server search {needle!r:>8} on {ref:<4} (first page of 100): {median_of(one) * 1000:7.1f} ms")

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--enable-precise-memory-info"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})

            def ready(fragment):
                page.wait_for_function("f => (document.body.dataset.ready || '') === f", arg=fragment, timeout=60000)

            def browse():
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(f"{root}/ui/#/wh/{wid}")
                ready(f"#/wh/{wid}")
                page.wait_for_selector("#namespaces li a")
                return time.perf_counter() - start

            def namespace():
                page.goto("about:blank")
                page.goto(f"{root}/ui/#/wh/{wid}")
                ready(f"#/wh/{wid}")
                start = time.perf_counter()
                page.click("#namespaces a[data-ns=big]")
                page.wait_for_selector("#tabulars tbody tr")
                return time.perf_counter() - start

            def more():
                namespace()
                start = time.perf_counter()
                page.click("button:text('Load more')")
                page.wait_for_function("() => document.querySelectorAll('#tabulars tbody tr').length === 200")
                return time.perf_counter() - start

            def find(needle):
                def run():
                    page.goto("about:blank")
                    page.goto(f"{root}/ui/#/wh/{wid}")
                    ready(f"#/wh/{wid}")
                    page.fill("#search", needle)
                    start = time.perf_counter()
                    page.click("#finder button")
                    page.wait_for_selector("#search-results tbody tr td a")
                    return time.perf_counter() - start
                return run

            def table():
                page.goto("about:blank")
                start = time.perf_counter()
                page.goto(f"{root}/ui/#/wh/{wid}/table/big/t{args.tables // 2:05d}")
                ready(f"#/wh/{wid}/table/big/t{args.tables // 2:05d}")
                return time.perf_counter() - start

            steps = [
                ("warehouse page (namespace tree, first 100 of 201)", browse),
                ("namespace big: first 100 tables shown", namespace),
                ("namespace big: 'Load more' to 200", more),
                (f"search '{narrow}' (10 matches)", find(narrow)),
                (f"search 't0' ({args.tables} matches, first 100)", find("t0")),
                ("one table's page", table),
            ]
            for name, fn in steps:
                print(f"{name:<52}{median_of(fn) * 1000:8.1f} ms")
            namespace()
            rows = page.evaluate("document.querySelectorAll('#tabulars tbody tr').length")
            heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
            print(f"after opening namespace big: {rows} rows in the page, JS heap {heap / 2**20:.1f} MiB")
            browser.close()
    finally:
        floe.terminate()
        floe.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
