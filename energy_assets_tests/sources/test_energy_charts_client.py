"""The live Energy-Charts client against a local server speaking the real API's shapes."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from energy_assets.sources.energy_charts.client import LiveEnergyChartsClient, RateLimiter, default_user_agent
from energy_assets.sources.energy_charts.errors import EnergyChartsApiError, EnergyChartsResponseError
from energy_assets_tests.sources.energy_charts_server import EnergyChartsTestServer, Scripted

NORMAL_DAY = date(2023, 12, 31)


def test_normal_day_is_one_request_with_the_documented_parameters(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    body = live_client.public_power("de", NORMAL_DAY, NORMAL_DAY)

    assert len(body["unix_seconds"]) == 96
    assert body["unix_seconds"][0] == 1703977200
    assert body["unix_seconds"][-1] == 1704062700
    assert [series["name"] for series in body["production_types"]][:3] == [
        "Hydro pumped storage consumption",
        "Cross border electricity trading",
        "Nuclear",
    ]
    [request] = energy_charts_server.requests
    # `start`/`end`, not `start_date`/`end_date`: the API ignores unknown names and returns today.
    assert request.params == {"country": "de", "start": "2023-12-31", "end": "2023-12-31"}
    assert request.headers["User-Agent"].startswith("energy_assets/")
    assert "energy data platform" in request.headers["User-Agent"]


def test_a_range_of_days_is_one_request(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    body = live_client.price("DE-LU", date(2025, 9, 30), date(2025, 10, 1))

    assert len(body["price"]) == 120
    assert len(energy_charts_server.requests) == 1
    assert [record.endpoint for record in live_client.requests_made] == ["price"]


def test_429_with_retry_after_is_retried_after_the_given_seconds(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    energy_charts_server.script("price", [Scripted(429, "Too Many Requests", headers={"Retry-After": "1"})])

    started = time.monotonic()
    body = live_client.price("DE-LU", date(2025, 3, 30), date(2025, 3, 30))
    elapsed = time.monotonic() - started

    assert body["price"][0] == 46.31
    first, second = energy_charts_server.requests_to("price")
    assert second.monotonic_time - first.monotonic_time >= 0.95
    assert elapsed >= 0.95


def test_500_then_success(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    energy_charts_server.script("public_power", [Scripted(500, "Internal Server Error")])

    body = live_client.public_power("de", date(2025, 3, 30), date(2025, 3, 30))

    assert len(body["unix_seconds"]) == 92
    assert len(energy_charts_server.requests_to("public_power")) == 2


def test_persistent_503_fails_after_the_retries_with_the_server_message(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    energy_charts_server.script("price", [Scripted(503, "upstream overloaded")] * 4)

    with pytest.raises(EnergyChartsApiError) as raised:
        live_client.price("DE-LU", date(2025, 3, 30), date(2025, 3, 30))

    assert raised.value.status == 503
    assert "upstream overloaded" in str(raised.value)
    assert "/price?bzn=DE-LU&start=2025-03-30&end=2025-03-30" in str(raised.value)
    assert len(energy_charts_server.requests_to("price")) == 4  # the first try and 3 retries


def test_400_plain_text_message_is_surfaced(live_client: LiveEnergyChartsClient) -> None:
    with pytest.raises(EnergyChartsApiError) as raised:
        live_client.public_power("xx", NORMAL_DAY, NORMAL_DAY)

    assert raised.value.status == 400
    assert raised.value.server_message == (
        "'xx' is not the code for an available country. Please refer to the API doc for information about"
        " available countries"
    )
    assert "GET /public_power?country=xx&start=2023-12-31&end=2023-12-31 -> HTTP 400" in str(raised.value)


def test_400_for_an_unknown_bidding_zone_is_not_retried(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    with pytest.raises(EnergyChartsApiError, match="'XX' is not the code for an available bidding zone"):
        live_client.price("XX", NORMAL_DAY, NORMAL_DAY)
    assert len(energy_charts_server.requests) == 1


def test_422_detail_list_is_surfaced(
    live_client: LiveEnergyChartsClient, energy_charts_server: EnergyChartsTestServer
) -> None:
    with pytest.raises(EnergyChartsApiError) as raised:
        live_client.get_json("price", {"bzn": "DE-LU", "start": "2025-13-01", "end": "2025-13-01"})

    assert raised.value.status == 422
    assert raised.value.server_message == "query.start: invalid date or unix timestamp"


def test_404_no_price_data(live_client: LiveEnergyChartsClient) -> None:
    with pytest.raises(EnergyChartsApiError) as raised:
        live_client.price("DE-LU", date(2019, 1, 1), date(2019, 1, 1))

    assert raised.value.status == 404
    assert raised.value.server_message == "No price data available for that bidding zone/time range"


def test_malformed_json_names_endpoint_partition_and_field(live_client: LiveEnergyChartsClient) -> None:
    with pytest.raises(EnergyChartsResponseError) as raised:
        live_client.public_power("de", date(2024, 6, 16), date(2024, 6, 16))

    error = raised.value
    assert (error.endpoint, error.partition, error.field) == ("public_power", "2024-06-16 (de)", "<body>")
    assert "not valid JSON" in str(error)


def test_unreachable_server_is_an_api_error() -> None:
    client = LiveEnergyChartsClient(
        base_url="http://127.0.0.1:9", max_retries=1, backoff_factor_s=0.01, min_seconds_between_requests=0.0
    )
    with pytest.raises(EnergyChartsApiError, match="no response from http://127.0.0.1:9 after 1 retries"):
        client.price("DE-LU", NORMAL_DAY, NORMAL_DAY)


def test_retry_configuration_is_urllib3_retry_honouring_retry_after(
    live_client: LiveEnergyChartsClient,
) -> None:
    adapter = live_client.session.get_adapter("https://api.energy-charts.info")
    retry = adapter.max_retries

    assert retry is live_client.retry
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}
    assert retry.respect_retry_after_header is True
    assert set(retry.allowed_methods) == {"GET"}
    assert live_client.timeout == (2.0, 5.0)


def test_rate_limiter_spaces_requests(
    energy_charts_server: EnergyChartsTestServer,
) -> None:
    client = LiveEnergyChartsClient(base_url=energy_charts_server.base_url, min_seconds_between_requests=0.2)
    for _ in range(3):
        client.price("DE-LU", NORMAL_DAY, NORMAL_DAY)

    times = [request.monotonic_time for request in energy_charts_server.requests]
    assert times[1] - times[0] >= 0.19
    assert times[2] - times[1] >= 0.19


def test_rate_limiter_is_shared_across_threads() -> None:
    limiter = RateLimiter(0.05)
    stamps: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        limiter.acquire()
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stamps.sort()
    assert all(later - earlier >= 0.045 for earlier, later in zip(stamps, stamps[1:], strict=False))


def test_user_agent_names_the_project_and_an_optional_contact() -> None:
    assert default_user_agent().startswith("energy_assets/0.1.0 (energy data platform; python-requests/")
    assert default_user_agent("data-team@example.org").endswith("; +data-team@example.org)")


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url must start with http"):
        LiveEnergyChartsClient(base_url="api.energy-charts.info")
