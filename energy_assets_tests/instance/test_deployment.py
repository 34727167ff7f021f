"""The Dagster instance of `docs/deployment.md`, on a PostgreSQL server that demands client certificates.

A managed cluster of its own with `clientcert=verify-full` (a certificate whose CN is the role, plus the
password from the passfile) stands in for the external server. The instance is built from the guide's
`dagster.yaml` block (storage, run queue, tag limits, pools, monitoring, retries), with a recording
launcher instead of the Kubernetes one, and `DAGSTER_PG_URL` carrying `sslcert`/`sslkey`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.test_utils import create_test_daemon_workspace_context
from dagster._core.workspace.load_target import EmptyWorkspaceTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

from energy_assets.instance.home import dagster_storage_url
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DAGSTER_DATABASE, DataHome
from energy_assets_tests.conftest import make_data_home
from energy_assets_tests.test_run_queue import queue_run

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def guide_instance_config() -> dict:
    """The `dagster.yaml` block of the deployment guide, its launcher swapped for a recording one."""
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text("utf-8"), re.S)
    config = yaml.safe_load(next(block for block in blocks if "run_coordinator:" in block))
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    config["run_launcher"] = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    return config


@pytest.fixture(scope="module")
def client_cert_cluster() -> Iterator[ManagedCluster]:
    home = DataHome(make_data_home("energy_assets_clientcert_"))
    cluster = ManagedCluster(home, client_cert_auth=True)
    cluster.ensure_running()
    yield cluster
    cluster.stop()
    shutil.rmtree(home.root, ignore_errors=True)


def test_guide_instance_runs_the_queue_over_client_certificates(
    client_cert_cluster: ManagedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = client_cert_cluster.settings(DAGSTER_DATABASE)
    url = dagster_storage_url(settings)
    assert settings.sslmode == "verify-full" and "sslcert=" in url and "sslkey=" in url
    without_certificate = sqlalchemy.create_engine(re.sub(r"&?ssl(cert|key)=[^&]*", "", url))
    with pytest.raises(sqlalchemy.exc.OperationalError, match="certificate"):
        without_certificate.connect().close()
    without_certificate.dispose()

    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(guide_instance_config()))
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        concurrency = instance.get_concurrency_config()
        assert concurrency.pool_config.default_pool_limit == 2
        assert concurrency.run_queue_config.max_concurrent_runs == 6
        day = queue_run(instance, "energy_charts", "2025-01-01")
        same_day = queue_run(instance, "energy_charts", "2025-01-01")
        electricity = queue_run(instance, "buildings", "electricity")
        with create_test_daemon_workspace_context(EmptyWorkspaceTarget(), instance) as workspace:
            list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))
        launched = [run.run_id for run in instance.run_launcher.queue()]
        assert launched == [day.run_id, electricity.run_id]
        assert instance.get_run_by_id(same_day.run_id).status == dg.DagsterRunStatus.QUEUED

        with connect(settings.with_database("postgres"), autocommit=True) as conn:
            client_names = {
                row[0]
                for row in conn.execute(
                    "SELECT s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
                    " WHERE a.datname = %s",
                    (DAGSTER_DATABASE,),
                )
            }
        assert client_names == {f"/CN={settings.user}"}  # the instance's own sessions, by certificate


def test_storage_url_keeps_every_host_and_parameter_but_no_secret() -> None:
    """What Dagster's SQLAlchemy + psycopg2 receive from DAGSTER_PG_URL: all hosts and libpq parameters."""
    settings = PostgresSettings.from_uri(
        "postgresql://app:url-secret@db1.example:5432,db2.example:5433/dagster?sslrootcert=/etc/ca.pem"
        "&target_session_attrs=read-write&application_name=dagster_daemon&sslpassword=key-secret"
        "&keepalives_idle=30&passfile=/etc/pgpass"
    )
    url = dagster_storage_url(settings)
    assert "secret" not in url
    engine = sqlalchemy.create_engine(url)
    _args, connect_args = engine.dialect.create_connect_args(engine.url)
    engine.dispose()
    assert connect_args == {
        "host": "db1.example,db2.example",
        "port": "5432,5433",
        "dbname": "dagster",
        "user": "app",
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ca.pem",
        "passfile": "/etc/pgpass",
        "connect_timeout": "10",
        "application_name": "dagster_daemon",
        "keepalives_idle": "30",
        "target_session_attrs": "read-write",
    }
