"""The Helm chart (charts/floe): rendered by the real Helm engine for every values file in
charts/floe/ci, linted, every object validated against Kubernetes 1.31's schemas, and the
content that matters asserted: the migration hook, the probes, the security context, the objects
each values file must produce, and that every setting the chart hands Floe (floe.toml and the
FLOE__ variables) is one Floe accepts (`floe config check`, with FLOE_BIN).

Run from the repository root:
    /root/.cache/floe-ci/deploy-venv-tmp/bin/python -m pytest -q tests/deploy/test_chart.py
"""

from __future__ import annotations

import base64
import copy
import functools
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import helm_python
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "floe"
CI_DIR = CHART / "ci"
CI_FILES = sorted(p.name for p in CI_DIR.glob("*.yaml"))
RELEASE = "floe"
NAMESPACE = "lakehouse"
KUBE_VERSION = "1.31.0"

# Floe's configuration sections (src/config.rs `Config`, plus `metrics`).
FLOE_SECTIONS = {
    "server", "storage", "database", "secrets", "log", "bootstrap",
    "authn", "authz", "events", "gateway", "metrics",
}
HOOK_ANNOTATION = "helm.sh/hook"


# --- rendering -----------------------------------------------------------------------------


def load_values(name: str) -> dict:
    with open(CI_DIR / name) as f:
        return yaml.safe_load(f) or {}


def render_raw(values: dict) -> dict[str, str]:
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def parse_manifests(rendered: dict[str, str]) -> list[dict]:
    objects = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
    return objects


@functools.lru_cache(maxsize=None)
def _render_ci(name: str) -> tuple:
    return tuple(parse_manifests(render_raw(load_values(name))))


def render_ci(name: str) -> list[dict]:
    return copy.deepcopy(list(_render_ci(name)))


def render(values: dict) -> list[dict]:
    return parse_manifests(render_raw(values))


def objects_of(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str, pred=lambda o: True) -> dict:
    found = [o for o in objects if o["kind"] == kind and pred(o)]
    assert len(found) == 1, f"expected one {kind}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def annotations(obj: dict) -> dict:
    return obj["metadata"].get("annotations") or {}


def is_hook(obj: dict) -> bool:
    return HOOK_ANNOTATION in annotations(obj)


def deployment(objects):
    return one(objects, "Deployment")


def migration_job(objects):
    jobs = objects_of(objects, "Job")
    return jobs[0] if jobs else None


def helm_test_pod(objects):
    return one(objects, "Pod", lambda o: annotations(o).get(HOOK_ANNOTATION) == "test")


def floe_container(obj: dict) -> dict:
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]


def floe_toml(objects: list[dict], hook: bool = False) -> str:
    cm = one(objects, "ConfigMap", lambda o: is_hook(o) == hook)
    return cm["data"]["floe.toml"]


def named_in_values(ci_file: str, name: str) -> bool:
    """Whether a values file names an object of the user's (an existing Secret, a volume)."""

    def walk(node):
        if isinstance(node, dict):
            return any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return node == name

    return walk(load_values(ci_file))


def render_error(values: dict) -> str:
    # HelmValuesError: refused by values.schema.json; HelmRenderError: by a check in a template.
    with pytest.raises((helm_python.HelmRenderError, helm_python.HelmValuesError)) as info:
        render_raw(values)
    return str(info.value)


# --- what each values file must produce ----------------------------------------------------

