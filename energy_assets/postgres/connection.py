"""Connection settings for PostgreSQL: the one place that builds libpq connection strings.

Every connection the platform opens goes through `PostgresSettings`, which defaults to
`sslmode=verify-full` with an explicit CA file. Passwords never appear in `repr()` or in URIs
meant for display; a URI for people and other programs names a 0600 `passfile` instead.

`connect` also keeps the CRL fresh: when the settings carry an `on_stale_crl` callback (the managed
cluster sets one) and the CRL file is close to its next update, the callback re-signs and publishes it
before connecting, because libpq refuses every server once its CRL has expired.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import psycopg

from energy_assets.errors import ConfigurationError, DatabaseError
from energy_assets.files import check_private_file
from energy_assets.tls.ca import CRL_RENEW_WITHIN_DAYS, crl_next_update

VERIFYING_SSLMODES = ("verify-full",)
KNOWN_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class PostgresSettings:
    """Where and how to reach a PostgreSQL database over TLS."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "verify-full"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslcrl: str | None = None
    hostaddr: str | None = None
    passfile: str | None = None
    connect_timeout: int = 10
    application_name: str = "energy_assets"
    on_stale_crl: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sslmode not in KNOWN_SSLMODES:
            raise ConfigurationError(f"sslmode={self.sslmode!r} is not a libpq sslmode; use verify-full.")

    def with_database(self, dbname: str) -> PostgresSettings:
        return dataclasses.replace(self, dbname=dbname)

    def replace(self, **changes: Any) -> PostgresSettings:
        return dataclasses.replace(self, **changes)

    def params(self) -> dict[str, str]:
        """libpq keyword parameters (password included) for `psycopg.connect(**params)`."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
            "sslrootcert": self.sslrootcert,
            "sslcert": self.sslcert,
            "sslkey": self.sslkey,
            "sslcrl": self.sslcrl,
            "hostaddr": self.hostaddr,
            "passfile": self.passfile,
            "connect_timeout": self.connect_timeout,
            "application_name": self.application_name,
        }
        return {k: str(v) for k, v in values.items() if v not in (None, "")}

    def uri(self, *, with_password: bool = False) -> str:
        """A libpq URI; the password is left out unless asked for (URIs end up in logs)."""
        userinfo = quote(self.user, safe="")
        if with_password and self.password:
            userinfo += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = {
            k: v
            for k, v in self.params().items()
            if k not in ("host", "port", "dbname", "user", "password", "application_name")
        }
        return f"postgresql://{userinfo}@{host}:{self.port}/{quote(self.dbname, safe='')}?{urlencode(query, safe='/')}"

    @classmethod
    def from_uri(cls, uri: str, defaults: Mapping[str, str] | None = None) -> PostgresSettings:
        """Parse a libpq URI (`postgresql://user:pw@host:port/db?sslmode=...`).

        Values missing from the URI come from `defaults` (typically the libpq PG* variables).
        """
        parts = urlsplit(uri)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(
                f"ENERGY_PG_URL must be a postgresql:// URI, got scheme {parts.scheme!r}."
            )
        query = dict(parse_qsl(parts.query))
        merged = dict(defaults or {})
        merged.update(query)
        try:
            port = int(parts.port or merged.get("port") or 5432)
            connect_timeout = int(merged.get("connect_timeout", 10))
        except ValueError as exc:
            raise ConfigurationError(
                f"ENERGY_PG_URL (or PGPORT) has an invalid number ({exc}); the port must be 1-65535 and "
                "connect_timeout a number of seconds."
            ) from exc
        return cls(
            host=parts.hostname or merged.get("host", "localhost"),
            port=port,
            dbname=unquote(parts.path.lstrip("/")) or merged.get("dbname", "postgres"),
            user=unquote(parts.username) if parts.username else merged.get("user", "postgres"),
            password=unquote(parts.password) if parts.password else merged.get("password"),
            sslmode=merged.get("sslmode", "verify-full"),
            sslrootcert=merged.get("sslrootcert"),
            sslcert=merged.get("sslcert"),
            sslkey=merged.get("sslkey"),
            sslcrl=merged.get("sslcrl"),
            hostaddr=merged.get("hostaddr"),
            passfile=merged.get("passfile"),
            connect_timeout=connect_timeout,
        )

    def describe(self) -> str:
        """Where this points, for error messages (no secrets)."""
        return f"{self.user}@{self.host}:{self.port}/{self.dbname} (sslmode={self.sslmode})"


def crl_is_stale(path: str, *, now: datetime | None = None) -> bool:
    """True when the CRL file is missing, unreadable or within `CRL_RENEW_WITHIN_DAYS` of its next update."""
    next_update = crl_next_update(Path(path))
    now = now or datetime.now(timezone.utc)
    return next_update is None or (next_update - now).total_seconds() < CRL_RENEW_WITHIN_DAYS * 86400


def connect(settings: PostgresSettings, *, autocommit: bool = False, **kwargs: Any) -> psycopg.Connection:
    """Open a psycopg connection; failures become a `DatabaseError` naming the server, never the password.

    A stale CRL is renewed first through `settings.on_stale_crl`; a passfile readable by others is refused.
    """
    if settings.on_stale_crl is not None and settings.sslcrl and crl_is_stale(settings.sslcrl):
        settings.on_stale_crl()
    if settings.passfile and settings.password is None and os.path.exists(settings.passfile):
        check_private_file(settings.passfile, what="Password file")
    try:
        params: dict[str, Any] = dict(settings.params())
        return psycopg.connect(**params, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseError(
            f"Cannot connect to PostgreSQL at {settings.describe()}: {str(exc).strip()}. "
            "Check ENERGY_PG_URL (or the PG* variables), that the server runs, and that sslrootcert "
            "names the CA that signed the server certificate."
        ) from exc


def scalar(conn: psycopg.Connection, query: Any, params: Any = None) -> Any:
    """The first column of the first row of `query` (a query that returns no row is a bug: it raises)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise DatabaseError(f"{query!r} returned no row.")
    return row[0]
