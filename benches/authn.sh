#!/usr/bin/env bash
# Authenticated vs open loadTable in one run: a real OpenID provider (tests/oidc), one Floe with
# it configured and one without, the same tree in each, then alternating 10-second load-table runs.
#   cargo build --release --bins && (cd tests/oidc && npm ci) && benches/authn.sh [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
floe=target/release/floe; bench=target/release/floe-bench
backend="${1:-sqlite}"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

(cd tests/oidc && node server.mjs '[{"client_id":"bench","client_secret":"bench-secret","token_endpoint_auth_method":"client_secret_post"}]' >"$work/idp.out" 2>/dev/null) &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/idp.out" ] && break; sleep 0.1; done
issuer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["issuer"])' "$work/idp.out")
token=$(curl -sf -d grant_type=client_credentials -d client_id=bench -d client_secret=bench-secret -d scope=catalog "$issuer/token" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

cat >"$work/secure.toml" <<TOML
[[authn.providers]]
id = "idp"
kind = "oidc"
issuer = "$issuer"
audiences = ["urn:floe:catalog"]
TOML

start() { # name, extra args...
    local name=$1; shift
    local env=(FLOE__LOG__LEVEL=warn)
    if [ "$backend" = postgres ]; then
        psql postgres://postgres@127.0.0.1:5432/postgres -XAtqc "DROP DATABASE IF EXISTS floe_bench_$name WITH (FORCE)" >/dev/null
        psql postgres://postgres@127.0.0.1:5432/postgres -XAtqc "CREATE DATABASE floe_bench_$name" >/dev/null
        env+=(FLOE__DATABASE__URL=postgres://postgres@127.0.0.1:5432/floe_bench_$name FLOE__DATABASE__AUTO_MIGRATE=true
              FLOE__BOOTSTRAP__AUTO=true FLOE__SECRETS__ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
              FLOE__DATABASE__MAX_CONNECTIONS=16)
    fi
    env "${env[@]}" $floe serve --listen 127.0.0.1:0 --s3-listen 127.0.0.1:0 --data-dir "$work/$name" "$@" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=($!)
    for _ in $(seq 100); do grep -q 'uri="' "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
    sed -n 's/.*uri="\([^"]*\)".*/\1/p' "$work/$name.out" | head -1
}
open_uri=$(start open)
secure_uri=$(start secure --config "$work/secure.toml")
echo "open:   $open_uri"
echo "secure: $secure_uri"

$bench --uri "$open_uri" --warehouse demo create-tree --prefix-name b1 >/dev/null
$bench --uri "$secure_uri" --warehouse demo --token "$token" create-tree --prefix-name b1 >/dev/null
for round in 1 2; do
    echo "round $round, open:"
    $bench --uri "$open_uri" --warehouse demo load-table --prefix-name b1 --duration 10 2>/dev/null | grep -A1 "^operation"
    echo "round $round, authenticated:"
    $bench --uri "$secure_uri" --warehouse demo --token "$token" load-table --prefix-name b1 --duration 10 2>/dev/null | grep -A1 "^operation"
done