# present: kind -> how many objects (hooks included: the migration job's ConfigMap, Secret and
# ServiceAccount count); absent: kinds that must not be rendered. Ingress counts the catalog's and
# the gateway's.
EXPECTED = {
    "default-values.yaml": {
        "present": {"ConfigMap": 1, "Deployment": 1, "Service": 1, "ServiceAccount": 1,
                    "PersistentVolumeClaim": 1, "Pod": 1},
        "absent": ["Job", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress",
                   "ServiceMonitor", "Secret"],
        "service_ports": {"http": 8181, "s3": 9000},
        "strategy": "Recreate",
        "replicas": 1,
    },
    "postgres-values.yaml": {
        "present": {"Job": 1, "HorizontalPodAutoscaler": 1, "PodDisruptionBudget": 1,
                    "Ingress": 2, "ConfigMap": 2, "ServiceAccount": 2, "Pod": 1},
        # Both secrets come from existing Secrets: the chart makes none.
        "absent": ["PersistentVolumeClaim", "ServiceMonitor", "Secret"],
        "service_ports": {"http": 8181, "s3": 9000},
        "strategy": "RollingUpdate",
        "replicas": None,  # the HPA owns the count
    },
    "oidc-openfga-values.yaml": {
        "present": {"Job": 1, "Secret": 2, "ConfigMap": 2, "Pod": 1},
        "absent": ["PersistentVolumeClaim", "ServiceMonitor", "Ingress",
                   "HorizontalPodAutoscaler", "PodDisruptionBudget"],
        "service_ports": {"http": 8181},
        "strategy": "RollingUpdate",
        "replicas": 2,
        "secret_keys": {"database-url", "encryption-key", "openfga-api-token",
                        "oidc-client-secret"},
    },
    "kubernetes-auth-vault-nats-values.yaml": {
        "present": {"Job": 1, "ConfigMap": 2, "Pod": 1},
        "absent": ["Secret", "PersistentVolumeClaim", "ServiceMonitor", "Ingress",
                   "HorizontalPodAutoscaler"],
        "service_ports": {"http": 8181, "s3": 9000},
        "strategy": "RollingUpdate",
        "replicas": 2,
    },
    "metrics-own-port-values.yaml": {
        "present": {"ServiceMonitor": 1, "Deployment": 1, "Pod": 1},
        "absent": ["Job", "PersistentVolumeClaim", "HorizontalPodAutoscaler", "Ingress",
                   "Secret"],
        "service_ports": {"http": 8181, "s3": 9000, "metrics": 9090},
        "strategy": "Recreate",
        "replicas": 1,
    },
}


def test_every_ci_file_has_expectations():
    assert CI_FILES, f"no values files in {CI_DIR}"
    assert set(CI_FILES) == set(EXPECTED), "add the new ci values file to EXPECTED"


def test_chart_version_is_floes():
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == cargo["package"]["version"]


# --- lint ----------------------------------------------------------------------------------

# Helm's INFO findings that are accepted: Floe has no published icon to point at.
ACCEPTED_INFO = {"icon is recommended"}


def lint_findings(chart_dir: Path, values: dict | None) -> list[dict]:
    report = helm_python.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    findings = list(report["messages"])
    findings += [{"severity": 3, "path": "", "error": e} for e in report.get("errors", [])]
    return findings


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_lint(ci_file):
    # Strict: warnings fail too. Helm warns about what breaks installs later (deprecated APIs,
    # values that are not used, templates that render to nothing useful), and the chart has none;
    # only the known INFO findings pass.
    findings = lint_findings(CHART, load_values(ci_file))
    bad = [f for f in findings if f["severity"] >= 2 or f["error"] not in ACCEPTED_INFO]
    assert not bad, bad


def test_lint_catches_a_broken_template(tmp_path):
    # The linter is real: a chart with a template that is not YAML fails it.
    broken = tmp_path / "floe"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\n  metadata: : x\n")
    findings = lint_findings(broken, None)
    assert any(f["severity"] >= 3 for f in findings), findings


# --- Kubernetes schemas --------------------------------------------------------------------

DURATION = re.compile(r"^(\d+(ms|s|m|h))+$")


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h)", duration))


def check_service_monitor(sm: dict, objects: list[dict]) -> None:
    """kubernetes-validate has no schema for the Prometheus Operator's CRDs, so a ServiceMonitor
    is held to the fields of monitoring.coreos.com/v1 this chart uses, and to what it must point
    at: a Service of the release, by labels, and a named port of it."""
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(sm) <= {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", sm["metadata"]["name"])
    spec = sm["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel",
                         "targetLabels", "podTargetLabels", "sampleLimit"}
    selector = spec["selector"]["matchLabels"]
    services = [s for s in objects_of(objects, "Service")
                if selector.items() <= s["metadata"].get("labels", {}).items()]
    assert services, f"the ServiceMonitor selects no Service: {selector}"
    assert NAMESPACE in spec["namespaceSelector"]["matchNames"]
    assert spec["endpoints"], "no endpoints"
    allowed = {"port", "path", "scheme", "interval", "scrapeTimeout", "relabelings",
               "metricRelabelings", "honorLabels", "honorTimestamps", "bearerTokenSecret",
               "authorization", "oauth2", "basicAuth", "tlsConfig", "params",
               "followRedirects", "enableHttp2", "proxyUrl"}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= allowed, set(endpoint) - allowed
        port_names = {p["name"] for s in services for p in s["spec"]["ports"]}
        assert endpoint["port"] in port_names, (endpoint["port"], port_names)
        assert endpoint["path"].startswith("/")
        assert endpoint.get("scheme", "http") in {"http", "https"}
        for key in ("interval", "scrapeTimeout"):
            if key in endpoint:
                assert DURATION.match(endpoint[key]), endpoint[key]
        if "interval" in endpoint and "scrapeTimeout" in endpoint:
            assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])
        for relabel in endpoint.get("relabelings", []) + endpoint.get("metricRelabelings", []):
            assert relabel.get("action", "replace") in {
                "replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap",
                "labeldrop", "labelkeep", "lowercase", "uppercase"}


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_objects_match_kubernetes_schemas(ci_file):
    objects = render_ci(ci_file)
    assert objects
    validated = 0
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            check_service_monitor(obj, objects)
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at "
                        f"{'/'.join(str(p) for p in e.path)}")
        validated += 1
    assert validated >= 4


