#!/bin/bash
# Runs once, when the postgres service's volume is new (docker-entrypoint-initdb.d): a role and a
# database each for Floe, OpenFGA and Keycloak, with the passwords compose passes in.
set -euo pipefail

for var in FLOE_DB_PASSWORD OPENFGA_DB_PASSWORD KEYCLOAK_DB_PASSWORD; do
    if [[ -z "${!var:-}" ]]; then
        echo "init-databases: $var is not set" >&2
        exit 1
    fi
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v floe_pw="$FLOE_DB_PASSWORD" -v openfga_pw="$OPENFGA_DB_PASSWORD" \
    -v keycloak_pw="$KEYCLOAK_DB_PASSWORD" <<'SQL'
CREATE ROLE floe LOGIN PASSWORD :'floe_pw';
CREATE DATABASE floe OWNER floe;
CREATE ROLE openfga LOGIN PASSWORD :'openfga_pw';
CREATE DATABASE openfga OWNER openfga;
CREATE ROLE keycloak LOGIN PASSWORD :'keycloak_pw';
CREATE DATABASE keycloak OWNER keycloak;
SQL
