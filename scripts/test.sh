#!/usr/bin/env bash
# Sets up and runs the whole test suite (lint first). The tests start their own PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
