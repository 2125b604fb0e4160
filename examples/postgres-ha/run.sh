#!/usr/bin/env bash
# Two Floe instances on one PostgreSQL database behind one address:
#   1. `floe migrate` once;
#   2. two `floe serve` (free ports, S3 gateway off, one shared data folder for the warehouse);
#   3. a round-robin proxy in front (proxy.py) on FLOE_HA_LISTEN (default 127.0.0.1:8181);
#   4. bootstrap and a local warehouse `lake`, through the proxy (management API);
#   5. concurrent PyIceberg commits through the proxy, checked: every commit landed, and both
#      instances serve the same table version (client.py commit);
#   6. one instance stopped: the proxy skips it and the survivor serves everything (client.py check).
# Everything it starts is stopped when it ends.
#
# Needs `floe` on PATH, PyIceberg (../requirements.txt) in $PYTHON (default python3), curl, and
# FLOE__DATABASE__URL: an empty (or earlier run's) PostgreSQL database.
set -euo pipefail
cd "$(dirname "$0")"

: "${FLOE__DATABASE__URL:?set FLOE__DATABASE__URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/floe_ha}"
export FLOE__DATABASE__URL
# Every instance needs the same key (it encrypts stored storage credentials). Keep yours: this
# example makes a throw-away one when none is set.
export FLOE__SECRETS__ENCRYPTION_KEY="${FLOE__SECRETS__ENCRYPTION_KEY:-$(openssl rand -base64 32)}"
# Two gateways on one machine would need two ports; this example uses none (`file://` warehouse).
export FLOE__GATEWAY__ENABLED=false
export FLOE__LOG__LEVEL="${FLOE__LOG__LEVEL:-warn}"
PYTHON="${PYTHON:-python3}"
LISTEN="${FLOE_HA_LISTEN:-127.0.0.1:8181}"
# The warehouse's files: every instance (and the client, which writes `file://` data) sees them.
DATA="${FLOE_HA_DATA_DIR:-$PWD/floe-ha-data}"
WORKERS="${FLOE_HA_WORKERS:-4}"
COMMITS="${FLOE_HA_COMMITS:-10}"

work=$(mktemp -d)
instances=()   # pids of the floe instances
proxy=""
cleanup() {
    status=$?
    for pid in "${instances[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$proxy" ]; then
        kill "$proxy" 2>/dev/null || true
        wait "$proxy" 2>/dev/null || true
        grep 'connections per backend' "$work/proxy.out" || true
    fi
    wait 2>/dev/null || true
    if [ "$status" -ne 0 ]; then
        for log in "$work"/*.log; do echo "--- $log"; tail -n 30 "$log"; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

# The first line of FILE matching PATTERN, waited for up to 60 s (while PID lives).
wait_for() { # FILE PATTERN PID
    for _ in $(seq 600); do
        if line=$(grep -m1 -oE "$2" "$1" 2>/dev/null); then echo "$line"; return 0; fi
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    echo "gave up waiting for /$2/ in $1" >&2
    return 1
}

step "floe migrate"
floe migrate

step "two floe serve instances on one database"
mkdir -p "$DATA"
backends=()
for i in 1 2; do
    floe serve --listen 127.0.0.1:0 --data-dir "$DATA" >"$work/floe-$i.out" 2>"$work/floe-$i.log" &
    instances+=($!)
    uri=$(wait_for "$work/floe-$i.out" 'uri="[^"]+"' "$!")
    uri=${uri#uri=\"}; uri=${uri%\"}
    backends+=("${uri%/catalog}")
    echo "instance $i: ${backends[-1]}"
done

step "round-robin proxy on $LISTEN"
"$PYTHON" proxy.py --listen "$LISTEN" "${backends[@]}" >"$work/proxy.out" 2>"$work/proxy.log" &
proxy=$!
front=$(wait_for "$work/proxy.out" 'listening on http://[0-9.:]+' "$proxy")
front=${front#listening on }
echo "clients use $front"

step "bootstrap and a warehouse, through the proxy"
# 409 on a database an earlier run bootstrapped, or whose warehouse exists.
code=$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST "$front/management/v1/bootstrap")
case "$code" in 200|201|409) echo "bootstrap: $code" ;; *) cat "$work/answer"; exit 1 ;; esac
code=$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST "$front/management/v1/warehouses" \
    -H 'content-type: application/json' \
    -d "{\"name\": \"lake\", \"storage-profile\": {\"type\": \"local\", \"root\": \"$DATA/warehouses/lake\"}}")
case "$code" in 201|409) echo "warehouse lake: $code" ;; *) cat "$work/answer"; exit 1 ;; esac

step "$WORKERS concurrent writers, $COMMITS commits each, through $front"
"$PYTHON" client.py commit --endpoint "$front" --workers "$WORKERS" --commits "$COMMITS" \
    --instance "${backends[0]}" --instance "${backends[1]}"

step "stop instance 1: the survivor serves every request"
kill "${instances[0]}"
wait "${instances[0]}" 2>/dev/null || true
"$PYTHON" client.py check --endpoint "$front" --rows $((WORKERS * COMMITS))
