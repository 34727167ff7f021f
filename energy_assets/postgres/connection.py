"""Connection settings for PostgreSQL: the one place that builds libpq connection strings.

Connection strings are read by libpq's own parser (`psycopg.conninfo.conninfo_to_dict`): a URI or a
`key=value` string, every libpq parameter kept (`application_name`, `target_session_attrs`, `keepalives`,
`service`, ...), several hosts in one URI (`postgresql://h1:5432,h2:5433/db`). Which keywords exist, which
environment variable feeds each and which are secret comes from libpq too (`PQconndefaults`).

Every connection the platform opens goes through `PostgresSettings`, which defaults to
`sslmode=verify-full` and a TCP host (never libpq's Unix-socket default, where no TLS is used). Secrets
(libpq marks them: the password, `sslpassword`, ...) never appear in `repr()`, `describe()` or in URIs meant
for display; a URI for people and other programs names a 0600 `passfile` instead.

`connect` also keeps the CRL fresh: when the settings carry an `on_stale_crl` callback (the managed
cluster sets one) and the CRL file is close to its next update, the callback re-signs and publishes it
before connecting, because libpq refuses every server once its CRL has expired.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pwd
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from energy_assets.errors import ConfigurationError, DatabaseError
from energy_assets.files import check_private_file
from energy_assets.settings import ENV_PG_URL
from energy_assets.tls.ca import CRL_RENEW_WITHIN_DAYS, crl_next_update

VERIFYING_SSLMODES = ("verify-full",)
KNOWN_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5432
DEFAULT_CONNECT_TIMEOUT_S = 10
DEFAULT_APPLICATION_NAME = "energy_assets"
# The parameters `PostgresSettings` names as fields, in the order they are passed to libpq.
NAMED_PARAMETERS = (
    "host",
    "port",
    "dbname",
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "hostaddr",
    "passfile",
    "connect_timeout",
    "application_name",
)
_URI_PARTS = ("host", "port", "dbname", "user", "password")


@dataclass(frozen=True)
class LibpqOption:
    """One connection keyword of libpq: its environment variable, and whether libpq hides its value."""

    keyword: str
    envvar: str | None
    hidden: bool


@functools.cache
def libpq_options() -> dict[str, LibpqOption]:
    """libpq's own connection keywords (`PQconndefaults`), by keyword.

    `hidden`: libpq marks passwords `*` (password, sslpassword, oauth_client_secret) and debug options `D`
    (scram keys, ...); neither is shown.
    """
    return {
        option.keyword.decode(): LibpqOption(
            keyword=option.keyword.decode(),
            envvar=option.envvar.decode() if option.envvar else None,
            hidden=option.dispchar in (b"*", b"D"),
        )
        for option in pq.Conninfo.get_defaults()
    }


def _redacted(message: str, conninfo: str) -> str:
    """`message` with any password of `conninfo` (URI userinfo or `password=`) replaced by ***."""
    secrets = re.findall(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*?:([^/?#@]*)@", conninfo)
    for quoted, bare in re.findall(r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s&]+))", conninfo):
        secrets.append(quoted or bare)
    for secret in filter(None, secrets):
        message = message.replace(secret, "***")
    return message


def parse_conninfo(conninfo: str, *, setting: str = ENV_PG_URL) -> dict[str, str]:
    """Every parameter of a libpq URI or `key=value` string, read by libpq itself.

    An unknown parameter, a bad percent-encoding or another scheme is a `ConfigurationError` naming
    `setting`; the password never appears in it.
    """
    scheme = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://", conninfo)
    if scheme is not None and scheme.group(1) not in ("postgresql", "postgres"):
        raise ConfigurationError(f"{setting} must be a postgresql:// URI, got scheme {scheme.group(1)!r}.")
    try:
        return {key: str(value) for key, value in conninfo_to_dict(conninfo).items()}
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(
            f"{setting} is not a libpq connection string: {_redacted(str(exc).strip(), conninfo)}. Use "
            "postgresql://user@host:port/dbname?param=value with parameters from "
            "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS."
        ) from exc


def _libpq_default_user() -> str:
    """The user libpq connects as when none is given: the login name of the effective user id."""
    return pwd.getpwuid(os.geteuid()).pw_name


def _check_ports(port: str) -> None:
    for part in port.split(","):
        if part and not (part.isdigit() and 0 < int(part) < 65536):
            raise ConfigurationError(
                f"ENERGY_PG_URL (or PGPORT) has an invalid number (port={port!r}): a port is 1-65535, and "
                "several hosts take a comma-separated list of them, one per host."
            )


@dataclass(frozen=True, repr=False)
class PostgresSettings:
    """Where and how to reach a PostgreSQL database over TLS.

    `host`, `port` and `hostaddr` take libpq's forms: one value, or a comma-separated list (one per host,
    tried in order). `extra` holds every other libpq parameter (`target_session_attrs`, `keepalives`,
    `service`, `sslpassword`, ...) as given.
    """

    host: str
    port: int | str
    dbname: str
    user: str
    password: str | None = None
    sslmode: str = "verify-full"
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslcrl: str | None = None
    hostaddr: str | None = None
    passfile: str | None = None
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT_S
    application_name: str = DEFAULT_APPLICATION_NAME
    extra: Mapping[str, str] = field(default_factory=dict)
    on_stale_crl: Callable[[], object] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.sslmode not in KNOWN_SSLMODES:
            raise ConfigurationError(f"sslmode={self.sslmode!r} is not a libpq sslmode; use verify-full.")
        if isinstance(self.port, str):
            _check_ports(self.port)
            if self.port.isdigit():
                object.__setattr__(self, "port", int(self.port))
        named = set(self.extra) & set(NAMED_PARAMETERS)
        unknown = set(self.extra) - set(libpq_options())
        if named or unknown:
            raise ConfigurationError(
                f"PostgresSettings.extra holds {sorted(named | unknown)}: only libpq parameters that are not "
                "fields of PostgresSettings belong there."
            )

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> PostgresSettings:
        """Settings from libpq keyword parameters; what is missing takes libpq's default.

        Except the host: `localhost` over TCP, not libpq's Unix socket (no TLS there); and
        `connect_timeout`, 10 s rather than waiting forever.
        """
        values = {key: value for key, value in params.items() if value not in (None, "")}
        named = {key: values.pop(key) for key in NAMED_PARAMETERS if key in values}
        timeout = named.get("connect_timeout", str(DEFAULT_CONNECT_TIMEOUT_S))
        try:
            connect_timeout = int(timeout)
        except ValueError as exc:
            raise ConfigurationError(
                f"ENERGY_PG_URL (or PGCONNECT_TIMEOUT) has an invalid number (connect_timeout={timeout!r}): "
                "connect_timeout is a number of seconds."
            ) from exc
        user = named.get("user") or _libpq_default_user()
        return cls(
            host=named.get("host", DEFAULT_HOST),
            port=named.get("port", DEFAULT_PORT),
            dbname=named.get("dbname", user),
            user=user,
            password=named.get("password"),
            sslmode=named.get("sslmode", "verify-full"),
            sslrootcert=named.get("sslrootcert"),
            sslcert=named.get("sslcert"),
            sslkey=named.get("sslkey"),
            sslcrl=named.get("sslcrl"),
            hostaddr=named.get("hostaddr"),
            passfile=named.get("passfile"),
            connect_timeout=connect_timeout,
            application_name=named.get("application_name", DEFAULT_APPLICATION_NAME),
            extra=values,
        )

    @classmethod
    def from_uri(cls, uri: str, defaults: Mapping[str, str] | None = None) -> PostgresSettings:
        """Parse a libpq URI or `key=value` string (`postgresql://user:pw@host:port/db?sslmode=...`).

        Values missing from it come from `defaults` (typically the libpq PG* variables).
        """
        return cls.from_params({**(defaults or {}), **parse_conninfo(uri)})

    def with_database(self, dbname: str) -> PostgresSettings:
        return dataclasses.replace(self, dbname=dbname)

    def replace(self, **changes: Any) -> PostgresSettings:
        return dataclasses.replace(self, **changes)

    def params(self) -> dict[str, str]:
        """libpq keyword parameters (secrets included) for `psycopg.connect(**params)`."""
        values = {name: getattr(self, name) for name in NAMED_PARAMETERS} | dict(self.extra)
        return {key: str(value) for key, value in values.items() if value not in (None, "")}

    def hosts(self) -> list[tuple[str, str]]:
        """(host, port) per host, as libpq pairs them (one port for all, or one each)."""
        hosts = self.host.split(",")
        ports = str(self.port).split(",")
        if len(ports) == 1:
            ports = ports * len(hosts)
        return [(host, port or str(DEFAULT_PORT)) for host, port in zip(hosts, ports, strict=False)]

    def uri(self, *, with_password: bool = False) -> str:
        """A libpq URI; secrets are left out unless asked for (URIs end up in logs).

        Several hosts go in the query (`?host=h1,h2&port=p1,p2`), a form SQLAlchemy reads too. Spaces are
        `%20`: libpq does not read `+` as a space.
        """
        hidden = {keyword for keyword, option in libpq_options().items() if option.hidden}
        userinfo = quote(self.user, safe="")
        if with_password and self.password:
            userinfo += ":" + quote(self.password, safe="")
        query = {
            key: value
            for key, value in self.params().items()
            if key not in _URI_PARTS and (with_password or key not in hidden)
        }
        if query.get("application_name") == DEFAULT_APPLICATION_NAME:
            del query["application_name"]
        if len(self.hosts()) > 1:
            netloc = f"{userinfo}@"
            query = {"host": self.host, "port": str(self.port), **query}
        else:
            host = f"[{self.host}]" if ":" in self.host else self.host
            netloc = f"{userinfo}@{host}:{self.port}"
        return f"postgresql://{netloc}/{quote(self.dbname, safe='')}?{urlencode(query, safe='/,', quote_via=quote)}"

    def describe(self) -> str:
        """Where this points, for error messages (no secrets)."""
        where = ",".join(f"{host}:{port}" for host, port in self.hosts())
        return f"{self.user}@{where}/{self.dbname} (sslmode={self.sslmode})"

    def __repr__(self) -> str:
        return f"PostgresSettings({self.uri()!r})"


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
