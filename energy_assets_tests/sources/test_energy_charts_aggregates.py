"""The three marts, on hand-checkable series and on the sample days."""

from __future__ import annotations

import json
import math
import statistics
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from energy_assets.sources.energy_charts.aggregates import (
    daily_price_analysis,
    daily_production_trend,
    underperformance_30min,
)
from energy_assets.sources.energy_charts.local_days import local_day_window, local_days_window
from energy_assets.sources.energy_charts.responses import (
    normalize_installed_power,
    normalize_price,
    normalize_public_power,
)
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DAYS, SAMPLE_DIR, SnapshotEnergyChartsClient
from energy_assets.sources.energy_charts.tables import (
    DAILY_PRICE_ANALYSIS,
    DAILY_PRODUCTION_TREND,
    DAY_AHEAD_PRICE,
    INSTALLED_POWER,
    PUBLIC_POWER,
    UNDERPERFORMANCE_30MIN,
)

UTC = timezone.utc


def power_rows(rows: list[tuple[str, datetime, int, float | None]], country: str = "de") -> pa.Table:
    """public_power rows from (production_type, interval_start, interval_minutes, value_mw)."""
    return pa.table(
        {
            "country": [country] * len(rows),
            "interval_start": [row[1] for row in rows],
            "interval_minutes": [row[2] for row in rows],
            "production_type": [row[0] for row in rows],
            "value_mw": [row[3] for row in rows],
        },
        schema=PUBLIC_POWER.arrow_schema,
    )


def price_rows(rows: list[tuple[datetime, int, float]], zone: str = "DE-LU") -> pa.Table:
    return pa.table(
        {
            "bidding_zone": [zone] * len(rows),
            "interval_start": [row[0] for row in rows],
            "interval_minutes": [row[1] for row in rows],
            "price_eur_per_mwh": [row[2] for row in rows],
        },
        schema=DAY_AHEAD_PRICE.arrow_schema,
    )


def quarter_hours(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(minutes=15 * i) for i in range(count)]


@pytest.fixture(scope="module")
def sample_tables() -> dict[str, pa.Table]:
    client = SnapshotEnergyChartsClient()
    power, price = [], []
    for day in SAMPLE_DAYS:
        power.append(
            normalize_public_power(
                client.public_power("de", day, day), country="de", window=local_day_window(day)
            ).power
        )
        price.append(
            normalize_price(
                client.price("DE-LU", day, day), bidding_zone="DE-LU", window=local_day_window(day)
            ).table
        )
    installed = [
        normalize_installed_power(client.installed_power("de", step), country="de", time_step=step).table
        for step in ("yearly", "monthly")
    ]
    return {
        "power": pa.concat_tables(power),
        "price": pa.concat_tables(price),
        "installed": pa.concat_tables(installed),
    }


# -- daily_price_analysis -------------------------------------------------------------------------------


def test_correlation_of_four_quarter_hours_is_pearson_r_by_hand() -> None:
    # price 10, 20, 30, 40 and wind 100, 300, 200, 400 (onshore only):
    # dx = -15, -5, 5, 15; dy = -150, 50, -50, 150; sum dx*dy = 4000; sum dx^2 = 500; sum dy^2 = 50000
    # r = 4000 / sqrt(500 * 50000) = 0.8
    start = datetime(2025, 10, 1, 10, tzinfo=UTC)
    times = quarter_hours(start, 4)
    prices = price_rows([(t, 15, p) for t, p in zip(times, [10.0, 20.0, 30.0, 40.0], strict=True)])
    wind = power_rows(
        [("Wind onshore", t, 15, w) for t, w in zip(times, [100.0, 300.0, 200.0, 400.0], strict=True)]
    )

    [row] = daily_price_analysis(prices, wind).to_pylist()

    assert row["price_wind_correlation"] == pytest.approx(0.8, abs=1e-12)
    assert row["correlation_point_count"] == 4
    assert row["wind_onshore_mwh"] == pytest.approx((100 + 300 + 200 + 400) * 0.25)
    assert row["wind_offshore_mwh"] is None


