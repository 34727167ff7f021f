#!/usr/bin/env bash
# The main job, end to end on the embedded default: sets up, starts the managed PostgreSQL cluster
# with TLS from the project's CA, and materializes every bundled Energy-Charts sample partition
# and its aggregates (offline), with run history in the Dagster instance on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/energy-assets sample run "$@"
