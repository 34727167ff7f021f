"""Deciding which PostgreSQL server to use: an external one from the environment, or the managed one.

An external server is configured with `ENERGY_PG_URL` (a libpq URI or `key=value` string) and libpq's own
rules for what it leaves out, in libpq's order: the connection service (`service=` or PGSERVICE, from
PGSERVICEFILE or ~/.pg_service.conf), then the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
PGDATABASE, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGSSLCRL, PGPASSFILE, PGCONNECT_TIMEOUT,
PGAPPNAME, PGTARGETSESSIONATTRS, ... every variable libpq knows). A password libpq finds in a passfile
(`passfile=`, PGPASSFILE, ~/.pgpass) is read by libpq itself when connecting.

Only `verify-full` with a CA file is accepted, over TCP, unless unverified TLS is explicitly allowed: a
silent `prefer` or `require` would encrypt without knowing who is on the other end, and libpq uses no TLS
at all on a Unix socket.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from energy_assets.errors import ConfigurationError
from energy_assets.postgres.connection import PostgresSettings, libpq_options, parse_conninfo
from energy_assets.postgres.service_file import service_parameters
from energy_assets.settings import ENV_PG_URL

# libpq's `sslrootcert=system`: the operating system's trusted roots (libpq then requires verify-full).
SYSTEM_ROOTS = "system"


def libpq_env_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """libpq keyword parameters from the environment, by libpq's own table of variables; empty ones count
    as unset."""
    environ = os.environ if environ is None else environ
    return {
        option.keyword: environ[option.envvar]
        for option in libpq_options().values()
        if option.envvar and environ.get(option.envvar)
    }


def resolved_parameters(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The libpq parameters `url` means: its own, then its connection service's, then the environment's."""
    environ = os.environ if environ is None else environ
    explicit = parse_conninfo(url)
    service = explicit.get("service") or environ.get("PGSERVICE")
    from_service = service_parameters(service, environ) if service else {}
    return {**libpq_env_defaults(environ), **from_service, **explicit}


def _socket_hosts(settings: PostgresSettings) -> list[str]:
    """Hosts libpq would reach over a Unix socket (a directory or an abstract socket), where TLS is not used."""
    addresses = (settings.hostaddr or "").split(",")
    return [
        host
        for index, (host, _port) in enumerate(settings.hosts())
        if host.startswith(("/", "@")) and not (index < len(addresses) and addresses[index])
    ]


def external_settings(
    url: str,
    *,
    password: str | None = None,
    sslrootcert: str | None = None,
    allow_unverified_tls: bool = False,
    environ: Mapping[str, str] | None = None,
) -> PostgresSettings:
    """Settings for an external server from a libpq URI, its connection service and the PG* variables."""
    settings = PostgresSettings.from_params(resolved_parameters(url, environ))
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
        if settings.sslrootcert != SYSTEM_ROOTS and not os.path.exists(settings.sslrootcert):
            raise ConfigurationError(
                f"sslrootcert={settings.sslrootcert} (from {ENV_PG_URL}/PGSSLROOTCERT) does not exist."
            )
        if sockets := _socket_hosts(settings):
            raise ConfigurationError(
                f"{ENV_PG_URL} (or PGHOST) names the Unix socket {sockets[0]}, where libpq uses no TLS: name the "
                "server's host name (with hostaddr= if it differs from what the certificate names)."
            )
    return settings
