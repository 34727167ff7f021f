"""Data-quality rules on sample partitions and on deliberately broken ones."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.local_days import local_day_window, local_days_window
from energy_assets.sources.energy_charts.quality import (
    check_freshness,
    check_interval_counts,
    check_physical_signs,
    check_price_bounds,
    check_row_counts_match,
    check_unique_intervals,
)
from energy_assets.sources.energy_charts.responses import normalize_price, normalize_public_power
from energy_assets.sources.energy_charts.snapshot import SnapshotEnergyChartsClient

SPRING_DST = date(2025, 3, 30)
AUTUMN_DST = date(2025, 10, 26)


def _power(day: date) -> pa.Table:
    client = SnapshotEnergyChartsClient()
    return normalize_public_power(
        client.public_power("de", day, day), country="de", window=local_day_window(day)
    ).power


def test_interval_counts_pass_on_the_dst_days() -> None:
    for day, expected in ((SPRING_DST, 92), (AUTUMN_DST, 100)):
        result = check_interval_counts(_power(day), series_columns=["country", "production_type"], days=[day])

        assert result.passed, result.details
        assert result.details["days"][day.isoformat()] == {
            "series": 19,
            "expected_intervals": {"15min": expected},
        }


def test_interval_counts_pass_on_the_mixed_price_request() -> None:
    client = SnapshotEnergyChartsClient()
    days = [date(2025, 9, 30), date(2025, 10, 1)]
    table = normalize_price(
        client.price("DE-LU", *days), bidding_zone="DE-LU", window=local_days_window(*days)
    ).table

    result = check_interval_counts(table, series_columns=["bidding_zone"], days=days)

    assert result.passed
    assert result.details["days"]["2025-09-30"]["expected_intervals"] == {"60min": 24}
    assert result.details["days"]["2025-10-01"]["expected_intervals"] == {"15min": 96}


def test_a_missing_quarter_hour_fails_the_interval_count() -> None:
    power = _power(SPRING_DST)
    solar_rows = pc.equal(power["production_type"], "Solar")
    first_solar = pc.index(solar_rows, True).as_py()
    broken = pa.concat_tables([power.slice(0, first_solar), power.slice(first_solar + 1)])

    result = check_interval_counts(broken, series_columns=["country", "production_type"], days=[SPRING_DST])

    assert not result.passed
    assert result.details["problems"] == [
        {
            "day": "2025-03-30",
            "series": ["de", "Solar"],
            "intervals": 91,
            "expected": 92,
            "interval_minutes": 15,
        }
    ]


def test_a_day_without_rows_fails() -> None:
    result = check_interval_counts(
        _power(SPRING_DST), series_columns=["production_type"], days=[date(2025, 3, 31)]
    )
    assert not result.passed
    assert result.details["problems"][0]["problem"] == "no rows"


def test_duplicate_timestamps_are_found() -> None:
    power = _power(SPRING_DST)
    assert check_unique_intervals(power, key_columns=["country", "production_type", "interval_start"]).passed

    doubled = pa.concat_tables([power, power.slice(0, 1)])
    result = check_unique_intervals(doubled, key_columns=["country", "production_type", "interval_start"])

    assert not result.passed
    assert result.details["duplicate_keys"] == 1
    assert result.details["samples"][0]["rows"] == 2


def test_price_bounds() -> None:
    client = SnapshotEnergyChartsClient()
    prices = normalize_price(
        client.price("DE-LU", SPRING_DST, SPRING_DST),
        bidding_zone="DE-LU",
        window=local_day_window(SPRING_DST),
    ).table
    assert check_price_bounds(prices).passed
    assert check_price_bounds(prices).details["min"] == -26.07

    spike = prices.set_column(3, "price_eur_per_mwh", pa.array([4000.01] + [1.0] * 22))
    result = check_price_bounds(spike)
    assert not result.passed
    assert result.details["outside_rows"] == 1


def test_physical_signs_on_the_sample_and_on_negative_solar() -> None:
    power = _power(AUTUMN_DST)
    # Pumping is negative and trade both ways: both allowed.
    assert check_physical_signs(power).passed

    flipped = pc.if_else(
        pc.equal(power["production_type"], "Solar"), pc.negate(power["value_mw"]), power["value_mw"]
    )
    result = check_physical_signs(power.set_column(4, "value_mw", flipped))
    assert not result.passed
    assert result.details["violations"] == {"Solar": 100}


def test_row_counts_and_freshness() -> None:
    assert check_row_counts_match(1824, 1824, label="2025-10-01").passed
    assert not check_row_counts_match(1824, 1823).passed
    assert check_freshness(date(2025, 10, 25), today=date(2025, 10, 26)).passed
    stale = check_freshness(date(2025, 10, 20), today=date(2025, 10, 26), max_lag_days=2)
    assert not stale.passed
    assert stale.details["lag_days"] == 6
    assert not check_freshness(None, today=date(2025, 10, 26)).passed


def test_a_series_that_ends_is_reported_not_failed() -> None:
    days = [date(2025, 9, 30), date(2025, 10, 1)]
    both = pa.concat_tables([_power(day) for day in days])
    without_solar_on_day_two = both.filter(
        pc.invert(
            pc.and_(
                pc.equal(both["production_type"], "Solar"),
                pc.greater_equal(both["interval_start"], pa.scalar(local_day_window(days[1]).start_utc)),
            )
        )
    )

    result = check_interval_counts(
        without_solar_on_day_two, series_columns=["country", "production_type"], days=days
    )

    assert result.passed
    assert result.details["days"]["2025-10-01"]["series_absent"] == [["de", "Solar"]]
