#!/usr/bin/env bash
# Sets up what energy_assets needs on this machine: PostgreSQL server binaries (system package),
# libfaketime for the tests (system package, when root with apt), and a virtual environment in .venv
# with the project installed (editable, with dev extras).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg_binaries() {
  command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || ls /usr/pgsql-*/bin/initdb >/dev/null 2>&1 || [ -n "${ENERGY_PG_BINDIR:-}" ] || [ -n "${ENERGY_PG_URL:-}" ]
}

if ! have_pg_binaries; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing the PostgreSQL server (apt-get install postgresql)..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL server binaries are missing: install them (apt-get install postgresql," \
         "brew install postgresql@16), set ENERGY_PG_BINDIR, or set ENERGY_PG_URL." >&2
    exit 1
  fi
fi

# libfaketime: the certificate-lifecycle tests move the real clock forward (energy_assets_tests/postgres/
# test_faketime.py). Installed when we are root with apt; elsewhere that test is skipped.
have_libfaketime() {
  ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || ls /usr/lib/faketime/libfaketime.so.1 >/dev/null 2>&1
}
if ! have_libfaketime && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing libfaketime for the tests (apt-get install faketime)..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }
fi

# Chromium: the browser tests open the Dagster UI headless (energy_assets_tests/e2e/test_browser.py).
# Installed when we are root with apt; elsewhere those tests are skipped.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Chromium for the browser tests (apt-get install chromium)..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
