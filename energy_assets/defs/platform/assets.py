"""Dagster wiring for the platform health asset and its certificate-expiry check.

Keep the probing logic in `energy_assets.postgres.health`; this module only wires it up.
"""

import dagster as dg

from energy_assets.defs.resources import PostgresResource
from energy_assets.postgres.health import latest_health, probe_and_record

CERTIFICATE_WARN_DAYS = 30

TLS_HEALTH_COLUMNS = dg.TableSchema(
    columns=[
        dg.TableColumn("checked_at", "timestamptz", description="When the probe ran"),
        dg.TableColumn("server_host", "text"),
        dg.TableColumn("server_port", "int4"),
        dg.TableColumn("server_version", "text"),
        dg.TableColumn("tls_version", "text", description="Protocol pg_stat_ssl reports, e.g. TLSv1.3"),
        dg.TableColumn("tls_cipher", "text"),
        dg.TableColumn("certificate_serial", "text", description="Serial (hex) the server presents"),
        dg.TableColumn("certificate_not_after", "timestamptz"),
        dg.TableColumn("certificate_days_left", "float8"),
    ]
)


@dg.asset(
    key="platform_tls_health",
    group_name="platform",
    kinds={"python", "postgres"},
    description=(
        "Connects to PostgreSQL with sslmode=verify-full, records the negotiated TLS version and cipher and "
        "the expiry of the certificate the server presents into table platform.tls_health."
    ),
    metadata={"dagster/column_schema": TLS_HEALTH_COLUMNS, "dagster/table_name": "platform.tls_health"},
)
def platform_tls_health(postgres: PostgresResource) -> dg.MaterializeResult:
    health = probe_and_record(postgres.settings())
    return dg.MaterializeResult(
        metadata={
            "tls_version": health.tls_version,
            "tls_cipher": health.tls_cipher,
            "server_version": health.server_version,
            "certificate_serial": format(health.certificate_serial, "x"),
            "certificate_not_after": health.certificate_not_after.isoformat(),
            "certificate_days_left": dg.MetadataValue.float(round(health.certificate_days_left, 2)),
            "dagster/row_count": 1,
        }
    )


class CertificateExpiryConfig(dg.Config):
    warn_days: int = CERTIFICATE_WARN_DAYS


@dg.asset_check(
    asset=platform_tls_health,
    description="Fails when the PostgreSQL server certificate expires within warn_days (default 30).",
)
def server_certificate_not_expiring(
    config: CertificateExpiryConfig, postgres: PostgresResource
) -> dg.AssetCheckResult:
    latest = latest_health(postgres.settings())
    if latest is None:
        return dg.AssetCheckResult(passed=False, description="platform.tls_health has no rows yet.")
    checked_at, days_left, tls_version = latest
    return dg.AssetCheckResult(
        passed=days_left >= config.warn_days,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"Server certificate expires in {days_left:.1f} days (threshold {config.warn_days}); "
            "rotate it with `energy-assets ca rotate-server`."
            if days_left < config.warn_days
            else f"Server certificate valid for {days_left:.1f} more days."
        ),
        metadata={
            "days_left": float(days_left),
            "tls_version": tls_version,
            "checked_at": checked_at.isoformat(),
        },
    )


def platform_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[platform_tls_health], asset_checks=[server_certificate_not_expiring])
