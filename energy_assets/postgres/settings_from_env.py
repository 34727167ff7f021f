"""Deciding which PostgreSQL server to use: an external one from the environment, or the managed one.

An external server is configured with `ENERGY_PG_URL` (a libpq URI) and the standard libpq
variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLROOTCERT`, `PGSSLCERT`,
`PGSSLKEY`, `PGSSLMODE`). Only `verify-full` is accepted unless unverified TLS is explicitly allowed:
a silent `prefer` or `require` would encrypt without knowing who is on the other end.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from energy_assets.errors import ConfigurationError
from energy_assets.postgres.connection import PostgresSettings
from energy_assets.settings import ENV_PG_URL

_LIBPQ_ENV = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGDATABASE": "dbname",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGSSLCERT": "sslcert",
    "PGSSLKEY": "sslkey",
    "PGSSLCRL": "sslcrl",
}


def libpq_env_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {key: environ[var] for var, key in _LIBPQ_ENV.items() if environ.get(var)}


def external_settings(
    url: str,
    *,
    password: str | None = None,
    sslrootcert: str | None = None,
    allow_unverified_tls: bool = False,
    environ: Mapping[str, str] | None = None,
) -> PostgresSettings:
    """Settings for an external server from a libpq URI plus the PG* variables."""
    settings = PostgresSettings.from_uri(url, libpq_env_defaults(environ))
    if password:
        settings = settings.replace(password=password)
    if sslrootcert:
        settings = settings.replace(sslrootcert=sslrootcert)
    if not allow_unverified_tls:
        if settings.sslmode != "verify-full":
            raise ConfigurationError(
                f"{ENV_PG_URL} asks for sslmode={settings.sslmode}, which does not verify the server. Use "
                "sslmode=verify-full with sslrootcert=<CA file> (or set allow_unverified_tls on the resource "
                "if you really mean it)."
            )
        if not settings.sslrootcert:
            raise ConfigurationError(
                f"{ENV_PG_URL} uses verify-full but names no CA: add sslrootcert=<CA file> to the URI or set "
                "PGSSLROOTCERT."
            )
        if not os.path.exists(settings.sslrootcert):
            raise ConfigurationError(
                f"sslrootcert={settings.sslrootcert} (from {ENV_PG_URL}/PGSSLROOTCERT) does not exist."
            )
    return settings
