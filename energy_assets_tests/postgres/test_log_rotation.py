"""Bounded server logs: the collector rotates by size, old files are pruned, connections are logged on request."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.settings import DataHome
from energy_assets_tests.conftest import make_data_home

ROTATION_KB = 16


@pytest.fixture
def cluster() -> Iterator[ManagedCluster]:
    home = DataHome(make_data_home("energy_assets_logs_"))
    managed = ManagedCluster(home)
    managed.ensure_running()
    yield managed
    managed.stop()
    shutil.rmtree(home.root, ignore_errors=True)


def _all_log_text(cluster: ManagedCluster) -> str:
    return "".join(path.read_text(errors="replace") for path in cluster.log_files())


def _wait_for_log(cluster: ManagedCluster, text: str, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in _all_log_text(cluster):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_the_log_rotates_at_the_configured_size_and_is_pruned(cluster: ManagedCluster) -> None:
    conf = (cluster.data_dir / "energy_assets.conf").read_text()
    assert "logging_collector = 'on'" in conf and "log_rotation_size = '10240kB'" in conf
    assert "log_rotation_age = '1440min'" in conf and "log_connections = 'off'" in conf
    cluster.configure_logging(rotation_size_kb=ROTATION_KB)
    assert f"log_rotation_size = '{ROTATION_KB}kB'" in (cluster.data_dir / "energy_assets.conf").read_text()
    with connect(cluster.settings("postgres"), autocommit=True) as conn:
        assert conn.execute("SHOW log_rotation_size").fetchone() == (f"{ROTATION_KB}kB",)
        time.sleep(1.1)  # a rotation within the start's second would reuse (append to) the same file name
        for chunk in range(3):
            # About 20 kB per chunk; one chunk per second, because the file name has one-second resolution.
            conn.execute(
                f"DO $$ BEGIN FOR i IN 1..100 LOOP RAISE LOG 'chunk {chunk} line % %', i, repeat('x', 180); "
                "END LOOP; END $$"
            )
            time.sleep(1.1)
    assert _wait_for_log(cluster, "chunk 2 line 100")
    files = cluster.log_files()
    assert len(files) >= 3
    for rotated in files[:-1]:
        # Rotated once past the size; the collector checks the size between batches of messages, so a
        # file can hold the rest of a burst (a chunk is about 27 kB) beyond the limit.
        assert ROTATION_KB * 1024 <= rotated.stat().st_size < 4 * ROTATION_KB * 1024

    config = cluster.config
    config.log_retention_files = 2
    cluster._save_config(config)
    removed = cluster.prune_logs()
    assert len(removed) == len(files) - 2
    assert cluster.log_files() == files[-2:]


def test_connections_are_logged_only_when_asked(cluster: ManagedCluster) -> None:
    with connect(cluster.settings().replace(application_name="unlogged_probe")) as conn:
        conn.execute("SELECT 1")
    time.sleep(0.5)
    assert "unlogged_probe" not in _all_log_text(cluster)
    cluster.configure_logging(log_connections=True)
    with connect(cluster.settings().replace(application_name="logged_probe")) as conn:
        conn.execute("SELECT 1")
    assert _wait_for_log(cluster, "application_name=logged_probe")
