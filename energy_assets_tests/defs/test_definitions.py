"""The code location loads, and the platform asset materializes over TLS into PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from energy_assets.defs.build import build_defs
from energy_assets.defs.platform.assets import platform_tls_health, server_certificate_not_expiring
from energy_assets.defs.resources import PostgresResource
from energy_assets.instance.home import dagster_environment, write_dagster_yaml
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.settings import DataHome

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load() -> None:
    defs = build_defs()
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_assets_def("platform_tls_health")
    defs.resolve_implicit_global_asset_job_def()


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    dg_bin = Path(sys.executable).parent / "dg"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("ENERGY_PG_URL", None)
    result = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_platform_asset_writes_its_row_over_tls(managed_cluster: ManagedCluster, data_home: DataHome) -> None:
    settings = managed_cluster.settings("energy")
    postgres = PostgresResource(data_home=str(data_home.root))
    result = dg.materialize(
        [platform_tls_health, server_certificate_not_expiring],
        resources={"postgres": postgres},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    metadata = result.asset_materializations_for_node("platform_tls_health")[0].metadata
    assert metadata["tls_version"].value in ("TLSv1.2", "TLSv1.3")
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
    with connect(settings) as conn:
        rows = conn.execute(
            "SELECT tls_version, certificate_serial, certificate_days_left FROM platform.tls_health "
            "ORDER BY checked_at DESC LIMIT 1"
        ).fetchone()
    served = managed_cluster.status().server_certificate_serial
    assert rows[0] == metadata["tls_version"].value
    assert rows[1] == format(served, "x")
    assert 390 < rows[2] <= 397


def test_expiry_check_fails_within_threshold(managed_cluster: ManagedCluster, data_home: DataHome) -> None:
    postgres = PostgresResource(data_home=str(data_home.root))
    result = dg.materialize(
        [platform_tls_health, server_certificate_not_expiring],
        resources={"postgres": postgres},
        instance=dg.DagsterInstance.ephemeral(),
        run_config={
            "ops": {"platform_tls_health_server_certificate_not_expiring": {"config": {"warn_days": 400}}}
        },
        raise_on_error=False,
    )
    evaluation = result.get_asset_check_evaluations()[0]
    assert evaluation.passed is False
    assert "rotate it with `energy-assets ca rotate-server`" in evaluation.description


def test_dagster_instance_storage_on_postgres(
    managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch
) -> None:
    dagster_home = data_home.root / "dagster-instance-test"
    write_dagster_yaml(dagster_home)
    for key, value in dagster_environment(managed_cluster.settings("dagster"), dagster_home).items():
        monkeypatch.setenv(key, value)

    def runs_so_far() -> int:
        with connect(managed_cluster.settings("dagster")) as conn:
            exists = conn.execute("SELECT to_regclass('public.runs') IS NOT NULL").fetchone()[0]
            return conn.execute("SELECT count(*) FROM runs").fetchone()[0] if exists else 0

    before = runs_so_far()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [platform_tls_health],
            resources={"postgres": PostgresResource(data_home=str(data_home.root))},
            instance=instance,
        )
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("platform_tls_health")) is not None
        # The instance's pooled storage still holds its connections: every one of them is TLS.
        with connect(managed_cluster.settings("dagster")) as conn:
            sessions = conn.execute(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)"
                " FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                " WHERE a.datname = 'dagster' AND a.pid <> pg_backend_pid()"
            ).fetchone()
    assert runs_so_far() - before == 1
    assert sessions[0] >= 1 and sessions[1] == 0
