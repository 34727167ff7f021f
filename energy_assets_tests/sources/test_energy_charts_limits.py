"""The live client's overall deadline and size cap, and raw documents keeping only documented fields.

Against a real HTTP server on loopback that misbehaves on purpose (`misbehaving_server`): it drips the body or
the headers one byte at a time, sends bodies over the cap with a true, a missing or a chunked length, or adds
undocumented fields.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date

import pytest

from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.client import LiveEnergyChartsClient
from energy_assets.sources.energy_charts.errors import (
    EnergyChartsApiError,
    EnergyChartsDeadlineError,
    EnergyChartsResponseTooLargeError,
)
from energy_assets.sources.energy_charts.local_days import local_day_window
from energy_assets.sources.energy_charts.responses import documented_fields, normalize_price, slice_response
from energy_assets_tests.sources.misbehaving_server import CAP_BYTES, OVERSIZED, MisbehavingServer

DAY = date(2025, 3, 30)


@pytest.fixture(scope="module")
def server() -> Iterator[MisbehavingServer]:
    running = MisbehavingServer().start()
    yield running
    running.stop()


def _client(base_url: str, **overrides: float) -> LiveEnergyChartsClient:
    settings: dict = {
        "connect_timeout_s": 2.0,
        "read_timeout_s": 5.0,  # longer than the drip interval, so only the deadline can end a drip
        "max_retries": 2,
        "backoff_factor_s": 0.05,
        "min_seconds_between_requests": 0.0,
        "request_deadline_s": 2.0,
        "max_response_bytes": CAP_BYTES,
        **overrides,
    }
    return LiveEnergyChartsClient(base_url=base_url, **settings)


@pytest.mark.parametrize("behaviour", ["drip-body", "drip-headers"])
def test_a_dripping_server_fails_at_the_deadline(server: MisbehavingServer, behaviour: str) -> None:
    client = _client(server.url(behaviour))

    started = time.monotonic()
    with pytest.raises(EnergyChartsDeadlineError) as raised:
        client.price("DE-LU", DAY, DAY)
    elapsed = time.monotonic() - started

    assert 1.9 <= elapsed < 3.5
    message = str(raised.value)
    assert message.startswith(
        "GET /price?bzn=DE-LU&start=2025-03-30&end=2025-03-30: no complete response within"
    )
    assert "the overall deadline of 2 s for partition 2025-03-30 (DE-LU)" in message
    assert "raise request_deadline_s in the energy_charts resource config" in message
    assert raised.value.deadline_s == 2.0


def test_the_body_drip_is_abandoned_with_the_bytes_received(server: MisbehavingServer) -> None:
    client = _client(server.url("drip-body"), request_deadline_s=1.6)

    with pytest.raises(EnergyChartsDeadlineError, match=r"\(\d bytes of the body had arrived\)"):
        client.price("DE-LU", DAY, DAY)


def test_a_retry_after_longer_than_the_deadline_is_not_waited_for(server: MisbehavingServer) -> None:
    client = _client(server.url("rate-limited"))

    started = time.monotonic()
    with pytest.raises(EnergyChartsApiError) as raised:
        client.price("DE-LU", DAY, DAY)

    assert time.monotonic() - started < 1.0  # not the 5 s the server asked to wait, nor the 2 s deadline
    assert raised.value.status == 429
    assert raised.value.client_retried
    assert (
        "still rate limited after 0 retries (last Retry-After: 5); the next wait would pass the request"
        " deadline of 2 s: Too Many Requests"
    ) in str(raised.value)


@pytest.mark.parametrize(
    ("behaviour", "evidence"),
    [
        ("oversized-with-length", f"its Content-Length is {len(OVERSIZED)} bytes"),
        ("oversized-without-length", f"more than {CAP_BYTES} bytes arrived"),
        ("oversized-chunked", f"more than {CAP_BYTES} bytes arrived"),
    ],
)
def test_a_body_over_the_cap_is_refused(server: MisbehavingServer, behaviour: str, evidence: str) -> None:
    client = _client(server.url(behaviour), request_deadline_s=10.0)

    with pytest.raises(EnergyChartsResponseTooLargeError) as raised:
        client.price("DE-LU", DAY, DAY)

    message = str(raised.value)
    assert message.startswith(
        "GET /price?bzn=DE-LU&start=2025-03-30&end=2025-03-30 -> HTTP 200: response body refused for partition"
        f" 2025-03-30 (DE-LU): {evidence}, over the limit of max_response_bytes={CAP_BYTES}"
    )
    assert "Raise max_response_bytes in the energy_charts resource config" in message
    assert raised.value.max_bytes == CAP_BYTES
    assert isinstance(raised.value, EnergyChartsApiError)


def test_a_body_under_the_cap_is_read(server: MisbehavingServer) -> None:
    client = _client(
        server.url("oversized-chunked"), max_response_bytes=len(OVERSIZED), request_deadline_s=10.0
    )

    body = client.price("DE-LU", DAY, DAY)

    assert len(body["padding"]) == 5000


def test_unknown_top_level_fields_are_not_kept_in_raw_day_documents(server: MisbehavingServer) -> None:
    client = _client(server.url("extra-fields"), max_response_bytes=1_000_000)
    window = local_day_window(DAY)

    body = client.price("DE-LU", DAY, DAY)
    day_document = slice_response(
        body, start_unix=window.start_unix, end_unix=window.end_unix, endpoint=endpoints.PRICE
    )

    assert "debug_node" in body  # the client hands over what the server sent ...
    assert list(day_document) == [
        "license_info",
        "unix_seconds",
        "price",
        "unit",
        "deprecated",
    ]  # ... raw files don't
    assert "lb-7" not in json.dumps(day_document)
    assert day_document["price"][:3] == [46.31, 15.89, 5.1]
    assert normalize_price(day_document, bidding_zone="DE-LU", window=window).table.num_rows == 23
    # Without `endpoint`, the shape says /price.
    assert slice_response(body, start_unix=window.start_unix, end_unix=window.end_unix) == day_document


def test_public_power_series_keep_only_name_and_data() -> None:
    window = local_day_window(DAY)
    body = {
        "unix_seconds": [window.start_unix, window.start_unix + 900],
        "production_types": [{"name": "Solar", "data": [1.0, 2.0], "color": "#ffcc00"}],
        "deprecated": False,
        "server": "node-3",
    }

    day_document = slice_response(
        body, start_unix=window.start_unix, end_unix=window.end_unix, endpoint=endpoints.PUBLIC_POWER
    )

    assert day_document == {
        "unix_seconds": [window.start_unix, window.start_unix + 900],
        "production_types": [{"name": "Solar", "data": [1.0, 2.0]}],
        "deprecated": False,
    }


def test_installed_power_keeps_its_documented_fields(server: MisbehavingServer) -> None:
    client = _client(server.url("installed-extra-fields"))

    body = client.installed_power("de", "yearly")

    assert documented_fields(endpoints.INSTALLED_POWER, body) == {
        "time": ["2023", "2024"],
        "production_types": [{"name": "Solar", "data": [82.1, 99.3]}],
        "last_update": 1735686000,
        "deprecated": False,
    }


def test_documented_fields_of_an_unknown_endpoint_is_an_error() -> None:
    with pytest.raises(
        ValueError, match="no documented fields for endpoint 'cbet'; known: public_power, price"
    ):
        documented_fields("cbet", {})


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="request_deadline_s must be positive, got 0"):
        LiveEnergyChartsClient(request_deadline_s=0)
    with pytest.raises(ValueError, match="max_response_bytes must be at least 1, got 0"):
        LiveEnergyChartsClient(max_response_bytes=0)
