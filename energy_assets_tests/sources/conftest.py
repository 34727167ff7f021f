"""Fixtures for source tests: the Energy-Charts test server and clients pointed at it or at recordings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from energy_assets.sources.energy_charts.client import LiveEnergyChartsClient
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR, SnapshotEnergyChartsClient
from energy_assets_tests.sources.energy_charts_server import FIXTURES_DIR, EnergyChartsTestServer


@pytest.fixture(scope="session")
def _energy_charts_server_session() -> Iterator[EnergyChartsTestServer]:
    server = EnergyChartsTestServer().start()
    yield server
    server.stop()


@pytest.fixture
def energy_charts_server(_energy_charts_server_session: EnergyChartsTestServer) -> EnergyChartsTestServer:
    """The local Energy-Charts server with an empty request log and no scripted answers."""
    _energy_charts_server_session.reset()
    return _energy_charts_server_session


@pytest.fixture
def live_client(energy_charts_server: EnergyChartsTestServer) -> Iterator[LiveEnergyChartsClient]:
    """The real HTTP client pointed at the local server; no rate limit and short backoff so tests stay fast."""
    client = LiveEnergyChartsClient(
        base_url=energy_charts_server.base_url,
        connect_timeout_s=2.0,
        read_timeout_s=5.0,
        max_retries=3,
        backoff_factor_s=0.05,
        backoff_max_s=0.2,
        retry_after_max_s=5,
        min_seconds_between_requests=0.0,
    )
    yield client
    client.close()


@pytest.fixture
def snapshot_client() -> SnapshotEnergyChartsClient:
    """Recorded responses: the bundled sample plus the odd test cases."""
    return SnapshotEnergyChartsClient([SAMPLE_DIR, FIXTURES_DIR])
