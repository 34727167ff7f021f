"""A dead API fails a materialization within the time budget: the client's retries, its request deadline and
the step's one retry (`defs/policy.py` `NETWORK_RETRY`) add up to a bound, not to minutes.

The price asset is materialized against a loopback server answering 500 forever, 429 with `Retry-After` forever,
or stalling in the middle of the body, with a small budget set through the resource config.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from energy_assets.defs.energy_charts import EnergyChartsSource, energy_charts_assets
from energy_assets.defs.energy_charts.resources import EnergyChartsResource
from energy_assets.defs.policy import NETWORK_RETRY
from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.sources.energy_charts.client import DEFAULT_BUDGET, DEFAULT_REQUEST_DEADLINE_S
from energy_assets_tests.sources.misbehaving_server import MisbehavingServer

REQUEST_DEADLINE_S = 2.0
MAX_RETRIES = 2
# Two attempts of the step (the first and NETWORK_RETRY's one retry), each at most one request deadline.
BUDGET_S = 2 * REQUEST_DEADLINE_S + NETWORK_RETRY.delay
# Starting a materialization in process (definitions, an ephemeral instance) takes a few seconds of its own.
OVERHEAD_S = 6.0


@pytest.fixture(scope="module")
def server() -> Iterator[MisbehavingServer]:
    running = MisbehavingServer().start()
    yield running
    running.stop()


def test_the_default_budget_fails_a_dead_api_within_two_minutes() -> None:
    attempts = 1 + NETWORK_RETRY.max_retries
    rate_limit_s = 1.0  # EnergyChartsResource.min_seconds_between_requests
    worst_case_s = attempts * (DEFAULT_REQUEST_DEADLINE_S + rate_limit_s) + NETWORK_RETRY.max_retries * (
        NETWORK_RETRY.delay
    )

    assert worst_case_s == 97.0
    assert worst_case_s <= 120
    # urllib3's backoff between the client's retries (0, 2, 4, 8 s) fits in one request deadline.
    backoffs = [0.0] + [DEFAULT_BUDGET.backoff_factor_s * 2**n for n in range(1, DEFAULT_BUDGET.max_retries)]
    assert sum(backoffs) == 14.0 < DEFAULT_REQUEST_DEADLINE_S


@pytest.mark.parametrize(
    ("behaviour", "evidence", "most_requests"),
    [
        ("server-error", "HTTP 500: server error persisted through", 2 * (1 + MAX_RETRIES)),
        ("rate-limited", "HTTP 429: still rate limited after 0 retries (last Retry-After: 5)", 2),
        # The read timeout (20 s by default) is longer than the deadline: the deadline ends the stall.
        ("stall-mid-body", "no complete response within the overall deadline of 2 s", 2),
    ],
)
def test_a_dead_api_fails_the_materialization_within_the_budget(
    server: MisbehavingServer, tmp_path: Path, behaviour: str, evidence: str, most_requests: int
) -> None:
    server.hits.clear()
    energy_charts = EnergyChartsResource(
        source="live",
        base_url=server.url(behaviour),
        request_deadline_s=REQUEST_DEADLINE_S,
        max_retries=MAX_RETRIES,
        backoff_factor_s=0.05,
        min_seconds_between_requests=0.0,
    )

    started = time.monotonic()
    result = dg.materialize(
        [energy_charts_assets(EnergyChartsSource()).price],
        partition_key="2025-03-30",
        resources={
            "energy_charts": energy_charts,
            "lake": LakeResource(path=str(tmp_path / "lake")),
            "postgres": PostgresResource(data_home=str(tmp_path / "home")),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    elapsed = time.monotonic() - started

    assert not result.success
    assert elapsed < BUDGET_S + OVERHEAD_S
    [failure] = [event for event in result.all_events if event.event_type_value == "STEP_FAILURE"]
    assert evidence in str(failure.event_specific_data.error)
    assert "GET /price?bzn=DE-LU&start=2025-03-30&end=2025-03-30" in str(failure.event_specific_data.error)
    assert 1 <= len(server.hits) <= most_requests
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.json"))
