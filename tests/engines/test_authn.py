"""Identity: Floe with an OpenID provider configured (panva's certified oidc-provider, tests/oidc),
on SQLite and on PostgreSQL. Deny by default, users and the first admin, Kubernetes-style
service-account tokens, and every attack on token validation the identity issue names, each a
test that fails if the hole reopens. Only the attack tokens are forged here; every valid token
comes from the real provider."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import tempfile
import threading
import time
import uuid

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import Floe, authn_config, duckdb_with_iceberg, grant, warehouse_id

UUID = "00000000-0000-7000-8000-000000000000"


def b64(data):
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def rs256(header, payload, key):
    signing_input = f"{b64(header)}.{b64(payload)}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(signature)}"


def claims_for(idp, **extra):
    now = int(time.time())
    claims = {
        "iss": idp.issuer,
        "sub": "mallory",
        "aud": "urn:floe:catalog",
        "iat": now,
        "exp": now + 3600,
        "scope": "catalog",
    }
    claims.update(extra)
    return claims


def get(floe, path, token=None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return requests.get(f"{floe.base}{path}", headers=headers, timeout=30, **kwargs)


def assert_refused(response, reason=None):
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    error = response.json()["error"]
    assert error["type"] == "NotAuthorizedException"
    assert error["code"] == 401
    if reason:
        assert reason in error["message"], error["message"]
    return error["message"]


def whoami(floe, token):
    response = get(floe, "/management/v1/whoami", token)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------------------------------------
# Deny by default


def test_every_route_needs_a_token_but_health_ready_and_docs(secure_floe):
    for path in ["/health", "/ready", "/docs/", "/docs/catalog.json", "/docs/management.json"]:
        assert get(secure_floe, path).status_code == 200, path
    checked = 0
    for doc in ["catalog", "management"]:
        spec = get(secure_floe, f"/docs/{doc}.json").json()
        for template, item in spec["paths"].items():
            path = template
            for name in ["id", "commit", "plan-id"]:
                path = path.replace("{" + name + "}", UUID)
            while "{" in path:
                start = path.index("{")
                path = path[:start] + "x" + path[path.index("}", start) + 1 :]
            for method in item:
                if method not in ("get", "head", "post", "put", "delete"):
                    continue
                response = requests.request(
                    method.upper(),
                    f"{secure_floe.base}{path}",
                    json={} if method in ("post", "put") else None,
                    timeout=30,
                )
                assert response.status_code == 401, f"{method} {path}: {response.status_code}"
                if method != "head":
                    assert_refused(response)
                checked += 1
    assert checked > 60
    # A malformed header, another scheme, or two headers are refused the same way.
    for headers in [
        {"authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"authorization": "Bearer"},
        {"authorization": "Bearer not-a-jwt"},
    ]:
        assert_refused(get(secure_floe, "/catalog/v1/config?warehouse=demo", headers=headers))


def test_engines_see_the_catalog_with_a_token(secure_floe, idp):
    token = idp.token("pyiceberg")
    grant(secure_floe, idp.token(), "warehouse", warehouse_id(secure_floe, idp.token()), "user:idp~pyiceberg", "describe")
    response = get(secure_floe, "/catalog/v1/config?warehouse=demo", token)
    assert response.status_code == 200, response.text
    assert response.json()["overrides"]["prefix"]
    # The deprecated token endpoint is not served: clients get tokens from the IdP.
    response = requests.post(
        f"{secure_floe.uri}/v1/oauth/tokens",
        data={"grant_type": "client_credentials"},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code in (404, 405), response.status_code


# ---------------------------------------------------------------------------------------------
# Users and the first admin


def test_users_are_recorded_on_first_sight(secure_floe, idp):
    machine = whoami(secure_floe, idp.token("spark-etl"))
    assert machine["authenticated"] is True
    assert machine["id"] == "idp~spark-etl"
    assert machine["user"]["kind"] == "machine"
    assert machine["user"]["last-seen-at"]

    token = idp.user_token(
        "alice", name="Alice Liddell", email="alice@example.com", claims={"groups": ["analysts", "eng"]}
    )
    alice = whoami(secure_floe, token)
    assert alice["id"] == "idp~alice"
    assert alice["provider"] == "idp"
    assert alice["user"]["name"] == "Alice Liddell"
    assert alice["user"]["email"] == "alice@example.com"
    assert alice["user"]["kind"] == "human"
    assert alice["roles"] == ["analysts", "eng"]

    admin = idp.token()
    listed = get(secure_floe, "/management/v1/users", admin).json()
    ids = [u["id"] for u in listed["users"]]
    assert {"idp~alice", "idp~spark-etl", "idp~minter"} <= set(ids)
    assert ids == sorted(ids)
    found = get(secure_floe, "/management/v1/users?name=LIDDELL", admin).json()["users"]
    assert [u["id"] for u in found] == ["idp~alice"]
    page = get(secure_floe, "/management/v1/users?pageSize=1", admin).json()
    assert len(page["users"]) == 1 and page["next-page-token"]
    rest = get(
        secure_floe, f"/management/v1/users?pageSize=100&pageToken={page['next-page-token']}", admin
    ).json()
    assert [u["id"] for u in page["users"] + rest["users"]] == ids


def test_users_are_provisioned_and_deleted(secure_floe, idp):
    admin = idp.token()
    url = f"{secure_floe.base}/management/v1/users"
    auth = {"authorization": f"Bearer {admin}"}
    created = requests.post(url, json={"id": "idp~bob", "name": "Bob", "kind": "human"}, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Bob" and "last-seen-at" not in created.json()
    updated = requests.post(url, json={"id": "idp~bob", "name": "Robert"}, headers=auth)
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Robert"
    for bad in [
        {"id": "bob"},
        {"id": "nope~bob"},
        {"id": "idp~"},
        {"id": "idp~bob", "kind": "robot"},
        {"id": "idp~bob", "name": "a\u0000b"},
        {"id": "idp~bob", "password": "x"},
    ]:
        response = requests.post(url, json=bad, headers=auth)
        assert response.status_code == 400, (bad, response.text)
    # Bob signs in later: the provisioned record is his.
    assert whoami(secure_floe, idp.user_token("bob", name="Robert"))["user"]["name"] == "Robert"
    assert requests.delete(f"{url}/idp~bob", headers=auth).status_code == 204
    assert requests.get(f"{url}/idp~bob", headers=auth).status_code == 404
    assert requests.delete(f"{url}/idp~bob", headers=auth).status_code == 404


def test_the_first_caller_of_bootstrap_becomes_admin(idp):
    floe = Floe("postgres", config=authn_config(idp), env={"FLOE__BOOTSTRAP__AUTO": "false"}, token=None)
    try:
        first, second = idp.user_token("root-user"), idp.user_token("late-user")
        assert whoami(floe, first)["server-admin"] is False
        response = requests.post(
            f"{floe.base}/management/v1/bootstrap", headers={"authorization": f"Bearer {first}"}
        )
        assert response.status_code == 200, response.text
        response = requests.post(
            f"{floe.base}/management/v1/bootstrap", headers={"authorization": f"Bearer {second}"}
        )
        assert response.status_code == 409, response.text
        assert whoami(floe, first)["server-admin"] is True
        assert whoami(floe, second)["server-admin"] is False
    finally:
        floe.stop()


def test_an_automatically_bootstrapped_server_gets_one_admin_and_break_glass_admins(secure_floe, idp):
    # The fixture's server bootstrapped itself at start, with no admin: the first caller claims it.
    first, second = idp.user_token("first-user"), idp.user_token("second-user")
    bootstrap = f"{secure_floe.base}/management/v1/bootstrap"
    assert requests.post(bootstrap, headers={"authorization": f"Bearer {first}"}).status_code == 200
    assert requests.post(bootstrap, headers={"authorization": f"Bearer {second}"}).status_code == 409
    assert whoami(secure_floe, first)["server-admin"] is True
    assert whoami(secure_floe, idp.user_token("breakglass"))["server-admin"] is True
    assert whoami(secure_floe, second)["server-admin"] is False


def test_gateway_admin_keys_record_their_creator(secure_floe, idp):
    token = idp.user_token("keymaker")
    auth = {"authorization": f"Bearer {token}"}
    # Managing a warehouse's access keys takes its ownership.
    grant(secure_floe, idp.token(), "warehouse", warehouse_id(secure_floe, idp.token()), "user:idp~keymaker", "ownership")
    warehouses = requests.get(f"{secure_floe.base}/management/v1/warehouses", headers=auth).json()
    demo = next(w for w in warehouses["warehouses"] if w["name"] == "demo")
    url = f"{secure_floe.base}/management/v1/warehouses/{demo['id']}/access-keys"
    assert requests.post(url, json={"description": "etl"}, headers=auth).status_code == 201
    keys = requests.get(url, headers=auth).json()["access-keys"]
    assert [k["created-by"] for k in keys] == ["idp~keymaker"]


# ---------------------------------------------------------------------------------------------
# What a valid token is


@pytest.mark.parametrize("audience", ["urn:floe:catalog", "urn:floe:catalog:ps256", "urn:floe:catalog:es256", "urn:floe:catalog:eddsa"])
def test_rsa_pss_ecdsa_and_eddsa_signatures_verify(secure_floe, idp, audience):
    token = idp.user_token("sig-user", resource=audience)
    expected = {
        "urn:floe:catalog": "RS256",
        "urn:floe:catalog:ps256": "PS256",
        "urn:floe:catalog:es256": "ES256",
        "urn:floe:catalog:eddsa": "EdDSA",
    }[audience]
    assert json.loads(unb64(token.split(".")[0]))["alg"] == expected
    assert whoami(secure_floe, token)["id"] == "idp~sig-user"


def test_idp_roles_map_to_floe_roles_per_token(idp):
    config = authn_config(idp, extra_authn='admins = ["idp~minter"]', extra_provider='roles-claim = "groups"') + """
