"""The Energy-Charts audit rules (SQL run by the publish path) on sample days and on broken copies of them.

Values are derived from the bundled sample: DST days have 92 and 100 quarter hours, the price switch day
pair has 24 hourly and 96 quarter-hourly prices.
"""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.local_days import local_day_window, local_days_window
from energy_assets.sources.energy_charts.responses import normalize_price, normalize_public_power
from energy_assets.sources.energy_charts.rules import LOCAL_DAYS, interval_rules, local_days_relation
from energy_assets.sources.energy_charts.snapshot import SnapshotEnergyChartsClient
from energy_assets.sources.energy_charts.tables import DAY_AHEAD_PRICE, PUBLIC_POWER
from energy_assets.warehouse.audit import AuditReport, run_audit, spec_rules
from energy_assets.warehouse.table_spec import TableSpec

SPRING_DST = date(2025, 3, 30)
AUTUMN_DST = date(2025, 10, 26)
SWITCH_DAYS = [date(2025, 9, 30), date(2025, 10, 1)]


def power(day: date) -> pa.Table:
    body = SnapshotEnergyChartsClient().public_power("de", day, day)
    return normalize_public_power(body, country="de", window=local_day_window(day)).power


def audit(spec: TableSpec, table: pa.Table, area_column: str, area: str, days: list[date]) -> AuditReport:
    """Label every row with its local-day partition and run the spec's and the interval rules."""
    labels = pa.array([""] * table.num_rows, pa.string())
    for day in days:
        window = local_day_window(day)
        inside = pc.and_(
            pc.greater_equal(table["interval_start"], pa.scalar(window.start_utc)),
            pc.less(table["interval_start"], pa.scalar(window.end_utc)),
        )
        labels = pc.if_else(inside, f"{area_column}={area}/date={day}", labels)
    candidate = table.append_column("lake_partition", labels)
    relation = local_days_relation(
        (f"{area_column}={area}/date={day}", local_day_window(day)) for day in days
    )
    rules = [*spec_rules(spec), *interval_rules(spec.series_columns)]
    return run_audit(spec, candidate, rules, relations={LOCAL_DAYS: relation})


def failed(report: AuditReport) -> list[str]:
    return [outcome.rule for outcome in report.failures]


def test_dst_days_pass_with_92_and_100_quarter_hours() -> None:
    for day, quarter_hours in ((SPRING_DST, 92), (AUTUMN_DST, 100)):
        table = power(day)
        assert set(pc.value_counts(table["production_type"]).field("counts").to_pylist()) == {quarter_hours}
        report = audit(PUBLIC_POWER, table, "country", "de", [day])
        assert report.passed, report.summary()


def test_the_price_switch_passes_24_hourly_and_96_quarter_hourly_prices() -> None:
    body = SnapshotEnergyChartsClient().price("DE-LU", *SWITCH_DAYS)
    table = normalize_price(body, bidding_zone="DE-LU", window=local_days_window(*SWITCH_DAYS)).table
    by_minutes = dict(zip(*pc.value_counts(table["interval_minutes"]).flatten(), strict=True))
    assert {int(k.as_py()): int(v.as_py()) for k, v in by_minutes.items()} == {60: 24, 15: 96}
    report = audit(DAY_AHEAD_PRICE, table, "bidding_zone", "DE-LU", SWITCH_DAYS)
    assert report.passed, report.summary()
    assert report.partitions == [f"bidding_zone=DE-LU/date={day}" for day in SWITCH_DAYS]


def test_a_missing_quarter_hour_fails_complete_local_days_naming_the_series() -> None:
    table = power(SPRING_DST)
    first_solar = pc.index(pc.equal(table["production_type"], "Solar"), True).as_py()
    broken = pa.concat_tables([table.slice(0, first_solar), table.slice(first_solar + 1)])
    report = audit(PUBLIC_POWER, broken, "country", "de", [SPRING_DST])
    assert failed(report) == ["complete_local_days"]
    [row] = report.outcome("complete_local_days").sample
    assert (row["production_type"], row["intervals"], row["minutes_covered"], row["minutes_in_day"]) == (
        "Solar",
        91,
        91 * 15,
        23 * 60,
    )


