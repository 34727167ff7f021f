"""The Dagster instance home: `dagster.yaml` on PostgreSQL and the variables it reads.

Pure helper code (no Dagster imports): it writes the bundled `dagster.yaml` into DAGSTER_HOME and
computes the environment that points it at the managed cluster (or any `PostgresSettings`).

Only what Dagster needs is exported: `DAGSTER_HOME` and `DAGSTER_PG_URL`, one libpq URI without the
password (the managed cluster's URI names its 0600 passfile instead). No global libpq variable
(`PGHOSTADDR`, `PGSSLROOTCERT`, `PGPASSWORD`, ...) is set, so a shell that ran
`eval "$(energy-assets dagster env)"` still reaches other servers the way it did before.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from energy_assets.postgres.connection import PostgresSettings

ENV_DAGSTER_PG_URL = "DAGSTER_PG_URL"
DAGSTER_PG_SCHEME = "postgresql+psycopg2"
"""SQLAlchemy 2.1 picks psycopg 3 for plain "postgresql"; dagster-postgres ships psycopg2."""


def write_dagster_yaml(dagster_home: Path) -> Path:
    """Copy the bundled dagster.yaml into `dagster_home` (created if needed); returns its path."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    source = resources.files("energy_assets.instance").joinpath("dagster.yaml")
    with resources.as_file(source) as path:
        shutil.copyfile(path, target)
    return target


def dagster_storage_url(settings: PostgresSettings) -> str:
    """The SQLAlchemy URL dagster-postgres connects with: verify-full, every libpq parameter of the settings
    (several hosts as `?host=h1,h2&port=p1,p2`, which SQLAlchemy's psycopg2 dialect reads), never a secret.

    libpq finds the password in the settings' passfile (the managed cluster's `pgpass`); for an external
    server without one, where libpq looks itself: the connection service named in the URL (`service=`, with
    PGSERVICEFILE set for Dagster's processes too), `PGPASSFILE`, `~/.pgpass`, or `PGPASSWORD`.
    """
    _scheme, rest = settings.uri().split("://", 1)
    return f"{DAGSTER_PG_SCHEME}://{rest}"


def dagster_environment(settings: PostgresSettings, dagster_home: Path) -> dict[str, str]:
    """Environment variables that the bundled dagster.yaml reads, for the given database."""
    return {
        "DAGSTER_HOME": str(dagster_home),
        ENV_DAGSTER_PG_URL: dagster_storage_url(settings),
        # Dagster reads this only from the environment: a single-run backfill then stores its per-partition
        # events in batches (one INSERT for up to 1,000) instead of one round trip each.
        "DAGSTER_EVENT_BATCH_SIZE": "1000",
    }
