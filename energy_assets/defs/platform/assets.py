"""Dagster wiring for the platform health asset, its expiry check, and the daily certificate maintenance.

Keep the probing logic in `energy_assets.postgres.health` and the renewals in
`ManagedCluster.maintain_certificates`; this module only wires them up.
"""

from pathlib import Path
from typing import Any

import dagster as dg

from energy_assets.defs.resources import PostgresResource
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.health import latest_health, probe_and_record
from energy_assets.settings import DataHome

CERTIFICATE_WARN_DAYS = 30
CRL_WARN_DAYS = 7
"""The CRL is re-signed with 20 days left; a check failing at 7 days leaves a week to notice."""

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
        dg.TableColumn("ca_not_after", "timestamptz", description="Expiry of the root that issued it"),
        dg.TableColumn("ca_days_left", "float8"),
        dg.TableColumn("crl_next_update", "timestamptz", description="When the client's CRL must be renewed"),
        dg.TableColumn("crl_days_left", "float8"),
    ]
)


@dg.asset(
    key="platform_tls_health",
    group_name="platform",
    kinds={"python", "postgres"},
    description=(
        "Connects to PostgreSQL with sslmode=verify-full, records the negotiated TLS version and cipher, the "
        "expiry of the certificate the server presents and of the root CA that issued it, and the CRL's next "
        "update into table platform.tls_health."
    ),
    metadata={"dagster/column_schema": TLS_HEALTH_COLUMNS, "dagster/table_name": "platform.tls_health"},
)
def platform_tls_health(postgres: PostgresResource) -> dg.MaterializeResult:
    health = probe_and_record(postgres.settings())
    metadata: dict[str, Any] = {
        "tls_version": health.tls_version,
        "tls_cipher": health.tls_cipher,
        "server_version": health.server_version,
        "certificate_serial": format(health.certificate_serial, "x"),
        "certificate_not_after": health.certificate_not_after.isoformat(),
        "certificate_days_left": dg.MetadataValue.float(round(health.certificate_days_left, 2)),
        "dagster/row_count": 1,
    }
    if health.ca_not_after is not None and health.ca_days_left is not None:
        metadata["ca_not_after"] = health.ca_not_after.isoformat()
        metadata["ca_days_left"] = dg.MetadataValue.float(round(health.ca_days_left, 2))
    if health.crl_next_update is not None and health.crl_days_left is not None:
        metadata["crl_next_update"] = health.crl_next_update.isoformat()
        metadata["crl_days_left"] = dg.MetadataValue.float(round(health.crl_days_left, 2))
    return dg.MaterializeResult(metadata=metadata)


class CertificateExpiryConfig(dg.Config):
    warn_days: int = CERTIFICATE_WARN_DAYS
    crl_warn_days: int = CRL_WARN_DAYS


@dg.asset_check(
    asset=platform_tls_health,
    description=(
        "Fails when the server certificate or its root CA expires within warn_days (default 30), or the CRL's "
        "next update is within crl_warn_days (default 7)."
    ),
)
def server_certificate_not_expiring(
    config: CertificateExpiryConfig, postgres: PostgresResource
) -> dg.AssetCheckResult:
    latest = latest_health(postgres.settings())
    if latest is None:
        return dg.AssetCheckResult(passed=False, description="platform.tls_health has no rows yet.")
    problems = []
    if latest.certificate_days_left < config.warn_days:
        problems.append(
            f"Server certificate expires in {latest.certificate_days_left:.1f} days (threshold "
            f"{config.warn_days}); rotate it with `energy-assets ca rotate-server`."
        )
    if latest.ca_days_left is not None and latest.ca_days_left < config.warn_days:
        problems.append(
            f"The root CA expires in {latest.ca_days_left:.1f} days (threshold {config.warn_days}); roll it "
            "over with `energy-assets ca rollover`."
        )
    if latest.crl_days_left is not None and latest.crl_days_left < config.crl_warn_days:
        problems.append(
            f"The CRL's next update is in {latest.crl_days_left:.1f} days (threshold {config.crl_warn_days}); "
            "renew it with `energy-assets ca renew`."
        )
    metadata: dict[str, Any] = {
        "days_left": float(latest.certificate_days_left),
        "tls_version": latest.tls_version,
        "checked_at": latest.checked_at.isoformat(),
    }
    if latest.ca_days_left is not None:
        metadata["ca_days_left"] = float(latest.ca_days_left)
    if latest.crl_days_left is not None:
        metadata["crl_days_left"] = float(latest.crl_days_left)
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=" ".join(problems)
        if problems
        else f"Server certificate valid for {latest.certificate_days_left:.1f} more days.",
        metadata=metadata,
    )


@dg.op(
    description=(
        "Renews what is due on the managed cluster: CRL re-signed well before its next update, server "
        "certificate, root CA rollover and retirement; publishes them with a reload and prunes old logs. "
        "Does nothing for an external server (ENERGY_PG_URL)."
    )
)
def maintain_certificates(context: dg.OpExecutionContext, postgres: PostgresResource) -> dg.Output[list[str]]:
    if postgres.url:
        context.log.info("External PostgreSQL server: its certificates are managed elsewhere.")
        return dg.Output([], metadata={"actions": "none (external server)"})
    home = DataHome(Path(postgres.data_home)) if postgres.data_home else DataHome.from_env()
    cluster = ManagedCluster(home)
    done = cluster.maintain_certificates()
    if cluster.load_config() is not None:
        cluster.prune_logs()
    for action in done:
        context.log.info(action)
    return dg.Output(done, metadata={"actions": "; ".join(done) or "nothing was due"})


@dg.job(
    name="platform_certificate_maintenance_job",
    description="Daily certificate maintenance of the managed cluster (CRL, server certificate, CA).",
)
def platform_certificate_maintenance_job() -> None:
    maintain_certificates()


platform_certificate_maintenance_schedule = dg.ScheduleDefinition(
    name="platform_certificate_maintenance_schedule",
    job=platform_certificate_maintenance_job,
    cron_schedule="17 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Runs the certificate maintenance daily, so the CRL never expires while Dagster runs.",
)


def platform_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[platform_tls_health],
        asset_checks=[server_certificate_not_expiring],
        jobs=[platform_certificate_maintenance_job],
        schedules=[platform_certificate_maintenance_schedule],
    )