def test_hourly_prices_are_expanded_to_quarter_hours_for_the_correlation() -> None:
    # Two hourly prices (10, 30) against 8 quarter hours of onshore + offshore wind.
    # total wind = 100, 200, 100, 200, 300, 400, 300, 400; x = 10 x4, 30 x4
    # sum dx*dy = 8000, sum dx^2 = 800, sum dy^2 = 100000 -> r = 8000 / sqrt(8e7) = 2 / sqrt(5)
    start = datetime(2025, 9, 30, 10, tzinfo=UTC)
    prices = price_rows([(start, 60, 10.0), (start + timedelta(hours=1), 60, 30.0)])
    onshore = [60.0, 150.0, 60.0, 150.0, 250.0, 300.0, 250.0, 300.0]
    offshore = [40.0, 50.0, 40.0, 50.0, 50.0, 100.0, 50.0, 100.0]
    times = quarter_hours(start, 8)
    wind = power_rows(
        [("Wind onshore", t, 15, v) for t, v in zip(times, onshore, strict=True)]
        + [("Wind offshore", t, 15, v) for t, v in zip(times, offshore, strict=True)]
    )

    [row] = daily_price_analysis(prices, wind).to_pylist()

    assert row["correlation_point_count"] == 8
    assert row["price_wind_correlation"] == pytest.approx(2 / math.sqrt(5), abs=1e-12)
    assert row["mean_price_eur_per_mwh"] == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("prices", "wind"),
    [([50.0, 50.0, 50.0], [1.0, 2.0, 3.0]), ([10.0, 20.0, 30.0], [5.0, 5.0, 5.0]), ([10.0], [5.0])],
    ids=["zero price variance", "zero wind variance", "one point"],
)
def test_correlation_is_null_where_undefined(prices: list[float], wind: list[float]) -> None:
    times = quarter_hours(datetime(2025, 10, 1, 10, tzinfo=UTC), len(prices))
    result = daily_price_analysis(
        price_rows([(t, 15, p) for t, p in zip(times, prices, strict=True)]),
        power_rows([("Wind onshore", t, 15, w) for t, w in zip(times, wind, strict=True)]),
    )

    assert result["price_wind_correlation"].to_pylist() == [None]


def test_mixed_day_mean_price_is_weighted_by_interval_length() -> None:
    # One hourly price of 100 then four quarter hours of 0: weights 60 and 4 x 15 -> mean 50 (not 20).
    start = datetime(2025, 9, 30, 20, tzinfo=UTC)
    prices = price_rows(
        [(start, 60, 100.0)] + [(t, 15, 0.0) for t in quarter_hours(start + timedelta(hours=1), 4)]
    )

    [row] = daily_price_analysis(prices, power_rows([])).to_pylist()

    assert row["mean_price_eur_per_mwh"] == pytest.approx(50.0)
    assert row["price_interval_count"] == 5
    assert row["negative_price_interval_count"] == 0
    assert row["correlation_point_count"] == 0


def raw_sample(kind: str, day: date) -> dict:
    name = f"price_DE-LU_{day}.json" if kind == "price" else f"public_power_de_{day}.json"
    return json.loads((SAMPLE_DIR / name).read_text())