def test_schema_validation_is_strict():
    # A field Kubernetes does not know is refused (what `--strict` is for).
    dep = deployment(render_ci("default-values.yaml"))
    floe_container(dep)["livenessProbe"]["httpGet"]["pathh"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)


def test_service_monitor_rule_can_fail():
    objects = render_ci("metrics-own-port-values.yaml")
    sm = one(objects, "ServiceMonitor")
    sm["spec"]["endpoints"][0]["port"] = "nope"
    with pytest.raises(AssertionError):
        check_service_monitor(sm, objects)


# --- the objects each values file produces ---------------------------------------------------


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_expected_objects(ci_file):
    objects = render_ci(ci_file)
    expect = EXPECTED[ci_file]
    for kind, count in expect["present"].items():
        assert len(objects_of(objects, kind)) == count, (kind, [
            o["metadata"]["name"] for o in objects_of(objects, kind)])
    for kind in expect["absent"]:
        assert not objects_of(objects, kind), f"unexpected {kind}"

    service = one(objects, "Service")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == expect["service_ports"]
    container_ports = {p["name"] for p in floe_container(deployment(objects))["ports"]}
    assert container_ports == set(expect["service_ports"])
    for p in service["spec"]["ports"]:
        assert p["targetPort"] in container_ports

    dep = deployment(objects)
    assert dep["spec"]["strategy"]["type"] == expect["strategy"]
    assert dep["spec"].get("replicas") == expect["replicas"]

    secrets = [s for s in objects_of(objects, "Secret") if not is_hook(s)]
    if "secret_keys" in expect:
        assert set(secrets[0]["data"]) == expect["secret_keys"]

    config = tomllib.loads(floe_toml(objects))
    gateway_on = "s3" in expect["service_ports"]
    assert config["gateway"]["enabled"] is gateway_on
    # The listeners are where the container ports are: set by the chart as variables, which win
    # over the file (and over the image's own defaults).
    env = {e["name"]: e.get("value") for e in floe_container(dep)["env"]}
    container_port = {p["name"]: p["containerPort"] for p in floe_container(dep)["ports"]}
    assert env["FLOE__SERVER__LISTEN"] == f"0.0.0.0:{container_port['http']}"
    if gateway_on:
        assert env["FLOE__GATEWAY__LISTEN"] == f"0.0.0.0:{container_port['s3']}"
    else:
        assert "FLOE__GATEWAY__LISTEN" not in env
    if "metrics" in expect["service_ports"]:
        assert env["FLOE__METRICS__LISTEN"] == f"0.0.0.0:{container_port['metrics']}"
        assert container_port["metrics"] == expect["service_ports"]["metrics"]
    else:
        assert "FLOE__METRICS__LISTEN" not in env
    for section in ("server", "gateway", "metrics"):
        assert "listen" not in config.get(section, {}), "the variables alone say where"


