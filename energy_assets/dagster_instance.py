"""The Dagster instance home: `dagster.yaml` on PostgreSQL and the variables it reads.

Pure helper code (no Dagster imports): it writes the bundled `dagster.yaml` into DAGSTER_HOME and
computes the environment that points it at the managed cluster (or any `PostgresSettings`).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from energy_assets.postgres.connection import PostgresSettings


def write_dagster_yaml(dagster_home: Path) -> Path:
    """Copy the bundled dagster.yaml into `dagster_home` (created if needed); returns its path."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    source = resources.files("energy_assets.dagster_home").joinpath("dagster.yaml")
    with resources.as_file(source) as path:
        shutil.copyfile(path, target)
    return target


def dagster_environment(settings: PostgresSettings, dagster_home: Path) -> dict[str, str]:
    """Environment variables that the bundled dagster.yaml reads, for the given database."""
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_PG_HOST": settings.host,
        "DAGSTER_PG_PORT": str(settings.port),
        "DAGSTER_PG_DB": settings.dbname,
        "DAGSTER_PG_USER": settings.user,
        "DAGSTER_PG_PASSWORD": settings.password or "",
        "PGSSLROOTCERT": settings.sslrootcert or "",
    }
    if settings.hostaddr:
        env["PGHOSTADDR"] = settings.hostaddr
    if settings.sslcert and settings.sslkey:
        env["PGSSLCERT"] = settings.sslcert
        env["PGSSLKEY"] = settings.sslkey
    return env
