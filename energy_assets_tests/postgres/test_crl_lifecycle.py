"""The CRL and server certificate renew themselves: at start, on a connection, and by the daily Dagster job.

One managed cluster with client-certificate authentication, so the server checks the CRL too.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from energy_assets.defs.platform import (
    platform_certificate_maintenance_job,
    platform_certificate_maintenance_schedule,
    platform_definitions,
)
from energy_assets.defs.resources import PostgresResource
from energy_assets.errors import DatabaseError
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import DataHome
from energy_assets.tls.ca import CertificateAuthority, crl_next_update
from energy_assets_tests.conftest import make_data_home


@pytest.fixture(scope="module")
def cluster() -> Iterator[ManagedCluster]:
    home = DataHome(make_data_home("energy_assets_crl_"))
    managed = ManagedCluster(home, client_cert_auth=True)
    managed.ensure_running()
    yield managed
    managed.stop()
    shutil.rmtree(home.root, ignore_errors=True)


def _write_crl_as_of(ca: CertificateAuthority, written: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr("energy_assets.tls.ca._now", lambda: written.replace(microsecond=0))
        ca.write_crl()


def _crl_days_left(path) -> float:
    next_update = crl_next_update(path)
    assert next_update is not None
    return (next_update - datetime.now(timezone.utc)).total_seconds() / 86400


def test_a_stale_crl_is_renewed_by_the_next_connection(cluster: ManagedCluster, monkeypatch) -> None:
    ca = cluster.certificate_authority()
    # As measured: a CRL written 31 days ago (the clock was behind), on the client and on the server.
    settings = cluster.settings()  # resolved earlier, as a running Dagster resource holds them
    _write_crl_as_of(ca, datetime.now(timezone.utc) - timedelta(days=31), monkeypatch)
    with pytest.raises(DatabaseError, match="SSL error: certificate verify failed"):
        connect(settings.replace(on_stale_crl=None))  # what every connection did before
    shutil.copyfile(ca.crl_path, cluster.data_dir / "root.crl")
    cluster._run([cluster.binaries.pg_ctl, "reload", "-D", str(cluster.data_dir)])
    time.sleep(0.5)
    with pytest.raises(DatabaseError, match="certificate (verify failed|expired)"):
        connect(settings.replace(on_stale_crl=None))

    with connect(settings) as conn:
        assert conn.execute("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (
            "/CN=energy_admin",
        )
    assert _crl_days_left(ca.crl_path) == pytest.approx(30, abs=0.01)
    assert (cluster.data_dir / "root.crl").read_bytes() == ca.crl_path.read_bytes()


def test_a_server_certificate_within_30_days_of_expiry_is_renewed_at_start(cluster: ManagedCluster) -> None:
    ca = cluster.certificate_authority()
    short = ca.issue_server_certificate(["localhost"], ["127.0.0.1", "::1"], validity_days=10)
    cluster.install_server_certificate(short)
    assert presented_certificate("127.0.0.1", cluster.config.port).serial_number == short.serial
    assert cluster.stop() is True
    assert cluster.start() is True
    served = presented_certificate("127.0.0.1", cluster.config.port)
    assert served.serial_number != short.serial
    days_left = (served.not_valid_after_utc - datetime.now(timezone.utc)).total_seconds() / 86400
    assert days_left == pytest.approx(397, abs=0.01)
    with connect(cluster.settings()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_daily_job_renews_a_due_crl_and_is_scheduled(cluster: ManagedCluster, monkeypatch) -> None:
    ca = cluster.certificate_authority()
    _write_crl_as_of(ca, datetime.now(timezone.utc) - timedelta(days=15), monkeypatch)  # 15 days left: due
    resources = {"postgres": PostgresResource(data_home=str(cluster.home.root))}
    result = platform_certificate_maintenance_job.execute_in_process(resources=resources)
    assert result.success
    assert result.output_for_node("maintain_certificates") == [
        "re-signed the CRL",
        "published the trust bundle and CRL to the server",
    ]
    assert _crl_days_left(cluster.data_dir / "root.crl") == pytest.approx(30, abs=0.01)
    again = platform_certificate_maintenance_job.execute_in_process(resources=resources)
    assert again.output_for_node("maintain_certificates") == []

    assert platform_certificate_maintenance_schedule.cron_schedule == "17 3 * * *"
    assert platform_certificate_maintenance_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    definitions = dg.Definitions.merge(platform_definitions(), dg.Definitions(resources=resources))
    assert definitions.get_job_def("platform_certificate_maintenance_job") is not None
    assert [schedule.name for schedule in definitions.schedules or []] == [
        "platform_certificate_maintenance_schedule"
    ]


def test_tls_health_records_ca_and_crl_and_its_check_fails_before_they_run_out(
    cluster: ManagedCluster,
) -> None:
    defs = dg.Definitions.merge(
        platform_definitions(),
        dg.Definitions(resources={"postgres": PostgresResource(data_home=str(cluster.home.root))}),
    )
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["ca_days_left"].value == pytest.approx(3650, abs=0.1)
    assert metadata["crl_days_left"].value == pytest.approx(30, abs=0.1)
    assert result.get_asset_check_evaluations()[0].passed is True

    strict = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {"platform_tls_health_server_certificate_not_expiring": {"config": {"crl_warn_days": 31}}}
        },
        raise_on_error=False,
    )
    evaluation = strict.get_asset_check_evaluations()[0]
    assert evaluation.passed is False
    assert "renew it with `energy-assets ca renew`" in evaluation.description
