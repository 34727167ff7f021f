"""Validation and normalization of Energy-Charts responses, fetched through the live client from the test server."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from energy_assets.sources.energy_charts.client import LiveEnergyChartsClient
from energy_assets.sources.energy_charts.errors import EnergyChartsResponseError
from energy_assets.sources.energy_charts.local_days import local_day_of, local_day_window, local_days_window
from energy_assets.sources.energy_charts.responses import (
    normalize_installed_power,
    normalize_price,
    normalize_public_power,
    slice_response,
)
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR
from energy_assets.sources.energy_charts.tables import DAY_AHEAD_PRICE, PUBLIC_POWER, PUBLIC_POWER_SHARE

NORMAL_DAY = date(2023, 12, 31)
SPRING_DST = date(2025, 3, 30)
AUTUMN_DST = date(2025, 10, 26)
LAST_HOURLY_PRICE_DAY = date(2025, 9, 30)
FIRST_QUARTER_HOUR_PRICE_DAY = date(2025, 10, 1)


def _public_power(client: LiveEnergyChartsClient, day: date):
    return normalize_public_power(
        client.public_power("de", day, day), country="de", window=local_day_window(day)
    )


def _rows_per_series(table: pa.Table) -> Counter:
    return Counter(table.column("production_type").to_pylist())


def test_normal_day_has_96_rows_per_series_and_drops_all_null_nuclear(
    live_client: LiveEnergyChartsClient,
) -> None:
    result = _public_power(live_client, NORMAL_DAY)

    assert result.power.schema == PUBLIC_POWER.arrow_schema
    assert result.share.schema == PUBLIC_POWER_SHARE.arrow_schema
    assert len(result.series_names) == 21
    # Nuclear is null at every timestamp: no information, so no rows (not an error).
    assert result.all_null_series == ("Nuclear",)
    assert set(_rows_per_series(result.power).values()) == {96}
    assert len(_rows_per_series(result.power)) == 18
    assert _rows_per_series(result.share) == {
        "Renewable share of generation": 96,
        "Renewable share of load": 96,
    }
    # 96 x 21 = 2,016 values in, Nuclear's 96 nulls dropped: never the 193,536 of a Cartesian product.
    assert result.power.num_rows + result.share.num_rows == 96 * 20


def test_normal_day_values_are_zipped_with_their_timestamps(live_client: LiveEnergyChartsClient) -> None:
    power = _public_power(live_client, NORMAL_DAY).power
    onshore = power.filter(pc.equal(power["production_type"], "Wind onshore"))

    assert onshore["value_mw"].to_pylist()[:4] == [17572.5, 17863.1, 17839.1, 17689.9]
    assert onshore["interval_start"][0].as_py() == datetime(2023, 12, 30, 23, 0, tzinfo=timezone.utc)
    assert onshore["interval_start"][-1].as_py() == datetime(2023, 12, 31, 22, 45, tzinfo=timezone.utc)
    assert set(onshore["interval_minutes"].to_pylist()) == {15}
    pumping = power.filter(pc.equal(power["production_type"], "Hydro pumped storage consumption"))
    assert pumping["value_mw"].to_pylist()[:4] == [-549.7, -570.6, -1391.1, -1907.0]


def test_daily_wind_energy_matches_a_hand_computation_from_the_raw_json(
    live_client: LiveEnergyChartsClient,
) -> None:
    raw = json.loads((SAMPLE_DIR / "public_power_de_2023-12-31.json").read_text())
    by_name = {series["name"]: series["data"] for series in raw["production_types"]}
    onshore_by_hand = sum(value * 0.25 for value in by_name["Wind onshore"])
    offshore_by_hand = sum(value * 0.25 for value in by_name["Wind offshore"])

    power = _public_power(live_client, NORMAL_DAY).power
    energy = {
        name: sum(
            value * minutes / 60
            for value, minutes in zip(
                power.filter(pc.equal(power["production_type"], name))["value_mw"].to_pylist(),
                power.filter(pc.equal(power["production_type"], name))["interval_minutes"].to_pylist(),
                strict=True,
            )
        )
        for name in ("Wind onshore", "Wind offshore")
    }

    # The reference totals for 2023-12-31 (data_formats.md section 1.8), kept by the sample bundle.
    assert onshore_by_hand == pytest.approx(635_985.5, abs=1e-6)
    assert offshore_by_hand == pytest.approx(136_971.9, abs=1e-6)
    assert energy["Wind onshore"] == pytest.approx(onshore_by_hand, abs=1e-6)
    assert energy["Wind offshore"] == pytest.approx(offshore_by_hand, abs=1e-6)


@pytest.mark.parametrize(("day", "intervals"), [(SPRING_DST, 92), (AUTUMN_DST, 100)])
def test_dst_days_have_92_and_100_quarter_hours(
    live_client: LiveEnergyChartsClient, day: date, intervals: int
) -> None:
    result = _public_power(live_client, day)

    assert set(_rows_per_series(result.power).values()) == {intervals}
    assert result.all_null_series == ()
    # 2025 names: Nuclear gone, Fossil coal-derived gas new.
    assert "Nuclear" not in result.series_names
    assert "Fossil coal-derived gas" in result.series_names


def test_spring_dst_prices_are_23_hourly_real_values(live_client: LiveEnergyChartsClient) -> None:
    result = normalize_price(
        live_client.price("DE-LU", SPRING_DST, SPRING_DST),
        bidding_zone="DE-LU",
        window=local_day_window(SPRING_DST),
    )

    assert result.table.schema == DAY_AHEAD_PRICE.arrow_schema
    assert result.table.num_rows == 23
    assert result.unit == "EUR / MWh"
    assert set(result.table["interval_minutes"].to_pylist()) == {60}
    prices = result.table["price_eur_per_mwh"].to_pylist()
    assert prices[:3] == [46.31, 15.89, 5.1]  # the published values of the first three hours
    recorded = json.loads((SAMPLE_DIR / "price_DE-LU_2025-03-30.json").read_text())
    assert prices == recorded["price"]
    starts = [int(t.timestamp()) for t in result.table["interval_start"].to_pylist()]
    assert starts == recorded["unix_seconds"]


def test_mixed_resolution_price_request_has_24_hourly_and_96_quarter_hourly_intervals(
    live_client: LiveEnergyChartsClient,
) -> None:
    window = local_days_window(LAST_HOURLY_PRICE_DAY, FIRST_QUARTER_HOUR_PRICE_DAY)
    body = live_client.price("DE-LU", LAST_HOURLY_PRICE_DAY, FIRST_QUARTER_HOUR_PRICE_DAY)

    table = normalize_price(body, bidding_zone="DE-LU", window=window).table

    assert table.num_rows == 120
    minutes = table["interval_minutes"].to_pylist()
    assert minutes == [60] * 24 + [15] * 96
    starts = [value.timestamp() for value in table["interval_start"].to_pylist()]
    assert starts[23] == 1759266000  # the last hourly price, 60 minutes up to the first quarter hour
    assert starts[24] == 1759269600
    assert starts[-1] == 1759355100
    # Both days together cover exactly 48 hours.
    assert sum(minutes) == 2 * 24 * 60
    local_days = [local_day_of(start) for start in table.column("interval_start").to_pylist()]
    assert local_days.count(LAST_HOURLY_PRICE_DAY) == 24
    assert local_days.count(FIRST_QUARTER_HOUR_PRICE_DAY) == 96


def test_both_unit_spellings_are_eur_per_mwh(live_client: LiveEnergyChartsClient) -> None:
    old = normalize_price(
        live_client.price("DE-LU", NORMAL_DAY, NORMAL_DAY),
        bidding_zone="DE-LU",
        window=local_day_window(NORMAL_DAY),
    )

    assert old.unit == "EUR / megawatt_hour"
    assert old.table.num_rows == 24
    assert old.license_info.startswith("CC BY 4.0")


def test_new_production_type_is_accepted_and_names_match_case_insensitively(
    live_client: LiveEnergyChartsClient,
) -> None:
    day = date(2024, 6, 15)
    result = _public_power(live_client, day)

    assert result.all_null_series == ("Nuclear",)
    assert _rows_per_series(result.power) == {
        "Wind onshore": 96,
        "Wind offshore": 96,  # sent as "wind OFFSHORE"
        "Solar": 96,
        "Hydrogen": 96,  # never seen before: kept under its own name
        "Load": 96,
    }
    assert _rows_per_series(result.share) == {"Renewable share of load": 96}


def test_unequal_arrays_name_endpoint_partition_and_field(live_client: LiveEnergyChartsClient) -> None:
    day = date(2024, 6, 17)
    with pytest.raises(EnergyChartsResponseError) as raised:
        _public_power(live_client, day)

    error = raised.value
    assert error.endpoint == "public_power"
    assert error.partition == "2024-06-17 (de)"
    assert error.field == "production_types[1].data ('Wind onshore')"
    assert "has 95 values but unix_seconds has 96" in str(error)


def test_unknown_unit_is_rejected(live_client: LiveEnergyChartsClient) -> None:
    day = date(2024, 6, 15)
    with pytest.raises(EnergyChartsResponseError) as raised:
        normalize_price(
            live_client.price("DE-LU", day, day), bidding_zone="DE-LU", window=local_day_window(day)
        )

    assert (raised.value.endpoint, raised.value.partition, raised.value.field) == (
        "price",
        "2024-06-15 (DE-LU)",
        "unit",
    )
    assert "unknown unit 'ct / kWh'" in str(raised.value)


def test_timestamp_outside_the_partition_is_rejected(live_client: LiveEnergyChartsClient) -> None:
    day = date(2024, 6, 16)
    with pytest.raises(EnergyChartsResponseError) as raised:
        normalize_price(
            live_client.price("DE-LU", day, day), bidding_zone="DE-LU", window=local_day_window(day)
        )

    assert raised.value.field == "unix_seconds[24]"
    assert "lies outside the requested local day(s) [2024-06-16T00:00+02:00, 2024-06-17T00:00+02:00)" in str(
        raised.value
    )


def test_a_response_for_another_day_is_rejected(live_client: LiveEnergyChartsClient) -> None:
    body = live_client.public_power("de", NORMAL_DAY, NORMAL_DAY)
    with pytest.raises(
        EnergyChartsResponseError, match=r"partition 2024-01-01 \(de\), field unix_seconds\[0\]"
    ):
        normalize_public_power(body, country="de", window=local_day_window(date(2024, 1, 1)))


def test_two_spellings_of_one_series_are_an_error() -> None:
    body = {
        "unix_seconds": [1703977200],
        "production_types": [{"name": "Solar", "data": [1.0]}, {"name": "SOLAR", "data": [2.0]}],
        "deprecated": False,
    }
    with pytest.raises(
        EnergyChartsResponseError, match=r"production_types\[1\]\.name: 'SOLAR' is the same series"
    ):
        normalize_public_power(body, country="de", window=local_day_window(NORMAL_DAY))


@pytest.mark.parametrize(
    ("bad_value", "field"),
    [("12.5", "production_types[0].data ('Solar')[0]"), (True, "production_types[0].data ('Solar')[0]")],
)
def test_non_numeric_values_are_rejected(bad_value: object, field: str) -> None:
    body = {"unix_seconds": [1703977200], "production_types": [{"name": "Solar", "data": [bad_value]}]}
    with pytest.raises(EnergyChartsResponseError) as raised:
        normalize_public_power(body, country="de", window=local_day_window(NORMAL_DAY))
    assert raised.value.field == field


def test_single_nulls_inside_a_series_are_kept_as_null_rows() -> None:
    body = {
        "unix_seconds": [1703977200, 1703978100, 1703979000],
        "production_types": [{"name": "Solar", "data": [1.0, None, 3.0]}],
        "deprecated": False,
    }
    power = normalize_public_power(body, country="de", window=local_day_window(NORMAL_DAY)).power
    assert power["value_mw"].to_pylist() == [1.0, None, 3.0]
    assert power["interval_minutes"].to_pylist() == [15, 15, 15]


def test_installed_power_yearly_and_monthly_labels(live_client: LiveEnergyChartsClient) -> None:
    yearly = normalize_installed_power(
        live_client.installed_power("de", "yearly"), country="de", time_step="yearly"
    )
    monthly = normalize_installed_power(
        live_client.installed_power("de", "monthly"), country="de", time_step="monthly"
    )

    solar = yearly.table.filter(pc.equal(yearly.table["production_type"], "Solar"))
    assert solar["period_start"][0].as_py() == date(2002, 1, 1)
    assert solar["capacity_gw"][0].as_py() == 0.296
    assert solar.filter(pc.equal(solar["period_start"], pa.scalar(date(2024, 1, 1))))[
        "capacity_gw"
    ].to_pylist() == [94.299]
    # "Battery Storage (Power)" (yearly) and "Battery storage (power)" (monthly) are one series.
    assert "Battery storage (power)" in yearly.series_names
    assert "Battery storage (power)" in monthly.series_names
    assert monthly.table["period_start"][0].as_py() == date(2023, 1, 1)
    assert set(monthly.table["time_step"].to_pylist()) == {"monthly"}
    assert yearly.last_update == datetime(2025, 11, 1, tzinfo=timezone.utc)
    # 14 series x 24 years, 14 series x 34 months, with nulls kept (e.g. pumped storage before 2011).
    assert yearly.table.num_rows == 14 * 24
    assert monthly.table.num_rows == 14 * 34


def test_installed_power_label_of_the_wrong_form_is_rejected() -> None:
    body = {"time": ["2024", "13.2024"], "production_types": [{"name": "Solar", "data": [1.0, 2.0]}]}
    with pytest.raises(EnergyChartsResponseError) as raised:
        normalize_installed_power(body, country="de", time_step="yearly")
    assert raised.value.field == "time[1]"
    assert raised.value.partition == "yearly (de)"


def test_slice_response_keeps_the_api_shape_per_day(live_client: LiveEnergyChartsClient) -> None:
    body = live_client.price("DE-LU", LAST_HOURLY_PRICE_DAY, FIRST_QUARTER_HOUR_PRICE_DAY)
    window = local_day_window(FIRST_QUARTER_HOUR_PRICE_DAY)

    day_body = slice_response(body, start_unix=window.start_unix, end_unix=window.end_unix)

    assert set(day_body) == {"license_info", "unix_seconds", "price", "unit", "deprecated"}
    assert len(day_body["unix_seconds"]) == len(day_body["price"]) == 96
    assert normalize_price(day_body, bidding_zone="DE-LU", window=window).table.num_rows == 96
