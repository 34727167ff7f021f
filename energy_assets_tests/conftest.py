"""Session fixtures shared by every test: a real managed PostgreSQL cluster over verified TLS.

The cluster is the project's own (`ManagedCluster`), created once per test session in a fresh data
home under /tmp and stopped at the end. Run as root, the server runs as the `postgres` OS user, so
the data home is made searchable (0711) for it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings
from energy_assets.settings import DataHome


def make_data_home(prefix: str) -> Path:
    """A fresh data home the unprivileged server user can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o711)
    return path


REUSED_HOME = "ENERGY_TEST_DATA_HOME"


@pytest.fixture(scope="session")
def data_home() -> Iterator[DataHome]:
    """A fresh data home per session; ENERGY_TEST_DATA_HOME reuses one (and its cluster) across sessions,
    which mutation testing needs: hundreds of short sessions against one running cluster."""
    reused = os.environ.get(REUSED_HOME)
    if reused:
        path = Path(reused)
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o711)
        yield DataHome(path)
        return
    path = make_data_home("energy_assets_test_")
    yield DataHome(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def managed_cluster(data_home: DataHome) -> Iterator[ManagedCluster]:
    cluster = ManagedCluster(data_home)
    cluster.ensure_running()
    yield cluster
    if not os.environ.get(REUSED_HOME):
        cluster.stop()


@pytest.fixture(scope="session")
def pg_settings(managed_cluster: ManagedCluster) -> PostgresSettings:
    """verify-full settings for the `energy` database of the session's managed cluster."""
    return managed_cluster.settings("energy")
