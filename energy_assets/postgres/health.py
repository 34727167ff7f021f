"""Probing a PostgreSQL server's TLS health and recording it in `platform.tls_health`.

Pure domain code: what TLS version and cipher a verify-full connection negotiated, and when the
certificate the server presents expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.tls_probe import presented_certificate

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

    @property
    def certificate_days_left(self) -> float:
        return (self.certificate_not_after - self.checked_at).total_seconds() / 86400


def probe_and_record(settings: PostgresSettings) -> TlsHealth:
    """Connect with verify-full, read TLS state from pg_stat_ssl, and insert one row; returns it."""
    probe_host = settings.hostaddr or settings.host
    certificate = presented_certificate(probe_host, settings.port)
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT now(), current_setting('server_version'), s.version, s.cipher "
            "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid() AND s.ssl"
        ).fetchone()
        if row is None:
            raise RuntimeError(f"The connection to {settings.describe()} is not using TLS.")
        health = TlsHealth(
            checked_at=row[0],
            server_host=settings.host,
            server_port=settings.port,
            server_version=row[1],
            tls_version=row[2],
            tls_cipher=row[3],
            certificate_serial=certificate.serial_number,
            certificate_not_after=certificate.not_valid_after_utc.astimezone(timezone.utc),
        )
        conn.execute(_CREATE_SQL)
        conn.execute(
            "INSERT INTO platform.tls_health (checked_at, server_host, server_port, server_version, tls_version, "
            "tls_cipher, certificate_serial, certificate_not_after, certificate_days_left) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
            ),
        )
    return health


def latest_health(settings: PostgresSettings) -> tuple[datetime, float, str] | None:
    """The newest recorded (checked_at, certificate_days_left, tls_version), or None."""
    with connect(settings) as conn:
        if conn.execute("SELECT to_regclass('platform.tls_health')").fetchone()[0] is None:
            return None
        return conn.execute(
            "SELECT checked_at, certificate_days_left, tls_version FROM platform.tls_health "
            "ORDER BY checked_at DESC LIMIT 1"
        ).fetchone()