def test_postgres_values_wiring():
    objects = render_ci("postgres-values.yaml")
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment(objects)["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 3
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    pdb = one(objects, "PodDisruptionBudget")
    pod_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    service = one(objects, "Service")
    ingresses = {i["metadata"]["name"]: i for i in objects_of(objects, "Ingress")}
    catalog, gateway = ingresses[RELEASE], ingresses[f"{RELEASE}-s3"]
    for ingress, port, host in ((catalog, "http", "catalog.lake.example.com"),
                                (gateway, "s3", "s3.lake.example.com")):
        assert ingress["spec"]["tls"][0]["hosts"] == [host]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": service["metadata"]["name"], "port": {"name": port}}
    config = tomllib.loads(floe_toml(objects))
    # The public URLs follow the ingresses, with TLS.
    assert config["server"]["public_url"] == "https://catalog.lake.example.com"
    assert config["gateway"]["public_url"] == "https://s3.lake.example.com"
    # host/user form: the URL carries no password; PostgreSQL's PGPASSWORD does.
    assert config["database"]["url"] == (
        "postgres://floe@floe-db-rw.databases.svc:5432/floe?sslmode=require")
    env = {e["name"]: e for e in floe_container(deployment(objects))["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "floe-db-app",
                                                               "key": "password"}
    assert env["FLOE__SECRETS__ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "floe-keys", "key": "encryption-key"}
    spread = pod_spec(deployment(objects))["topologySpreadConstraints"]
    assert [c["whenUnsatisfiable"] for c in spread] == ["DoNotSchedule", "ScheduleAnyway"]
    for c in spread:
        assert c["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_oidc_openfga_values_wiring():
    objects = render_ci("oidc-openfga-values.yaml")
    config = tomllib.loads(floe_toml(objects))
    assert config["authz"]["backend"] == "openfga"
    assert config["authz"]["openfga"]["endpoint"] == "http://openfga.openfga.svc:8081"
    assert "api_token" not in config["authz"]["openfga"], "secrets stay out of the ConfigMap"
    assert config["authn"]["providers"][0]["kind"] == "oidc"
    assert "url" not in config["database"]
    secret = one(objects, "Secret", lambda o: not is_hook(o))
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["openfga-api-token"] == "fga-preshared-key"
    assert decoded["oidc-client-secret"] == "test-client-secret"
    # The test pod gets a token by client credentials, its secret from the chart's Secret.
    pod = helm_test_pod(objects)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]["key"] == "oidc-client-secret"
    assert env["WAREHOUSE"]["value"] == "lake"
    # Floe's container does not get the test's client secret.
    names = {e["name"] for e in floe_container(deployment(objects))["env"]}
    assert "OIDC_CLIENT_SECRET" not in names
    assert "FLOE__AUTHZ__OPENFGA__API_TOKEN" in names


def test_kubernetes_auth_vault_nats_values_wiring():
    objects = render_ci("kubernetes-auth-vault-nats-values.yaml")
    dep = deployment(objects)
    # A kubernetes provider reads the mounted service-account CA and token.
    assert pod_spec(dep)["automountServiceAccountToken"] is True
    config = tomllib.loads(floe_toml(objects))
    assert config["secrets"]["backend"] == "vault"
    assert "secret_id" not in config["secrets"]["vault"]
    assert "role_id" not in config["secrets"]["vault"]
    assert config["events"]["backends"] == ["nats", "log"]
    assert "password" not in config["events"]["nats"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in floe_container(dep)["env"]
           if "valueFrom" in e}
    assert env == {
        "FLOE__DATABASE__URL": {"name": "floe-db-app", "key": "uri"},
        "FLOE__SECRETS__ENCRYPTION_KEY": {"name": "floe-keys", "key": "encryption-key"},
        "FLOE__SECRETS__VAULT__ROLE_ID": {"name": "floe-vault", "key": "role-id"},
        "FLOE__SECRETS__VAULT__SECRET_ID": {"name": "floe-vault", "key": "secret-id"},
        "FLOE__EVENTS__NATS__PASSWORD": {"name": "floe-nats", "key": "password"},
    }
    pod = helm_test_pod(objects)
    projected = [v for v in pod["spec"]["volumes"] if "projected" in v]
    assert projected[0]["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "floe"


def test_default_values_are_the_embedded_setup():
    objects = render_ci("default-values.yaml")
    config = tomllib.loads(floe_toml(objects))
    assert "url" not in config["database"], "SQLite in the data directory"
    container = floe_container(deployment(objects))
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FLOE__STORAGE__DATA_DIR"] == "/var/lib/floe"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/var/lib/floe"
    pvc = one(objects, "PersistentVolumeClaim")
    assert annotations(pvc)["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    volumes = {v["name"]: v for v in pod_spec(deployment(objects))["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pod_spec(deployment(objects))["automountServiceAccountToken"] is False
    # With chart defaults (no values at all) the result is the same.
    assert floe_toml(render({})) == floe_toml(objects)


def test_without_migration_job_pods_migrate_at_start():
    values = {"database": {"type": "postgresql", "postgresql": {"host": "db", "password": "pw"}},
              "secrets": {"encryption_key": ENCRYPTION_KEY}}
    config = tomllib.loads(floe_toml(render(values)))
    assert "auto_migrate" not in config["database"], "the job migrates"
    objects = render({**values, "migration": {"enabled": False}})
    assert migration_job(objects) is None
    assert tomllib.loads(floe_toml(objects))["database"]["auto_migrate"] is True


def test_existing_service_account():
    values = {"database": {"type": "postgresql", "postgresql": {"host": "db", "password": "pw"}},
              "secrets": {"encryption_key": ENCRYPTION_KEY},
              "serviceAccount": {"create": False, "name": "lake-runner"}}
    objects = render(values)
    assert not objects_of(objects, "ServiceAccount")
    assert pod_spec(deployment(objects))["serviceAccountName"] == "lake-runner"
    assert pod_spec(migration_job(objects))["serviceAccountName"] == "lake-runner"


def test_toml_writer_round_trips():
    # Helm reads every number as a float; Floe wants integers. Strings with quotes, backslashes
    # and non-ASCII letters survive; nulls are left out; arrays of tables stay tables.
    values = {
        "server": {"max_body_bytes": 16777216, "public_url": "https://floe.example.com/a b"},
        "log": {"level": 'info,floe="x\\y",sqlx=warn'},
        "storage": {"local_roots": ["/srv/lake", "/srv/été"]},
        "bootstrap": {"auto": False},
        "authn": {"providers": [
            {"id": "idp", "kind": "oidc", "issuer": "https://idp.example.com",
             "audiences": ["floe", "spark"], "roles_claim": None},
            {"id": "k8s", "kind": "kubernetes", "issuer": "https://k8s.example.com",
             "audiences": ["floe"], "kubernetes_subject": "uid"}]},
        "extraConfig": {"server": {"limits": {"max_queue_ms": 500}},
                        "gateway": {"region": "eu-central-1"}},
    }
    config = tomllib.loads(floe_toml(render(values)))
    assert config["server"]["max_body_bytes"] == 16777216
    assert isinstance(config["server"]["max_body_bytes"], int)
    assert config["server"]["public_url"] == "https://floe.example.com/a b"
    assert config["server"]["limits"] == {"max_queue_ms": 500}
    assert config["log"]["level"] == values["log"]["level"]
    assert config["storage"]["local_roots"] == ["/srv/lake", "/srv/été"]
    assert config["bootstrap"]["auto"] is False
    assert config["gateway"]["region"] == "eu-central-1"
    providers = config["authn"]["providers"]
    assert [p["id"] for p in providers] == ["idp", "k8s"]
    assert "roles_claim" not in providers[0]
    assert providers[0]["audiences"] == ["floe", "spark"]
    assert providers[1]["kubernetes_subject"] == "uid"


def test_readme_lists_every_value_with_its_default():
    """charts/floe/README.md's table has a row per value of values.yaml (whole dicts for the
    security contexts, probes, resources and images), with the default values.yaml has."""
    opaque = {"podSecurityContext", "securityContext", "resources", "livenessProbe",
              "readinessProbe", "startupProbe", "migration.resources", "tests.resources",
              "tests.image"}
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())

    def leaves(node, prefix=""):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value and path not in opaque:
                yield from leaves(value, path + ".")
            else:
                yield path, value

    expected = dict(leaves(defaults))
    rows = re.findall(r"^\| `([^`]+)` \| `(.*)` \| (.+) \|$",
                      (CHART / "README.md").read_text(), re.M)
    documented = {path: default for path, default, _ in rows}
    assert set(documented) == set(expected), (set(expected) ^ set(documented))
    for path, value in expected.items():
        assert yaml.safe_load(documented[path]) == value, path
    assert all(description.strip() for _, _, description in rows)


def test_readme_examples_render():
    """The values file and the `helm install --set ...` commands of the chart's README render."""
    readme = (CHART / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    assert blocks
    for block in blocks:
        assert render(yaml.safe_load(block))
    commands = re.findall(r"^helm install (?:[^\n]*\\\n)*[^\n]*", readme, re.M)
    with_sets = [c for c in commands if "--set" in c]
    assert with_sets
    for command in with_sets:
        merged: dict = {}
        for expression in re.findall(r"--set (\S+)", command):
            merged = _deep_merge(merged, helm_python.parse_set_string(expression))
        assert len(merged) > 1, command
        assert deployment(render(merged))


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --- content that matters in every values file ---------------------------------------------


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_migration_job_is_a_hook_running_migrate(ci_file):
    objects = render_ci(ci_file)
    job = migration_job(objects)
    postgres = load_values(ci_file).get("database", {}).get("type") == "postgresql"
    if not postgres:
        assert job is None, "SQLite migrates at start: no job"
        return
    hook = annotations(job)
    assert set(hook[HOOK_ANNOTATION].split(",")) == {"pre-install", "pre-upgrade"}
    assert "hook-succeeded" in hook["helm.sh/hook-delete-policy"]
    assert "before-hook-creation" in hook["helm.sh/hook-delete-policy"]
    container = floe_container(job)
    assert container["args"] == ["migrate"]
    assert container["image"] == floe_container(deployment(objects))["image"]
    # What the job needs exists when it runs: its ConfigMap, Secret and ServiceAccount are hooks
    # of the same events with a lower weight.
    weight = int(hook["helm.sh/hook-weight"])
    spec = pod_spec(job)
    needed = {("ConfigMap", v["configMap"]["name"]) for v in spec["volumes"] if "configMap" in v}
    needed |= {("Secret", e["valueFrom"]["secretKeyRef"]["name"]) for e in container["env"]
               if "valueFrom" in e}
    if spec["serviceAccountName"] != "default":
        needed.add(("ServiceAccount", spec["serviceAccountName"]))
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for kind, name in needed:
        obj = by_name.get((kind, name))
        if obj is None:
            # Not the chart's: one of the user's, there before the release.
            assert named_in_values(ci_file, name), f"{kind}/{name} is not rendered"
            continue
        assert annotations(obj).get(HOOK_ANNOTATION) == hook[HOOK_ANNOTATION]
        assert int(annotations(obj)["helm.sh/hook-weight"]) < weight
    # The job reads the same configuration as the pods.
    assert floe_toml(objects, hook=True) == floe_toml(objects)


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_probes(ci_file):
    container = floe_container(deployment(render_ci(ci_file)))
    ports = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
        assert container[probe]["httpGet"]["port"] == "http"


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_security_context(ci_file):
    objects = render_ci(ci_file)
    workloads = [deployment(objects), helm_test_pod(objects)]
    if migration_job(objects):
        workloads.append(migration_job(objects))
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] != 0
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "add" not in sc["capabilities"]
            assert sc["seccompProfile"]["type"] == "RuntimeDefault"
            # A read-only root: whatever is written goes to a volume.
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts
        assert spec.get("hostNetwork") is not True


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_wiring(ci_file):
    """References between the objects resolve: mounts name volumes, volumes name ConfigMaps and
    claims of the release, secretKeyRefs to the chart's Secret name keys it has."""
    objects = render_ci(ci_file)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    chart_secrets = {o["metadata"]["name"]: o for o in objects_of(objects, "Secret")}
    workloads = [deployment(objects), helm_test_pod(objects)]
    if migration_job(objects):
        workloads.append(migration_job(objects))
    for workload in workloads:
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in volumes, mount
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] in chart_secrets:
                    assert ref["key"] in chart_secrets[ref["name"]]["data"], ref
                elif ref:
                    # Not the chart's: one the values name as an existing Secret.
                    assert named_in_values(ci_file, ref["name"]), ref
        for volume in volumes.values():
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                assert ("ConfigMap", name) in by_name or named_in_values(ci_file, name), name
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim",
                        volume["persistentVolumeClaim"]["claimName"]) in by_name
    dep = deployment(objects)
    sa = pod_spec(dep)["serviceAccountName"]
    assert ("ServiceAccount", sa) in by_name
    assert dep["spec"]["selector"]["matchLabels"].items() <= (
        dep["spec"]["template"]["metadata"]["labels"].items())
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= (
        dep["spec"]["template"]["metadata"]["labels"].items())


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_helm_test_pod_calls_health_ready_and_config(ci_file):
    objects = render_ci(ci_file)
    pod = helm_test_pod(objects)
    assert pod["spec"]["restartPolicy"] == "Never"
    script = pod["spec"]["containers"][0]["args"][0]
    for call in ("get /health", "get /ready", 'get "/catalog/v1/config?warehouse=$WAREHOUSE"'):
        assert call in script
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    service = one(objects, "Service")
    assert env["BASE"] == (f"http://{service['metadata']['name']}.{NAMESPACE}.svc:"
                           f"{service['spec']['ports'][0]['port']}")


def test_helm_test_pod_expects_refusal_without_a_token():
    providers = [{"id": "idp", "kind": "oidc", "issuer": "https://idp.example.com",
                  "audiences": ["floe"]}]
    env = {e["name"]: e.get("value") for e in
           helm_test_pod(render({"authn": {"providers": providers}}))["spec"]["containers"][0]["env"]}
    assert env["ANONYMOUS_WITH_AUTHN"] == "true"
    env = {e["name"]: e.get("value") for e in
           helm_test_pod(render_ci("default-values.yaml"))["spec"]["containers"][0]["env"]}
    assert env["ANONYMOUS_WITH_AUTHN"] == "false"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def floe_server(tmp_path):
    """`floe serve` on embedded SQLite (bootstrapped with the warehouse `demo`) on a free port;
    extra FLOE__ variables may be given. Yields its base URL."""
    import time
    import urllib.request

    started = []

    def start(**env):
        port = _free_port()
        data = tmp_path / f"data-{len(started)}"
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
        process = subprocess.Popen(
            [floe_bin(), "serve"],
            env={**base, "FLOE__SERVER__LISTEN": f"127.0.0.1:{port}",
                 "FLOE__GATEWAY__ENABLED": "false", "FLOE__STORAGE__DATA_DIR": str(data),
                 "FLOE__LOG__LEVEL": "warn", **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"floe serve exited {process.returncode}: {process.stderr.read()}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    return url
            except OSError:
                time.sleep(0.2)
        pytest.fail("floe serve did not answer /health within 60 s")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_helm_test_script(objects, base_url: str, tmp_path: Path, **overrides):
    """Runs the test pod's script here, against `base_url`, with the pod's environment."""
    container = helm_test_pod(objects)["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(BASE=base_url, TMPDIR=str(tmp_path), PATH=os.environ["PATH"], **overrides)
    return subprocess.run(["/bin/sh", "-c", container["args"][0]], env=env,
                          capture_output=True, text=True, timeout=180)


def test_helm_test_script_against_floe(floe_server, tmp_path):
    """The test pod's script, run against a real `floe serve` (no cluster here): it passes on a
    catalog that serves its warehouse, on one that does not have it yet (unless required), and
    fails on a catalog that is not there."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed: the test pod's script needs it")
    objects = render_ci("default-values.yaml")
    url = floe_server()
    result = run_helm_test_script(objects, url, tmp_path)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr
    assert "not there yet" not in result.stdout

    result = run_helm_test_script(objects, url, tmp_path, WAREHOUSE="nowhere")
    assert result.returncode == 0 and "not there yet" in result.stdout, result.stdout
    result = run_helm_test_script(objects, url, tmp_path, WAREHOUSE="nowhere",
                                  REQUIRE_WAREHOUSE="true")
    assert result.returncode == 1 and "FAIL" in result.stdout, result.stdout

    closed = f"http://127.0.0.1:{_free_port()}"
    result = run_helm_test_script(objects, closed, tmp_path)
    assert result.returncode == 1 and "/health answered 000" in result.stdout, result.stdout


def test_helm_test_script_with_authentication_and_no_token(floe_server, tmp_path):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed: the test pod's script needs it")
    providers = [{"id": "idp", "kind": "oidc", "issuer": "http://127.0.0.1:9/realms/x",
                  "audiences": ["floe"]}]
    objects = render({"authn": {"providers": providers}})
    # The provider (nowhere) is reported by /ready but does not make Floe unready.
    url = floe_server(FLOE__AUTHN__PROVIDERS='[{id = "idp", kind = "oidc", '
                      'issuer = "http://127.0.0.1:9/realms/x", audiences = ["floe"]}]')
    result = run_helm_test_script(objects, url, tmp_path)
    assert result.returncode == 0 and "refused" in result.stdout, result.stdout + result.stderr
    # Against an open catalog the same pod fails: it expects the refusal.
    open_url = floe_server()
    result = run_helm_test_script(objects, open_url, tmp_path)
    assert result.returncode == 1 and "not 401" in result.stdout, result.stdout


# --- failures that must stop rendering -----------------------------------------------------


def test_sqlite_with_replicas_fails():
    message = render_error({"replicaCount": 3})
    assert 'database.type "sqlite"' in message and "replicaCount is 3" in message


def test_sqlite_with_autoscaling_fails():
    message = render_error({"autoscaling": {"enabled": True}})
    assert 'database.type "sqlite"' in message and "autoscaling.enabled" in message


def test_postgres_needs_an_encryption_key():
    values = {"database": {"type": "postgresql",
                           "postgresql": {"host": "db", "password": "pw"}}}
    assert "secrets.encryption_key" in render_error(values)
    values["secrets"] = {"encryption_key": base64.b64encode(b"k" * 32).decode()}
    assert render(values)


def test_postgres_needs_a_host_or_url():
    values = {"database": {"type": "postgresql", "postgresql": {"password": "pw"}},
              "secrets": {"encryption_key": base64.b64encode(b"k" * 32).decode()}}
    assert "database.postgresql.host" in render_error(values)


def test_authorizers_need_providers():
    message = render_error({"authz": {"backend": "openfga",
                                      "openfga": {"endpoint": "http://openfga:8081"}}})
    assert "authn.providers" in message


def test_unknown_database_type_fails():
    assert "/database/type" in render_error({"database": {"type": "mysql"}})


def test_metrics_port_must_be_free():
    assert "metrics.port" in render_error({"metrics": {"port": 8181}})


def test_values_schema_refuses_unknown_chart_keys():
    # Helm would ignore a misspelt value; the schema names it. (Floe's own settings are checked
    # by Floe: see the config check below.)
    assert "replicaCont" in render_error({"replicaCont": 3})
    assert "targetCPU" in render_error({"autoscaling": {"targetCPU": 50}})
    assert "/tests/auth/type" in render_error({"tests": {"auth": {"type": "basic"}}})


# --- every setting handed to Floe is one Floe knows -----------------------------------------

ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()
PLACEHOLDERS = {
    "FLOE__SECRETS__ENCRYPTION_KEY": ENCRYPTION_KEY,
    "FLOE__DATABASE__URL": "postgres://floe:placeholder@db.example.internal:5432/floe",
    "PGPASSWORD": "placeholder-password",
}


def floe_env(container: dict, config_file: Path) -> dict[str, str]:
    """The container's environment as Floe would see it, with plausible values for what comes
    from Secrets."""
    env = {}
    for entry in container.get("env", []):
        name = entry["name"]
        if "value" in entry:
            env[name] = str(entry["value"])
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            env[name] = PLACEHOLDERS.get(name, f"placeholder-{name.lower().replace('_', '-')}")
        else:
            pytest.fail(f"unexpected env source for {name}: {entry}")
    assert env.get("FLOE_CONFIG") == "/etc/floe/floe.toml"
    env["FLOE_CONFIG"] = str(config_file)
    return env


def floe_bin() -> str:
    path = os.environ.get("FLOE_BIN")
    if not path:
        pytest.skip("FLOE_BIN is not set: this test runs the floe binary (`floe config check` "
                    "knows Floe's settings; `floe serve` answers the helm test's script), e.g. "
                    "FLOE_BIN=target/debug/floe")
    assert Path(path).is_file(), f"FLOE_BIN={path} does not exist"
    return path


def config_check(config_file: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run([floe_bin(), "--config", str(config_file), "config", "check"],
                          env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_floe_accepts_the_rendered_configuration(ci_file, tmp_path):
    objects = render_ci(ci_file)
    workloads = [("Deployment", deployment(objects), False)]
    if migration_job(objects):
        workloads.append(("Job", migration_job(objects), True))
    for kind, workload, hook in workloads:
        toml_text = floe_toml(objects, hook=hook)
        config = tomllib.loads(toml_text)
        assert set(config) <= FLOE_SECTIONS, set(config) - FLOE_SECTIONS
        config_file = tmp_path / f"{kind}.toml"
        config_file.write_text(toml_text)
        env = floe_env(floe_container(workload), config_file)
        for name in env:
            assert not name.startswith("FLOE_") or name == "FLOE_CONFIG" or \
                name.startswith("FLOE__"), f"{name}: Floe reads FLOE__SECTION__KEY"
        result = config_check(config_file, env)
        assert result.returncode == 0, (
            f"{kind} of {ci_file}: floe config check exited {result.returncode}\n"
            f"{result.stderr}\n--- floe.toml\n{toml_text}\n--- env\n{sorted(env)}")


def test_config_check_refuses_what_floe_does_not_know(tmp_path):
    # The check above can fail: an unknown key in the file, or an unknown FLOE__ variable, is
    # refused with exit 2 and a message naming it.
    objects = render_ci("postgres-values.yaml")
    toml_text = floe_toml(objects)
    config_file = tmp_path / "floe.toml"
    env = floe_env(floe_container(deployment(objects)), config_file)
    config_file.write_text(toml_text + "\n[database.pool]\nsize_hint = 3\n")
    result = config_check(config_file, env)
    assert result.returncode == 2, result
    assert result.stderr.startswith("floe: ") and "pool" in result.stderr, result.stderr
    config_file.write_text(toml_text)
    result = config_check(config_file, {**env, "FLOE__DATABASE__MAX_CONECTIONS": "4"})
    assert result.returncode == 2, result
    assert "max_conections" in result.stderr, result.stderr
