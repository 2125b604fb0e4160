#!/usr/bin/env bash
# Git-like branches over a whole warehouse: branch, write on the branch, diff, merge, log.
#
# Needs `floe` on PATH, a running `floe serve` (FLOE_ENDPOINT, default http://127.0.0.1:8181;
# the `floe` CLI reads the same variable) and PyIceberg (../requirements.txt) in $PYTHON
# (default python3).
set -euo pipefail
cd "$(dirname "$0")"
export FLOE_ENDPOINT="${FLOE_ENDPOINT:-http://127.0.0.1:8181}"
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*"; }

step "main: a table with three rows"
floe branch delete dev >/dev/null 2>&1 || true   # left over from an earlier run
"$PYTHON" tables.py seed

step "floe branch create dev (O(1): nothing is copied)"
floe branch create dev
floe branch list

step "dev: write through PyIceberg with warehouse=demo@dev"
"$PYTHON" tables.py write dev

step "main does not see dev's writes yet"
"$PYTHON" tables.py show main
"$PYTHON" tables.py show dev

step "floe diff main dev"
floe diff main dev

step "floe merge dev --into main (one atomic commit; a conflict would change nothing)"
floe merge dev --into main -m "publish dev"

step "main now has dev's rows and table"
"$PYTHON" tables.py show main

step "floe log --limit 3"
floe log --limit 3
