"""Probing a PostgreSQL server's TLS health and recording it in `platform.tls_health`.

Pure domain code: what TLS version and cipher a verify-full connection negotiated, when the
certificate the server presents expires, when the root CA that issued it expires (from the trust
bundle the client uses), and when the client's CRL needs its next update.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from energy_assets.errors import DatabaseError
from energy_assets.postgres.connection import PostgresSettings, connect, scalar
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.tls.ca import crl_next_update

HEALTH_SCHEMA = "platform"
HEALTH_TABLE = "tls_health"

_CREATE_SQL = """
CREATE SCHEMA IF NOT EXISTS platform;
CREATE TABLE IF NOT EXISTS platform.tls_health (
    checked_at timestamptz NOT NULL DEFAULT now(),
    server_host text NOT NULL,
    server_port int4 NOT NULL,
    server_version text NOT NULL,
    tls_version text NOT NULL,
    tls_cipher text NOT NULL,
    certificate_serial text NOT NULL,
    certificate_not_after timestamptz NOT NULL,
    certificate_days_left float8 NOT NULL,
    PRIMARY KEY (checked_at, server_host, server_port)
);
ALTER TABLE platform.tls_health ADD COLUMN IF NOT EXISTS ca_not_after timestamptz;
ALTER TABLE platform.tls_health ADD COLUMN IF NOT EXISTS ca_days_left float8;
ALTER TABLE platform.tls_health ADD COLUMN IF NOT EXISTS crl_next_update timestamptz;
ALTER TABLE platform.tls_health ADD COLUMN IF NOT EXISTS crl_days_left float8;
"""


@dataclass(frozen=True)
class TlsHealth:
    """One health observation of the server."""

    checked_at: datetime
    server_host: str
    server_port: int
    server_version: str
    tls_version: str
    tls_cipher: str
    certificate_serial: int
    certificate_not_after: datetime
    ca_not_after: datetime | None = None
    crl_next_update: datetime | None = None

    @property
    def certificate_days_left(self) -> float:
        return _days(self.checked_at, self.certificate_not_after)

    @property
    def ca_days_left(self) -> float | None:
        return None if self.ca_not_after is None else _days(self.checked_at, self.ca_not_after)

    @property
    def crl_days_left(self) -> float | None:
        return None if self.crl_next_update is None else _days(self.checked_at, self.crl_next_update)


@dataclass(frozen=True)
class LatestHealth:
    """The newest row of platform.tls_health (CA and CRL columns are NULL for older rows)."""

    checked_at: datetime
    certificate_days_left: float
    tls_version: str
    ca_days_left: float | None
    crl_days_left: float | None


def _days(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400


def issuing_root_not_after(trust_bundle: str | None, leaf: x509.Certificate) -> datetime | None:
    """Expiry of the root in the trust bundle that issued `leaf` (None if not found)."""
    if not trust_bundle or not Path(trust_bundle).exists():
        return None
    try:
        roots = x509.load_pem_x509_certificates(Path(trust_bundle).read_bytes())
    except ValueError:
        return None
    issuers = [root for root in roots if root.subject == leaf.issuer]
    return issuers[0].not_valid_after_utc if issuers else None


def probe_and_record(settings: PostgresSettings) -> TlsHealth:
    """Connect with verify-full, read TLS state from pg_stat_ssl, and insert one row; returns it.

    The certificate is read from the server the connection reached (of several hosts, the one libpq chose).
    """
    with connect(settings) as conn:
        server_host, server_port = conn.info.host, conn.info.port
        certificate = presented_certificate(conn.info.hostaddr or server_host, server_port)
        row = conn.execute(
            "SELECT now(), current_setting('server_version'), s.version, s.cipher "
            "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid() AND s.ssl"
        ).fetchone()
        if row is None:
            raise DatabaseError(
                f"The connection to {settings.describe()} is not using TLS; use sslmode=verify-full."
            )
        health = TlsHealth(
            checked_at=row[0],
            server_host=server_host,
            server_port=server_port,
            server_version=row[1],
            tls_version=row[2],
            tls_cipher=row[3],
            certificate_serial=certificate.serial_number,
            certificate_not_after=certificate.not_valid_after_utc.astimezone(timezone.utc),
            ca_not_after=issuing_root_not_after(settings.sslrootcert, certificate),
            crl_next_update=crl_next_update(Path(settings.sslcrl)) if settings.sslcrl else None,
        )
        conn.execute(_CREATE_SQL)
        conn.execute(
            "INSERT INTO platform.tls_health (checked_at, server_host, server_port, server_version, tls_version, "
            "tls_cipher, certificate_serial, certificate_not_after, certificate_days_left, ca_not_after, "
            "ca_days_left, crl_next_update, crl_days_left) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                health.checked_at,
                health.server_host,
                health.server_port,
                health.server_version,
                health.tls_version,
                health.tls_cipher,
                format(health.certificate_serial, "x"),
                health.certificate_not_after,
                health.certificate_days_left,
                health.ca_not_after,
                health.ca_days_left,
                health.crl_next_update,
                health.crl_days_left,
            ),
        )
    return health


def latest_health(settings: PostgresSettings) -> LatestHealth | None:
    """The newest recorded health row, or None."""
    with connect(settings) as conn:
        if scalar(conn, "SELECT to_regclass('platform.tls_health')") is None:
            return None
        conn.execute(_CREATE_SQL)
        row = conn.execute(
            "SELECT checked_at, certificate_days_left, tls_version, ca_days_left, crl_days_left "
            "FROM platform.tls_health ORDER BY checked_at DESC LIMIT 1"
        ).fetchone()
    return None if row is None else LatestHealth(*row)