def quarter_hour_prices(day: date) -> dict[int, float]:
    """The recorded prices of a day on the 15-minute grid: an hourly price holds for its four quarter hours."""
    raw = raw_sample("price", day)
    starts = raw["unix_seconds"]
    step = starts[1] - starts[0]
    assert all(b - a == step for a, b in zip(starts, starts[1:], strict=False))
    return {
        start + 900 * quarter: price
        for start, price in zip(starts, raw["price"], strict=True)
        if price is not None
        for quarter in range(step // 900)
    }


def quarter_hour_wind(day: date) -> dict[int, float]:
    """Onshore plus offshore wind MW per recorded quarter hour (NULLs left out, as the mart does)."""
    raw = raw_sample("public_power", day)
    series = {t["name"]: t["data"] for t in raw["production_types"]}
    totals: dict[int, float] = {}
    for name in ("Wind onshore", "Wind offshore"):
        for start, value in zip(raw["unix_seconds"], series[name], strict=True):
            if value is not None:
                totals[start] = totals.get(start, 0.0) + value
    return totals


def test_price_analysis_on_the_sample_days(sample_tables: dict[str, pa.Table]) -> None:
    result = daily_price_analysis(sample_tables["price"], sample_tables["power"])
    rows = {row["local_date"]: row for row in result.to_pylist()}

    assert result.schema == DAILY_PRICE_ANALYSIS.arrow_schema
    assert sorted(rows) == list(SAMPLE_DAYS)
    for day in SAMPLE_DAYS:
        prices = [p for p in raw_sample("price", day)["price"] if p is not None]
        row = rows[day]
        assert row["negative_price_interval_count"] == sum(1 for p in prices if p < 0), day
        assert (row["min_price_eur_per_mwh"], row["max_price_eur_per_mwh"]) == (min(prices), max(prices)), day
        assert row["price_interval_count"] == len(prices), day
        # Pearson r of price and wind on the common 15-minute grid, computed here from the recordings.
        grid_prices, grid_wind = quarter_hour_prices(day), quarter_hour_wind(day)
        common = sorted(grid_prices.keys() & grid_wind.keys())
        assert row["correlation_point_count"] == len(common), day
        by_hand = statistics.correlation([grid_prices[t] for t in common], [grid_wind[t] for t in common])
        assert row["price_wind_correlation"] == pytest.approx(by_hand, abs=1e-9), day
    # The DST days: 23 hourly prices expand to 92 quarter hours, 100 quarter-hourly prices stay 100.
    assert rows[date(2025, 3, 30)]["correlation_point_count"] == 92
    assert rows[date(2025, 10, 26)]["correlation_point_count"] == 100
    # Exactly the recorded days with a negative price have negative intervals counted.
    assert {day for day, row in rows.items() if row["negative_price_interval_count"]} == {
        day for day in SAMPLE_DAYS if min(raw_sample("price", day)["price"]) < 0
    }
    onshore = raw_sample("public_power", date(2023, 12, 31))["production_types"]
    [onshore_mw] = [t["data"] for t in onshore if t["name"] == "Wind onshore"]
    assert rows[date(2023, 12, 31)]["wind_onshore_mwh"] == pytest.approx(sum(onshore_mw) / 4, abs=1e-6)


def test_spring_dst_mean_price_by_hand(sample_tables: dict[str, pa.Table]) -> None:
    raw = json.loads((SAMPLE_DIR / "price_DE-LU_2025-03-30.json").read_text())
    by_hand = sum(raw["price"]) / len(raw["price"])  # all hourly: equal weights

    result = daily_price_analysis(sample_tables["price"], sample_tables["power"])
    spring = result.filter(pc.equal(result["local_date"], pa.scalar(date(2025, 3, 30))))

    assert spring["mean_price_eur_per_mwh"][0].as_py() == pytest.approx(by_hand, abs=1e-9)


# -- daily_production_trend -----------------------------------------------------------------------------


def test_production_trend_on_the_normal_day(sample_tables: dict[str, pa.Table]) -> None:
    trend = daily_production_trend(sample_tables["power"])
    day = trend.filter(pc.equal(trend["local_date"], pa.scalar(date(2023, 12, 31))))
    rows = {row["production_type"]: row for row in day.to_pylist()}

    assert trend.schema == DAILY_PRODUCTION_TREND.arrow_schema
    # One row per local day and type: 2023-12-31 is not split into two UTC dates.
    assert len(rows) == 18
    assert rows["Wind onshore"]["energy_mwh"] == pytest.approx(635_985.5, abs=1e-6)
    assert rows["Solar"]["energy_mwh"] == pytest.approx(27_253.2, abs=1e-6)
    assert rows["Load"]["energy_mwh"] == pytest.approx(1_051_889.9, abs=1e-6)
    assert rows["Wind onshore"]["min_mw"] == 17572.5
    assert rows["Wind onshore"]["interval_count"] == 96
    assert rows["Load"]["share_of_generation_percent"] is None
    assert rows["Load"]["is_generation"] is False
    generation_shares = [row["share_of_generation_percent"] for row in rows.values() if row["is_generation"]]
    assert sum(generation_shares) == pytest.approx(100.0)
    renewable = sum(row["energy_mwh"] for row in rows.values() if row["is_renewable"])
    generation = sum(row["energy_mwh"] for row in rows.values() if row["is_generation"])
    assert rows["Solar"]["renewable_share_of_generation_percent"] == pytest.approx(
        100 * renewable / generation
    )


def test_production_trend_on_dst_days_sums_quarter_hours_of_the_local_day(
    sample_tables: dict[str, pa.Table],
) -> None:
    trend = daily_production_trend(sample_tables["power"])
    counts = {
        (row["local_date"], row["production_type"]): row["interval_count"]
        for row in trend.to_pylist()
        if row["production_type"] == "Solar"
    }
    assert counts[(date(2025, 3, 30), "Solar")] == 92
    assert counts[(date(2025, 10, 26), "Solar")] == 100


def test_hourly_rows_count_a_full_hour_of_energy() -> None:
    start = datetime(2024, 1, 1, 11, tzinfo=UTC)
    trend = daily_production_trend(
        power_rows([("Solar", start, 60, 1000.0), ("Solar", start + timedelta(hours=1), 60, 500.0)])
    )

    [row] = trend.to_pylist()
    assert row["energy_mwh"] == pytest.approx(1500.0)
    assert row["mean_mw"] == pytest.approx(750.0)


# -- underperformance_30min -----------------------------------------------------------------------------


def _installed(rows: list[tuple[date, str, float]]) -> pa.Table:
    return pa.table(
        {
            "country": ["de"] * len(rows),
            "period_start": [row[0] for row in rows],
            "time_step": [row[1] for row in rows],
            "production_type": ["Wind onshore"] * len(rows),
            "capacity_gw": [row[2] for row in rows],
        },
        schema=INSTALLED_POWER.arrow_schema,
    )


def _constant_day(day: date, value_mw: float) -> list[tuple[str, datetime, int, float]]:
    window = local_day_window(day)
    return [("Wind onshore", t, 15, value_mw) for t in quarter_hours(window.start_utc, 96)]


def test_underperformance_against_the_trailing_median_of_the_slot() -> None:
    days = [date(2024, 6, 10), date(2024, 6, 11), date(2024, 6, 12)]
    power = power_rows(
        _constant_day(days[0], 1000.0) + _constant_day(days[1], 2000.0) + _constant_day(days[2], 400.0)
    )
    installed = _installed([(date(2024, 1, 1), "yearly", 62.524)])

    result = underperformance_30min(power, installed, trailing_days=2, threshold_fraction=0.5)
    by_day = {day: result.filter(pc.equal(result["local_date"], pa.scalar(day))).to_pylist() for day in days}

    assert result.schema == UNDERPERFORMANCE_30MIN.arrow_schema
    assert [len(by_day[day]) for day in days] == [48, 48, 48]
    first, second, third = (by_day[day][0] for day in days)
    assert first["local_slot"] == "00:00"
    assert first["expected_mw"] is None and first["is_underperforming"] is None
    assert second["expected_mw"] == 1000.0 and second["is_underperforming"] is False
    # median(1000, 2000) = 1500; 400 < 0.5 x 1500
    assert third["expected_mw"] == 1500.0
    assert third["baseline_day_count"] == 2
    assert third["is_underperforming"] is True
    assert third["capacity_factor"] == pytest.approx(400 / 62_524)
    assert third["capacity_time_step"] == "yearly"


def test_bucket_is_the_mean_of_its_quarter_hours_and_monthly_capacity_wins() -> None:
    day = date(2024, 6, 10)
    window = local_day_window(day)
    values = [100.0 if i % 2 == 0 else 300.0 for i in range(96)]
    power = power_rows(
        [("Wind onshore", t, 15, v) for t, v in zip(quarter_hours(window.start_utc, 96), values, strict=True)]
    )
    installed = _installed([(date(2024, 1, 1), "yearly", 62.524), (date(2024, 6, 1), "monthly", 63.0)])

    result = underperformance_30min(power, installed)
    first = result.to_pylist()[0]

    assert first["mean_mw"] == 200.0
    assert first["quarter_hour_count"] == 2
    assert first["installed_gw"] == 63.0
    assert first["capacity_time_step"] == "monthly"
    assert first["bucket_start"] == window.start_utc


def test_underperformance_on_the_sample_days(sample_tables: dict[str, pa.Table]) -> None:
    result = underperformance_30min(
        sample_tables["power"],
        sample_tables["installed"],
        output_days=[date(2025, 10, 26), date(2025, 3, 30)],
    )
    counts = {(row["production_type"], row["local_date"]) for row in result.to_pylist()}
    per_day = {
        day: result.filter(pc.equal(result["local_date"], pa.scalar(day))).num_rows
        for day in (date(2025, 3, 30), date(2025, 10, 26))
    }

    assert {production_type for production_type, _ in counts} == {"Wind onshore", "Wind offshore", "Solar"}
    assert per_day == {date(2025, 3, 30): 3 * 46, date(2025, 10, 26): 3 * 50}
    autumn_solar = result.filter(
        pc.and_(
            pc.equal(result["local_date"], pa.scalar(date(2025, 10, 26))),
            pc.equal(result["production_type"], "Solar"),
        )
    )
    assert set(autumn_solar["installed_gw"].to_pylist()) == {107.8}  # the 10.2025 monthly figure
    # The autumn day has two 02:00 and two 02:30 buckets; both compare with earlier days only.
    assert autumn_solar["local_slot"].to_pylist().count("02:00") == 2


def test_quarter_hour_grid_rejects_five_minute_rows() -> None:
    start = datetime(2024, 6, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"interval_minutes \[5\] are not multiples of 15"):
        daily_price_analysis(price_rows([(start, 5, 1.0)]), power_rows([]))


def test_sample_windows_are_consistent_with_the_two_day_window() -> None:
    window = local_days_window(date(2025, 9, 30), date(2025, 10, 1))
    assert window.minutes == 2880


def test_baseline_ignores_days_beyond_the_lookback() -> None:
    power = power_rows(_constant_day(date(2024, 6, 10), 1000.0) + _constant_day(date(2024, 8, 10), 100.0))
    installed = _installed([(date(2024, 1, 1), "yearly", 62.524)])

    result = underperformance_30min(power, installed, max_lookback_days=28, output_days=[date(2024, 8, 10)])

    assert set(result["baseline_day_count"].to_pylist()) == {0}
    assert set(result["is_underperforming"].to_pylist()) == {None}
    with_long_lookback = underperformance_30min(
        power, installed, max_lookback_days=90, output_days=[date(2024, 8, 10)]
    )
    assert set(with_long_lookback["is_underperforming"].to_pylist()) == {True}


def test_a_zone_is_compared_with_the_country_it_is_mapped_to() -> None:
    start = datetime(2025, 10, 1, 10, tzinfo=UTC)
    times = quarter_hours(start, 3)
    prices = price_rows([(t, 15, p) for t, p in zip(times, [10.0, 20.0, 40.0], strict=True)], zone="XX")
    wind = power_rows([("Wind onshore", t, 15, w) for t, w in zip(times, [1.0, 2.0, 4.0], strict=True)], "fr")

    [unmapped] = daily_price_analysis(prices, wind).to_pylist()
    [mapped] = daily_price_analysis(prices, wind, zone_countries={"XX": "fr"}).to_pylist()

    assert (unmapped["country"], unmapped["correlation_point_count"], unmapped["wind_onshore_mwh"]) == (
        None,
        0,
        None,
    )
    assert (mapped["country"], mapped["correlation_point_count"]) == ("fr", 3)
    assert mapped["wind_onshore_mwh"] == pytest.approx((1.0 + 2.0 + 4.0) / 4)
    assert mapped["price_wind_correlation"] == pytest.approx(1.0)  # wind is exactly price / 10


def test_each_input_is_named_when_its_intervals_do_not_fit_the_grid() -> None:
    start = datetime(2024, 6, 10, tzinfo=UTC)
    good_prices = price_rows([(start, 15, 1.0)])
    odd_power = power_rows([("Wind onshore", start, 10, 1.0)])
    with pytest.raises(ValueError, match=r"^public_power: interval_minutes \[10\] are not multiples of 15"):
        daily_price_analysis(good_prices, odd_power)
    with pytest.raises(ValueError, match=r"^day_ahead_price: interval_minutes \[5\]"):
        daily_price_analysis(price_rows([(start, 5, 1.0)]), power_rows([]))
    with pytest.raises(ValueError, match=r"^public_power: interval_minutes \[10\]"):
        underperformance_30min(odd_power, _installed([]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold_fraction": 0.0}, r"threshold_fraction must be in \(0, 1\], got 0.0"),
        ({"threshold_fraction": 1.01}, r"threshold_fraction must be in \(0, 1\], got 1.01"),
        ({"trailing_days": 0}, "trailing_days and max_lookback_days must be at least 1, got 0, 28"),
        ({"max_lookback_days": 0}, "trailing_days and max_lookback_days must be at least 1, got 7, 0"),
    ],
)
def test_underperformance_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        underperformance_30min(power_rows([]), _installed([]), **options)


def test_underperformance_accepts_the_edges_of_its_options() -> None:
    day = date(2024, 6, 10)
    power = power_rows(_constant_day(day, 100.0) + _constant_day(date(2024, 6, 11), 100.0))
    result = underperformance_30min(
        power, _installed([]), threshold_fraction=1.0, trailing_days=1, max_lookback_days=1
    )
    second_day = result.filter(pc.equal(result["local_date"], pa.scalar(date(2024, 6, 11))))
    # Equal to the baseline is not below it, even at threshold 1.
    assert set(second_day["expected_mw"].to_pylist()) == {100.0}
    assert set(second_day["is_underperforming"].to_pylist()) == {False}
