"""Prometheus metrics (`/metrics`): what a PyIceberg round trip moves, checked by Prometheus's own
`promtool check metrics`, and who may scrape them (deny by default once authentication is on;
`metrics.listen` gives them a listener of their own)."""

import os
import re
import shutil
import socket
import subprocess

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog import load_catalog

from conftest import Floe, authn_config

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def promtool():
    path = os.environ.get("FLOE_PROMTOOL") or shutil.which("promtool")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("FLOE_PROMTOOL is not set (scripts/test installs Debian's promtool)")
        pytest.skip("promtool is not installed (scripts/test installs it)")
    return path


def scrape(url, headers=None):
    response = requests.get(url, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(parsed, name, **labels):
    """The sum of `name`'s samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in parsed.items() if n == name and want <= set(ls))


def round_trip(floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("metrics")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    table = catalog.create_table("metrics.t", schema=schema)
    for i in range(3):
        table.append(pa.Table.from_pydict({"id": [i]}, schema=schema))
    # A stale writer: its requirement fails (409 at once, counted as rejected); PyIceberg
    # reloads and retries, and its rows land.
    stale = catalog.load_table("metrics.t")
    table.append(pa.Table.from_pydict({"id": [9]}, schema=schema))
    stale.append(pa.Table.from_pydict({"id": [10]}, schema=schema))
    assert catalog.load_table("metrics.t").scan().to_arrow().num_rows == 5
    return catalog


def test_a_round_trip_moves_the_counters_and_promtool_accepts_the_scrape(floe, tmp_path):
    before = samples(scrape(f"{floe.base}/metrics"))
    round_trip(floe)
    text = scrape(f"{floe.base}/metrics")
    after = samples(text)

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    table_route = "/catalog/v1/{prefix}/namespaces/{namespace}/tables/{table}"
    # Requests by route template (never a table's name), method and status.
    assert moved("floe_http_requests_total", route=table_route, method="POST", status="200") >= 4
    assert moved("floe_http_requests_total", route=table_route, method="POST", status="409") >= 1
    assert moved("floe_http_requests_total", route=table_route, method="GET", status="200") >= 2
    assert moved("floe_http_request_duration_seconds_count", route=table_route, method="POST") >= 5
    assert "metrics.t" not in text and 'table="' not in text
    # Commits: five landed, the stale one rejected on its requirement first; each went through a group commit.
    assert moved("floe_table_commits_total", outcome="landed") >= 5
    assert moved("floe_table_commits_total", outcome="rejected") >= 1
    assert moved("floe_group_commit_size_count") >= 4
    assert moved("floe_group_commit_duration_seconds_count") >= 4
    # Loads and commits looked the table up in the table cache.
    assert moved("floe_table_cache_requests_total", result="hit") + moved(
        "floe_table_cache_requests_total", result="miss"
    ) >= 5
    # The data went through the S3 gateway with a vended key (PyArrow writes in multipart
    # uploads and reads ranges).
    written = moved("floe_gateway_requests_total", operation="PutObject") + moved(
        "floe_gateway_requests_total", operation="UploadPart", status="200"
    )
    assert written >= 5
    assert moved("floe_gateway_requests_total", operation="CompleteMultipartUpload", status="200") >= 1
    assert moved("floe_gateway_requests_total", operation="GetObject", status="206") + moved(
        "floe_gateway_requests_total", operation="GetObject", status="200"
    ) >= 1
    assert moved("floe_gateway_received_bytes_total") > 1000
    assert moved("floe_gateway_sent_bytes_total", operation="GetObject") > 100
    assert moved("floe_gateway_request_duration_seconds_count", operation="HeadObject") >= 1
    assert moved("floe_vended_credentials_total", kind="gateway_key") >= 1
    # Gauges read at scrape time.
    pool = "main" if floe.backend == "postgres" else "read"
    assert total(after, "floe_db_pool_max_connections", pool=pool) >= 1
    assert ("floe_events_backlog", frozenset()) in after
    assert total(after, "floe_build_info") == 1

    path = tmp_path / "scrape.txt"
    path.write_text(text)
    checked = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, f"promtool: {checked.stdout}{checked.stderr}"
    # Every metric has help text and a type (promtool names the ones without).
    assert "no help text" not in checked.stdout + checked.stderr


def test_remote_signing_counts_signed_and_refused_requests(floe):
    catalog = load_catalog("floe", type="rest", uri=floe.uri, warehouse="demo")
    catalog.create_namespace("signed")
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    catalog.create_table("signed.t", schema=schema)
    prefix = requests.get(f"{floe.uri}/v1/config", params={"warehouse": "demo"}, timeout=10).json()[
        "overrides"
    ]["prefix"]
    before = samples(scrape(f"{floe.base}/metrics"))
    sign = f"{floe.uri}/v1/{prefix}/namespaces/signed/tables/t/sign"
    loaded = requests.get(
        f"{floe.uri}/v1/{prefix}/namespaces/signed/tables/t",
        headers={"X-Iceberg-Access-Delegation": "remote-signing"},
        timeout=10,
    ).json()
    location = loaded["metadata"]["location"]
    bucket, _, key = location.removeprefix("s3://").partition("/")
    endpoint = loaded["config"]["s3.endpoint"]
    ok = requests.post(
        sign,
        json={
            "region": "us-east-1",
            "method": "GET",
            "uri": f"{endpoint}/{bucket}/{key}/metadata/x.json",
            "headers": {},
        },
        timeout=10,
    )
    assert ok.status_code == 200, ok.text
    refused = requests.post(
        sign,
        json={
            "region": "us-east-1",
            "method": "GET",
            "uri": f"{endpoint}/{bucket}/elsewhere/x.json",
            "headers": {},
        },
        timeout=10,
    )
    assert refused.status_code == 403, refused.text
    after = samples(scrape(f"{floe.base}/metrics"))
    assert total(after, "floe_signed_requests_total", outcome="signed") - total(
        before, "floe_signed_requests_total", outcome="signed"
    ) == 1
    assert total(after, "floe_signed_requests_total", outcome="refused") - total(
        before, "floe_signed_requests_total", outcome="refused"
    ) == 1
    assert total(after, "floe_vended_credentials_total", kind="remote_signing") >= 1


def test_with_authentication_on_metrics_need_a_token(secure_floe, idp):
    url = f"{secure_floe.base}/metrics"
    for headers in ({}, {"authorization": "Bearer not-a-token"}):
        refused = requests.get(url, headers=headers, timeout=10)
        assert refused.status_code == 401, refused.text
        assert "floe_" not in refused.text
    # Health stays open.
    assert requests.get(f"{secure_floe.base}/health", timeout=10).status_code == 200
    text = scrape(url, headers={"authorization": f"Bearer {secure_floe.token}"})
    assert "floe_http_requests_total" in text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_on_their_own_listener(backend, idp):
    port = free_port()
    server = Floe(
        backend,
        config=authn_config(idp) + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n',
        token=idp.token(),
    )
    try:
        # Without a token on their own listener (kept inside the cluster), with /health beside.
        text = scrape(f"http://127.0.0.1:{port}/metrics")
        assert "floe_build_info" in text
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        # Not on the API's listener any more, and nothing else on theirs.
        assert requests.get(f"{server.base}/metrics", timeout=10).status_code in (401, 404)
        assert requests.get(
            f"{server.base}/metrics",
            headers={"authorization": f"Bearer {server.token}"},
            timeout=10,
        ).status_code == 404
        assert requests.get(f"http://127.0.0.1:{port}/catalog/v1/config", timeout=10).status_code == 404
    finally:
        server.stop()


def test_metrics_can_be_turned_off(idp):
    server = Floe("sqlite", env={"FLOE__METRICS__ENABLED": "false"})
    try:
        assert requests.get(f"{server.base}/metrics", timeout=10).status_code == 404
    finally:
        server.stop()