def test_a_partition_without_rows_fails() -> None:
    report = audit(
        PUBLIC_POWER, power(SPRING_DST), "country", "de", [SPRING_DST, SPRING_DST + timedelta(days=1)]
    )
    assert failed(report) == ["complete_local_days"]
    assert report.outcome("complete_local_days").partitions == ["country=de/date=2025-03-31"]


def test_a_duplicated_timestamp_and_a_shifted_one_are_refused() -> None:
    table = power(SPRING_DST)
    doubled = pa.concat_tables([table, table.slice(0, 1)])
    assert "unique_key" in failed(audit(PUBLIC_POWER, doubled, "country", "de", [SPRING_DST]))
    shifted = table.set_column(
        1, "interval_start", pc.add(table["interval_start"], pa.scalar(timedelta(minutes=7)))
    )
    assert "interval_grid" in failed(audit(PUBLIC_POWER, shifted, "country", "de", [SPRING_DST]))


def test_prices_outside_the_market_bounds_are_refused() -> None:
    body = SnapshotEnergyChartsClient().price("DE-LU", SPRING_DST, SPRING_DST)
    prices = normalize_price(body, bidding_zone="DE-LU", window=local_day_window(SPRING_DST)).table
    assert audit(DAY_AHEAD_PRICE, prices, "bidding_zone", "DE-LU", [SPRING_DST]).passed
    spike = prices.set_column(3, "price_eur_per_mwh", pa.array([4000.01] + [1.0] * (prices.num_rows - 1)))
    report = audit(DAY_AHEAD_PRICE, spike, "bidding_zone", "DE-LU", [SPRING_DST])
    assert failed(report) == ["bounds:price_eur_per_mwh"]
    assert report.outcome("bounds:price_eur_per_mwh").offending_rows == 1


def test_a_series_absent_on_one_day_of_a_range_passes() -> None:
    both = pa.concat_tables([power(day) for day in SWITCH_DAYS])
    second_day = pc.greater_equal(
        both["interval_start"], pa.scalar(local_day_window(SWITCH_DAYS[1]).start_utc)
    )
    without_solar = both.filter(pc.invert(pc.and_(pc.equal(both["production_type"], "Solar"), second_day)))
    assert audit(PUBLIC_POWER, without_solar, "country", "de", SWITCH_DAYS).passed


def test_a_table_allowed_to_be_absent_on_a_day_passes_empty_but_not_incomplete() -> None:
    from energy_assets.sources.energy_charts.tables import PUBLIC_POWER_SHARE

    day = SPRING_DST
    relation = local_days_relation([(f"country=de/date={day}", local_day_window(day))])
    empty = PUBLIC_POWER_SHARE.empty().append_column("lake_partition", pa.array([], pa.string()))
    optional = [
        *spec_rules(PUBLIC_POWER_SHARE),
        *interval_rules(PUBLIC_POWER_SHARE.series_columns, rows_required=False),
    ]
    assert run_audit(PUBLIC_POWER_SHARE, empty, optional, relations={LOCAL_DAYS: relation}).passed
    required = [*spec_rules(PUBLIC_POWER_SHARE), *interval_rules(PUBLIC_POWER_SHARE.series_columns)]
    report = run_audit(PUBLIC_POWER_SHARE, empty, required, relations={LOCAL_DAYS: relation})
    assert failed(report) == ["complete_local_days"]


def test_an_overlap_that_hides_a_gap_is_refused() -> None:
    body = SnapshotEnergyChartsClient().price("DE-LU", *SWITCH_DAYS)
    table = normalize_price(body, bidding_zone="DE-LU", window=local_days_window(*SWITCH_DAYS)).table
    day_two = table.filter(pc.equal(table["interval_minutes"], 15)).sort_by("interval_start")
    # The first interval claims a whole hour (overlapping 00:15-00:45), the last 45 minutes are missing:
    # on the grid, unique, inside the day, and the minutes still add up to 1,440.
    minutes = day_two["interval_minutes"].to_pylist()
    minutes[0] = 60
    broken = day_two.set_column(2, "interval_minutes", pa.array(minutes, pa.int32())).slice(
        0, day_two.num_rows - 3
    )
    report = audit(DAY_AHEAD_PRICE, broken, "bidding_zone", "DE-LU", [SWITCH_DAYS[1]])
    assert failed(report) == ["complete_local_days:contiguous"]
