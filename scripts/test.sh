#!/usr/bin/env bash
# Sets up and runs the whole test suite (lint first). The tests start their own PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The source declarations (defs.yaml) and the code location, as `dg` sees them.
dg_home=$(mktemp -d)
DAGSTER_HOME="$dg_home" .venv/bin/dg check yaml
DAGSTER_HOME="$dg_home" .venv/bin/dg check defs
DAGSTER_HOME="$dg_home" .venv/bin/dg list defs >/dev/null
rm -rf "$dg_home"
.venv/bin/python -m pytest "$@"
