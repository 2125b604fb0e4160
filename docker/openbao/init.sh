#!/bin/sh
# docker/compose.yaml's openbao-init: makes the stack's OpenBao ready for Floe, at every `up`.
#   1. initialises it on first start (one unseal key), and unseals it whenever it is sealed;
#   2. mounts KV v2 at secret/ and writes Floe's policy (README, "Secrets in Vault");
#   3. gives Floe a periodic token (Floe renews it) in $FLOE_TOKEN_DIR/token, readable by Floe's uid
#      only; a token that still works is kept.
# DEMO ONLY: the unseal key and root token are kept in the openbao-init volume, next to the data
# they protect. In production use auto-unseal (a KMS or transit seal) and keep no root token.
set -eu

export BAO_ADDR="${BAO_ADDR:-http://openbao:8200}"
state="${OPENBAO_INIT_STATE:-/openbao-init}"
out="${FLOE_TOKEN_DIR:-/run/floe-vault}"
floe_uid="${FLOE_UID:-10001}"
mkdir -p "$state" "$out"
chmod 0700 "$state"

# `bao status` exits 0 when unsealed, 2 when sealed (or not initialised), 1 when it cannot answer.
tries=0
while :; do
    rc=0
    bao status >/dev/null 2>&1 || rc=$?
    [ "$rc" -ne 1 ] && break
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "openbao-init: OpenBao does not answer at $BAO_ADDR" >&2
        exit 1
    fi
    sleep 1
done

if bao status -format=json | grep -q '"initialized": *false'; then
    bao operator init -key-shares=1 -key-threshold=1 -format=json >"$state/init.json.part"
    chmod 0600 "$state/init.json.part"
    mv "$state/init.json.part" "$state/init.json"
    echo "openbao-init: initialised OpenBao"
fi
if [ ! -s "$state/init.json" ]; then
    echo "openbao-init: OpenBao is initialised but $state/init.json (its unseal key) is missing" >&2
    exit 1
fi
unseal_key="$(awk '/"unseal_keys_b64"/ { getline; gsub(/[ ",]/, ""); print; exit }' "$state/init.json")"
root_token="$(sed -n 's/.*"root_token": *"\([^"]*\)".*/\1/p' "$state/init.json")"

if bao status -format=json | grep -q '"sealed": *true'; then
    bao operator unseal "$unseal_key" >/dev/null
    echo "openbao-init: unsealed OpenBao"
fi

export BAO_TOKEN="$root_token"
if ! bao secrets list -format=json | grep -q '"secret/"'; then
    bao secrets enable -path=secret kv-v2 >/dev/null
fi
bao policy write floe - >/dev/null <<'POLICY'
path "secret/data/floe/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/floe/*" {
  capabilities = ["read", "delete"]
}
POLICY

if [ -s "$out/token" ] && BAO_TOKEN="$(cat "$out/token")" bao token lookup >/dev/null 2>&1; then
    echo "openbao-init: Floe's token still works"
else
    bao token create -orphan -policy=floe -period=768h -display-name=floe -field=token >"$out/token.part"
    mv "$out/token.part" "$out/token"
    echo "openbao-init: made a token for Floe"
fi
chown "$floe_uid:$floe_uid" "$out/token"
chmod 0400 "$out/token"