[authz]
role_mappings = [
    { matches = "team-*", role = "analysts" },
    { provider = "idp", matches = "admins", role = "operators" },
    { matches = "ghosts", role = "nobody-made-this-role" },
]
"""
    floe = Floe("sqlite", config=config, token=idp.token())
    try:
        admin = {"authorization": f"Bearer {idp.token()}"}
        for name in ["analysts", "operators", "unrelated"]:
            response = requests.post(f"{floe.base}/management/v1/roles", json={"name": name}, headers=admin)
            assert response.status_code == 201, response.text
        token = idp.user_token("olive", claims={"groups": ["team-analytics", "admins", "ghosts", "eng"]})
        me = whoami(floe, token)
        assert me["roles"] == ["team-analytics", "admins", "ghosts", "eng"]
        assert me["mapped-roles"] == ["analysts", "operators"]
        # The next token says otherwise: the mapping follows it, no sync needed.
        later = idp.user_token("olive", claims={"groups": ["team-x"]})
        assert whoami(floe, later)["mapped-roles"] == ["analysts"]
        assert whoami(floe, idp.user_token("olive"))["mapped-roles"] == []
    finally:
        floe.stop()


def test_required_scopes_and_subject_claims(idp):
    config = authn_config(
        idp,
        extra_provider='required-scopes = ["floe"]\nsubject-claims = ["email", "sub"]',
    )
    floe = Floe("sqlite", config=config)
    try:
        without = idp.user_token("carol", email="carol@example.com", scope="catalog")
        assert_refused(get(floe, "/management/v1/whoami", without), 'required scope "floe"')
        with_scope = idp.user_token("carol", email="carol@example.com", scope="catalog floe")
        assert whoami(floe, with_scope)["id"] == "idp~carol@example.com"
        # The first subject claim present wins; without an email, `sub` names the user.
        assert whoami(floe, idp.user_token("dave", scope="floe"))["id"] == "idp~dave"
    finally:
        floe.stop()


def test_a_configured_jwks_uri_skips_discovery(idp):
    # As for a Kubernetes API server whose discovery names an address Floe cannot reach.
    before = idp.stats()["discovery"]
    floe = Floe("sqlite", config=authn_config(idp, extra_provider=f'jwks-uri = "{idp.issuer}/jwks"'))
    try:
        assert whoami(floe, idp.user_token("nina"))["id"] == "idp~nina"
        assert idp.stats()["discovery"] == before
    finally:
        floe.stop()


def test_kubernetes_service_account_tokens(idp):
    # The provider serves OpenID discovery as a cluster's API server does for its service-account
    # issuer; the tokens carry the projected-token claims.
    claims = {
        "kubernetes.io": {
            "namespace": "etl",
            "serviceaccount": {"name": "spark", "uid": "8c1e6a5e-uid"},
            "pod": {"name": "spark-driver", "uid": "pod-uid"},
        }
    }
    sub = "system:serviceaccount:etl:spark"
    by_name = Floe("sqlite", config=authn_config(idp, provider_id="k8s", kind="kubernetes"))
    by_uid = Floe(
        "sqlite",
        config=authn_config(idp, provider_id="k8s", kind="kubernetes", extra_provider='kubernetes-subject = "uid"'),
    )
    try:
        token = idp.user_token(sub, claims=claims)
        me = whoami(by_name, token)
        assert me["id"] == f"k8s~{sub}"
        assert me["user"]["kind"] == "machine"
        me = whoami(by_uid, token)
        assert me["id"] == "k8s~8c1e6a5e-uid"
        assert me["user"]["name"] == sub
        # A token without the uid claim names no subject under `uid`.
        assert_refused(get(by_uid, "/management/v1/whoami", idp.user_token(sub)), "no subject")
    finally:
        by_name.stop()
        by_uid.stop()


# ---------------------------------------------------------------------------------------------
# Attacks


def test_alg_none_is_refused(secure_floe, idp):
    claims = claims_for(idp)
    for alg in ["none", "None", "NONE"]:
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
        assert_refused(get(secure_floe, "/management/v1/whoami", token))
        token = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.c2ln"
        assert_refused(get(secure_floe, "/management/v1/whoami", token), "not accepted")


def test_hs256_signed_with_the_providers_public_key_is_refused(secure_floe, idp):
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    jwk = next(k for k in idp.jwks()["keys"] if k.get("alg") == "RS256")
    n = int.from_bytes(unb64(jwk["n"]), "big")
    e = int.from_bytes(unb64(jwk["e"]), "big")
    public = RSAPublicNumbers(e, n).public_key()
    claims = claims_for(idp)
    for secret in [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(jwk).encode(),
    ]:
        for alg, digest in [("HS256", hashlib.sha256), ("HS512", hashlib.sha512)]:
            header = {"alg": alg, "typ": "JWT", "kid": jwk["kid"]}
            signing_input = f"{b64(header)}.{b64(claims)}"
            signature = hmac.new(secret, signing_input.encode(), digest).digest()
            token = f"{signing_input}.{b64(signature)}"
            assert_refused(get(secure_floe, "/management/v1/whoami", token), "not accepted")


class _CountingKeyServer:
    """An attacker's HTTP server that serves a discovery document and a JWKS for its own key,
    and counts every request it receives."""

    def __init__(self, key):
        self.hits = []
        public = key.public_key().public_numbers()
        jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "attacker",
                    "alg": "RS256",
                    "use": "sig",
                    "n": b64(public.n.to_bytes((public.n.bit_length() + 7) // 8, "big")),
                    "e": b64(public.e.to_bytes(3, "big")),
                }
            ]
        }
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                if self.path.endswith("openid-configuration"):
                    body = {"issuer": outer.url, "jwks_uri": f"{outer.url}/jwks"}
                else:
                    body = jwks
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def test_an_unconfigured_issuer_never_causes_a_fetch(secure_floe, idp):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker = _CountingKeyServer(key)
    try:
        header = {"alg": "RS256", "typ": "JWT", "kid": "attacker", "jku": f"{attacker.url}/jwks"}
        # The token names the attacker's issuer: refused before any key is looked up.
        token = rs256(header, claims_for(idp, iss=attacker.url), key)
        assert_refused(get(secure_floe, "/management/v1/whoami", token), "issuer")
        # It names the configured issuer but points at the attacker's keys (jku, x5u, jwk): the
        # configured issuer's keys decide, and the attacker's server is never asked.
        public = key.public_key().public_numbers()
        embedded = {"kty": "RSA", "n": b64(public.n.to_bytes(256, "big")), "e": "AQAB", "kid": "attacker"}
        for extra in [{}, {"x5u": f"{attacker.url}/cert"}, {"jwk": embedded}]:
            token = rs256({**header, **extra}, claims_for(idp), key)
            assert_refused(get(secure_floe, "/management/v1/whoami", token))
        time.sleep(0.5)
        assert attacker.hits == []
    finally:
        attacker.stop()


def test_wrong_audience_is_refused(secure_floe, idp):
    token = idp.user_token("eve", resource="urn:floe:other")
    assert_refused(get(secure_floe, "/management/v1/whoami", token), "aud")


def test_expired_and_not_yet_valid_tokens_are_refused(idp):
    floe = Floe("sqlite", config=authn_config(idp, extra_authn="leeway_secs = 0"))
    try:
        short = idp.user_token("frank", ttl=1)
        future = idp.user_token("frank", claims={"nbf": int(time.time()) + 3600})
        assert_refused(get(floe, "/management/v1/whoami", future), "not valid yet")
        time.sleep(2.5)
        assert_refused(get(floe, "/management/v1/whoami", short), "expired")
    finally:
        floe.stop()
    # With a leeway, a token that just expired is still accepted, one long past is not.
    floe = Floe("sqlite", config=authn_config(idp, extra_authn="leeway_secs = 60"))
    try:
        assert whoami(floe, short)["id"] == "idp~frank"
    finally:
        floe.stop()


def test_a_tampered_payload_is_refused(secure_floe, idp):
    token = idp.user_token("grace")
    assert whoami(secure_floe, token)["id"] == "idp~grace"
    header, payload, signature = token.split(".")
    claims = json.loads(unb64(payload))
    for change in [{"sub": "admin"}, {"exp": claims["exp"] + 86400}, {"aud": "urn:floe:catalog:es256"}]:
        forged = f"{header}.{b64({**claims, **change})}.{signature}"
        assert_refused(get(secure_floe, "/management/v1/whoami", forged), "signature")
    # A signature of another valid token does not carry over either.
    other = idp.user_token("heidi").split(".")[2]
    assert_refused(get(secure_floe, "/management/v1/whoami", f"{header}.{payload}.{other}"))


def test_an_unknown_kid_flood_refetches_the_keys_a_bounded_number_of_times(idp):
    # Refetches at most every 2 s: a flood lasting a few seconds costs the IdP a handful.
    floe = Floe("sqlite", config=authn_config(idp, extra_authn="refetch_interval_secs = 2\nrefresh_interval_secs = 300"))
    try:
        assert whoami(floe, idp.user_token("ivan"))["id"] == "idp~ivan"
        before = idp.jwks_hits()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        started = time.time()
        session = requests.Session()
        for i in range(300):
            token = rs256({"alg": "RS256", "kid": f"kid-{uuid.uuid4()}"}, claims_for(idp, sub=f"m{i}"), key)
            response = session.get(
                f"{floe.base}/management/v1/whoami", headers={"authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
        elapsed = time.time() - started
        fetched = idp.jwks_hits() - before
        assert fetched <= elapsed / 2 + 2, (fetched, elapsed)
    finally:
        floe.stop()


def test_cached_keys_keep_working_when_the_idp_goes_down(idp):
    from conftest import Idp

    own = Idp()
    floe = Floe("sqlite", config=authn_config(own, extra_authn="refetch_interval_secs = 1\nrefresh_interval_secs = 1"))
    try:
        used, unused = own.user_token("judy"), own.user_token("judy")
        assert whoami(floe, used)["id"] == "idp~judy"
        ready = get(floe, "/ready").json()
        assert ready["identity-providers"]["idp"] == {"status": "ok"}
        own.stop()
        # Within a couple of refreshes Floe knows the provider is unreachable, and says so.
        deadline = time.time() + 15
        while time.time() < deadline:
            response = get(floe, "/ready")
            if response.json()["identity-providers"]["idp"]["status"] == "unreachable":
                break
            time.sleep(0.3)
        assert response.status_code == 200, response.text
        provider = response.json()["identity-providers"]["idp"]
        assert provider["status"] == "unreachable" and provider["cached-keys"] is True
        assert response.json()["status"] == "ready"
        # A token never seen before verifies against the cached keys.
        assert whoami(floe, unused)["id"] == "idp~judy"
    finally:
        own.stop()
        floe.stop()


def test_an_idp_down_at_start_does_not_stop_floe(idp):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]

    class Down:
        issuer = f"http://127.0.0.1:{closed}"

    config = authn_config(idp, provider_id="idp") + authn_config(Down, provider_id="down").split("[authn]", 1)[1]
    floe = Floe("sqlite", config=config, token=idp.token())
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            providers = get(floe, "/ready").json().get("identity-providers", {})
            if providers.get("down", {}).get("status") == "unreachable" and providers.get("idp") == {"status": "ok"}:
                break
            time.sleep(0.2)
        response = get(floe, "/ready")
        assert response.status_code == 200
        down = response.json()["identity-providers"]["down"]
        assert down["status"] == "unreachable" and down["cached-keys"] is False
        # Why is for the log: an unauthenticated probe learns no addresses.
        assert "reason" not in down and str(closed) not in response.text
        # The other provider's users work; a token of the unreachable one is refused clearly.
        assert whoami(floe, idp.user_token("leo"))["id"] == "idp~leo"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = rs256({"alg": "RS256", "kid": "k"}, claims_for(idp, iss=Down.issuer), key)
        assert_refused(get(floe, "/management/v1/whoami", token), "cannot be reached")
    finally:
        floe.stop()


def test_tokens_never_reach_the_log_and_lines_name_their_actor(idp):
    log = tempfile.NamedTemporaryFile(prefix="floe-authn-log-", delete=False)
    log.close()
    floe = Floe(
        "sqlite",
        config=authn_config(idp, extra_authn='admins = ["idp~kim"]'),
        log_path=log.name,
        env={"FLOE__LOG__LEVEL": "debug,sqlx=debug,hyper=debug,reqwest=debug,h2=debug", "FLOE__LOG__FORMAT": "json"},
    )
    try:
        good = idp.user_token("kim", name="Kim")
        assert whoami(floe, good)["id"] == "idp~kim"
        assert get(floe, "/catalog/v1/config?warehouse=demo", good).status_code == 200
        header, payload, signature = good.split(".")
        bad = f"{header}.{payload}.{signature[::-1]}"
        assert_refused(get(floe, "/management/v1/whoami", bad))
        assert_refused(get(floe, "/management/v1/whoami", "Zm9v.YmFy.YmF6"))
    finally:
        floe.stop()
    with open(log.name, encoding="utf-8", errors="replace") as f:
        text = f.read()
    os.unlink(log.name)
    assert "DEBUG" in text or '"level":"DEBUG"' in text, "the log was not at debug level"
    for secret in [good, signature, signature[::-1], payload, "Zm9v.YmFy.YmF6"]:
        assert secret not in text, "a token reached the log"
    # Request log lines carry the actor of the request.
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    actors = {
        span.get("actor")
        for line in lines
        for span in line.get("spans", []) + [line.get("span", {})]
        if isinstance(span, dict)
    }
    assert "idp~kim" in actors, "no log line names the request's actor"


# ---------------------------------------------------------------------------------------------
# Engines sign in through the IdP, unchanged


def test_pyiceberg_signs_in_with_client_credentials(secure_floe, idp):
    import pyarrow as pa
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import UnauthorizedError

    # `create` on the warehouse: PyIceberg then owns the namespace and the table it creates.
    grant(secure_floe, idp.token(), "warehouse", warehouse_id(secure_floe, idp.token()), "user:idp~pyiceberg", "create")
    catalog = load_catalog(
        "floe",
        type="rest",
        uri=secure_floe.uri,
        warehouse="demo",
        credential="pyiceberg:pyiceberg-secret",
        **{"oauth2-server-uri": idp.token_url, "scope": "catalog"},
    )
    catalog.create_namespace("signed_in")
    table = catalog.create_table(
        "signed_in.events", schema=pa.schema([("id", pa.int64()), ("v", pa.string())])
    )
    table.append(pa.table({"id": [1, 2], "v": ["a", "b"]}))
    read = catalog.load_table("signed_in.events").scan().to_arrow().sort_by("id")
    assert read.to_pylist() == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    # Without a credential the same catalog is refused.
    with pytest.raises(UnauthorizedError, match="NotAuthorizedException"):
        load_catalog("anon", type="rest", uri=secure_floe.uri, warehouse="demo")
    # A wrong secret fails at the IdP, before Floe.
    with pytest.raises(Exception, match="invalid_client|401|Unauthorized"):
        load_catalog(
            "wrong",
            type="rest",
            uri=secure_floe.uri,
            warehouse="demo",
            credential="pyiceberg:wrong",
            **{"oauth2-server-uri": idp.token_url},
        ).list_namespaces()


def test_duckdb_signs_in_with_its_oauth2_secret(secure_floe, idp):
    import duckdb

    grant(secure_floe, idp.token(), "warehouse", warehouse_id(secure_floe, idp.token()), "user:idp~duckdb", "create")
    con = duckdb_with_iceberg()
    con.execute(
        f"""CREATE SECRET floe_idp (TYPE iceberg, CLIENT_ID 'duckdb', CLIENT_SECRET 'duckdb-secret',
            OAUTH2_SERVER_URI '{idp.token_url}', OAUTH2_SCOPE 'catalog')"""
    )
    con.execute(f"ATTACH 'demo' AS cat (TYPE iceberg, ENDPOINT '{secure_floe.uri}', SECRET floe_idp)")
    con.execute("CREATE SCHEMA cat.duck")
    con.execute("CREATE TABLE cat.duck.t (id INTEGER, v VARCHAR)")
    con.execute("INSERT INTO cat.duck.t VALUES (1, 'a'), (2, 'b')")
    assert con.execute("SELECT id, v FROM cat.duck.t ORDER BY id").fetchall() == [(1, "a"), (2, "b")]
    con.close()
    # Without its secret DuckDB cannot attach.
    anon = duckdb_with_iceberg()
    with pytest.raises(duckdb.Error):
        anon.execute(
            f"ATTACH 'demo' AS cat (TYPE iceberg, ENDPOINT '{secure_floe.uri}', AUTHORIZATION_TYPE 'none')"
        )
        anon.execute("SHOW ALL TABLES").fetchall()
    anon.close()
    users = get(secure_floe, "/management/v1/users?name=duckdb", idp.token()).json()["users"]
    assert [u["id"] for u in users] == ["idp~duckdb"]
