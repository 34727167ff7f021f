"""Simultaneous `energy-assets db start` on one data home: all succeed, one cluster (the start lock)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.settings import DataHome
from energy_assets_tests.conftest import make_data_home

STARTERS = 3


@pytest.fixture
def fresh_home() -> Iterator[DataHome]:
    home = DataHome(make_data_home("energy_assets_concurrent_"))
    yield home
    cluster = ManagedCluster(home)
    if (cluster.data_dir / "PG_VERSION").exists():
        cluster.stop()
    shutil.rmtree(home.root, ignore_errors=True)


def _cli(home: DataHome, *args: str) -> subprocess.Popen:
    env = {**os.environ, "ENERGY_ASSETS_HOME": str(home.root)}
    env.pop("ENERGY_PG_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "energy_assets.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _all_at_once(home: DataHome, *args: str) -> list[tuple[int, str, str]]:
    processes = [_cli(home, *args) for _ in range(STARTERS)]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        results.append((process.returncode, out, err))
    return results


@pytest.mark.slow
def test_simultaneous_starts_on_a_fresh_and_on_a_stopped_home_all_succeed(fresh_home: DataHome) -> None:
    results = _all_at_once(fresh_home, "db", "start")
    assert [code for code, _out, _err in results] == [0] * STARTERS, results
    assert sorted(out.split(":")[0] for _code, out, _err in results) == ["Already running"] * (
        STARTERS - 1
    ) + ["Started"]
    cluster = ManagedCluster(fresh_home)
    assert list(cluster.directory.glob("data.initdb-*")) == []
    assert len([cert for cert in cluster.certificate_authority().issued() if cert.kind == "server"]) == 1
    with connect(cluster.settings()) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname IN ('energy', 'dagster')"
        ).fetchone() == (2,)

    assert cluster.stop() is True
    stopped = _cli(fresh_home, "db", "status")
    assert stopped.wait(timeout=60) == 3
    results = _all_at_once(fresh_home, "db", "start")
    assert [code for code, _out, _err in results] == [0] * STARTERS, results
    assert cluster.is_running()


def test_a_killed_lock_holder_does_not_block_the_next_start(fresh_home: DataHome) -> None:
    fresh_home.ensure()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from energy_assets.files import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(600)\n",
            str(fresh_home.lock_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    # A stale staging folder as a crashed `initdb` would leave it.
    stale = fresh_home.cluster_dir / "data.initdb-crashed"
    stale.mkdir(parents=True)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    started = time.monotonic()
    cluster = ManagedCluster(fresh_home)
    assert cluster.start() is True
    assert time.monotonic() - started < 60
    assert not stale.exists()
