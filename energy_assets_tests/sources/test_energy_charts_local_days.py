"""Local-day windows and interval counts in Europe/Berlin."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from energy_assets.sources.energy_charts.local_days import (
    contiguous_chunks,
    days_between,
    expected_intervals,
    local_day_of,
    local_day_window,
    local_days_window,
    timezone_for,
)


@pytest.mark.parametrize(
    ("day", "quarter_hours", "hours"),
    [(date(2023, 12, 31), 96, 24), (date(2025, 3, 30), 92, 23), (date(2025, 10, 26), 100, 25)],
)
def test_expected_intervals_follow_the_local_day_length(day: date, quarter_hours: int, hours: int) -> None:
    assert expected_intervals(day, 15) == quarter_hours
    assert expected_intervals(day, 60) == hours


def test_window_of_a_normal_day_matches_the_api_timestamps() -> None:
    window = local_day_window(date(2023, 12, 31))

    assert window.start_unix == 1703977200  # first timestamp the API returns
    assert window.end_unix - 900 == 1704062700  # last one
    assert window.minutes == 1440
    assert window.label == "2023-12-31"


def test_two_day_window_of_the_price_switch() -> None:
    window = local_days_window(date(2025, 9, 30), date(2025, 10, 1))

    assert window.start_unix == 1759183200
    assert window.end_unix == 1759356000
    assert window.label == "2025-09-30..2025-10-01"
    assert window.describe() == "[2025-09-30T00:00+02:00, 2025-10-02T00:00+02:00) Europe/Berlin"


def test_dst_windows_start_at_local_midnight() -> None:
    spring = local_day_window(date(2025, 3, 30))
    autumn = local_day_window(date(2025, 10, 26))

    assert spring.start_utc == datetime(2025, 3, 29, 23, tzinfo=timezone.utc)
    assert spring.end_utc == datetime(2025, 3, 30, 22, tzinfo=timezone.utc)
    assert autumn.start_utc == datetime(2025, 10, 25, 22, tzinfo=timezone.utc)
    assert autumn.end_utc == datetime(2025, 10, 26, 23, tzinfo=timezone.utc)


def test_local_day_of_an_instant_is_not_its_utc_date() -> None:
    assert local_day_of(datetime(2023, 12, 30, 23, 0, tzinfo=timezone.utc)) == date(2023, 12, 31)
    with pytest.raises(ValueError, match="naive"):
        local_day_of(datetime(2023, 12, 30, 23, 0))


def test_chunks_group_consecutive_days_up_to_a_maximum() -> None:
    days = [
        date(2025, 10, 26),
        date(2025, 9, 30),
        date(2025, 10, 1),
        *days_between(date(2025, 1, 1), date(2025, 1, 5)),
    ]

    assert contiguous_chunks(days, max_days=3) == [
        (date(2025, 1, 1), date(2025, 1, 3)),
        (date(2025, 1, 4), date(2025, 1, 5)),
        (date(2025, 9, 30), date(2025, 10, 1)),
        (date(2025, 10, 26), date(2025, 10, 26)),
    ]


def test_countries_outside_central_european_time() -> None:
    assert timezone_for("pt").key == "Europe/Lisbon"
    assert timezone_for("DE-LU").key == "Europe/Berlin"
    # A UK local day starts an hour after a German one.
    assert local_day_window(date(2025, 1, 1), timezone_for("uk")).start_utc == datetime(
        2025, 1, 1, tzinfo=timezone.utc
    )
