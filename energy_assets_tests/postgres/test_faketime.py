"""A year (and ten) unattended, with the real clock moved forward by libfaketime.

The server is started by the CLI under libfaketime, so the server and every CLI/psql process read the
same moved clock from one timestamp file (`FAKETIME_TIMESTAMP_FILE`): libpq in the clients checks the
server certificate and the CRL against it, and the server (client-certificate authentication is on)
checks the client certificates and its CRL against it. The cluster keeps running between the steps.
Each step runs what an operator or Dagster would (`db start`, a connection), then `ca status` must
exit 0 and psql must connect: the automatic renewals did their job.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from energy_assets.files import write_atomic
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import DataHome
from energy_assets_tests.conftest import make_data_home

LIBFAKETIME = next(
    iter(
        sorted(
            glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
            + glob.glob("/usr/lib/faketime/libfaketime.so.1")
        )
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    LIBFAKETIME is None,
    reason="libfaketime missing: `apt-get install faketime` (scripts/setup.sh does it as root)",
)


class MovedClock:
    """Runs the CLI and psql under libfaketime with an offset that can change while processes run."""

    def __init__(self, home: DataHome) -> None:
        self.home = home
        self.timestamp_file = home.root / "faketime"
        self.set_offset_days(0)
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        environment.pop("ENERGY_PG_URL", None)
        self.env = {
            **environment,
            "ENERGY_ASSETS_HOME": str(home.root),
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME_TIMESTAMP_FILE": str(self.timestamp_file),
            "FAKETIME_CACHE_DURATION": "1",
        }

    def set_offset_days(self, days: int) -> None:
        # Atomic: a process reading a half-written file would run on the real clock until its next read.
        # Mode 0644: the server user reads it too.
        write_atomic(self.timestamp_file, f"+{days}d\n".encode(), 0o644)
        time.sleep(1.5)  # every process re-reads the file after FAKETIME_CACHE_DURATION seconds

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(args), env=self.env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "energy_assets.cli", *args)


@pytest.fixture
def clock() -> Iterator[MovedClock]:
    home = DataHome(make_data_home("energy_assets_faketime_"))
    ManagedCluster(home, client_cert_auth=True).initialize()
    moved = MovedClock(home)
    yield moved
    ManagedCluster(home).stop()
    shutil.rmtree(home.root, ignore_errors=True)


@pytest.mark.slow
def test_connections_keep_working_as_the_clock_moves_forward(clock: MovedClock) -> None:
    cluster = ManagedCluster(clock.home)
    psql = shutil.which("psql") or str(cluster.binaries.bindir / "psql")
    first_server_serial = None
    for offset_days in (0, 31, 200, 400, 4000):
        clock.set_offset_days(offset_days)
        started = clock.cli("db", "start")
        assert started.returncode == 0, (offset_days, started.stderr)
        assert started.stdout.startswith("Started" if offset_days == 0 else "Already running"), started.stdout

        url = clock.cli("db", "url")
        assert url.returncode == 0, (offset_days, url.stderr)
        query = clock.run(
            psql,
            url.stdout.strip(),
            "-Atc",
            "SELECT now()::date, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        )
        assert query.returncode == 0, (offset_days, query.stderr)
        server_date, client_dn = query.stdout.strip().split("|")
        expected = (datetime.now(timezone.utc) + timedelta(days=offset_days)).date()
        assert (
            abs((datetime.fromisoformat(server_date).date() - expected).days) <= 1
        )  # the server's clock moved
        assert client_dn == "/CN=energy_admin"

        status = clock.cli("ca", "status")
        assert status.returncode == 0, (offset_days, status.stdout, status.stderr)
        lines = status.stdout.splitlines()
        crl_line = next(line for line in lines if line.startswith("crl"))
        assert crl_line.endswith("ok")
        served = presented_certificate("127.0.0.1", cluster.config.port).serial_number
        assert any(
            f"{served:040x}" in line and "ok (served by the managed cluster)" in line for line in lines
        )
        if offset_days == 0:
            first_server_serial = served
        if offset_days in (31, 200):
            assert served == first_server_serial  # nothing due yet but the CRL
        if offset_days == 400:
            assert served != first_server_serial  # the 397-day server certificate was renewed
        if offset_days == 4000:
            # The first root (3,650 days) ran out while nobody looked: a new root, leaves and CRL.
            ca_line = next(line for line in lines if line.startswith("ca "))
            assert "(rollover " in ca_line and ca_line.endswith("ok")
            assert not any(line.startswith("ca-prev") for line in lines)
            assert len(list(Path(clock.home.ca_dir / "retired").glob("*.crt"))) == 1
