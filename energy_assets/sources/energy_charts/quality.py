"""Data-quality rules for Energy-Charts partitions, as plain functions over Arrow tables.

Each returns a `QualityResult` (passed, a one-line summary, JSON-able details); the Dagster layer turns them
into asset-check results and decides which ones block downstream assets. The rules:

- interval counts: every series has as many intervals per local day as the day's length implies
  (96/92/100 quarter hours, 24/23/25 hours); a day without any rows fails, a series present on other days
  but absent on one is reported (names drift) without failing;
- no duplicate (series, interval_start);
- prices within the market bounds (-600 to 4000 EUR/MWh: the harmonised SDAC floor and cap);
- MW series have the sign that holds physically (generation and load >= 0, pumping <= 0);
- Parquet and PostgreSQL hold the same number of rows for a partition;
- the latest partition is recent enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.local_days import LocalDayWindow, local_day_window
from energy_assets.sources.energy_charts.production_types import expected_sign
from energy_assets.sources.energy_charts.responses import split_by_local_day

PRICE_FLOOR_EUR_PER_MWH = -600.0
PRICE_CAP_EUR_PER_MWH = 4000.0

_SAMPLE_LIMIT = 10


@dataclass(frozen=True)
class QualityResult:
    """The outcome of one rule on one partition (or range of partitions)."""

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def check_interval_counts(
    table: pa.Table,
    *,
    series_columns: Sequence[str],
    days: Iterable[date],
    window_for: Callable[[date], LocalDayWindow] = local_day_window,
) -> QualityResult:
    """Every series has the number of intervals its local day implies, on every requested day."""
    day_list = sorted(set(days))
    all_series = {tuple(row.values()) for row in table.select(list(series_columns)).to_pylist()}
    by_day = split_by_local_day(table, day_list, window_for)
    problems: list[dict[str, Any]] = []
    per_day: dict[str, Any] = {}
    for day in day_list:
        window = window_for(day)
        rows = by_day[day]
        if rows.num_rows == 0:
            problems.append({"day": day.isoformat(), "problem": "no rows"})
            per_day[day.isoformat()] = {"intervals": 0}
            continue
        grouped = rows.group_by(list(series_columns)).aggregate(
            [
                ("interval_start", "count"),
                ("interval_minutes", "min"),
                ("interval_minutes", "max"),
                ("interval_minutes", "sum"),
            ]
        )
        seen = set()
        expected_by_resolution: dict[int, int | None] = {}
        for row in grouped.to_pylist():
            key = tuple(row[column] for column in series_columns)
            seen.add(key)
            count, low, high = (
                row["interval_start_count"],
                row["interval_minutes_min"],
                row["interval_minutes_max"],
            )
            if low == high:
                expected = window.minutes // low if window.minutes % low == 0 else None
                expected_by_resolution[low] = expected
                if expected is None or count != expected:
                    problems.append(
                        {
                            "day": day.isoformat(),
                            "series": list(key),
                            "intervals": count,
                            "expected": expected,
                            "interval_minutes": low,
                        }
                    )
            elif row["interval_minutes_sum"] != window.minutes:
                problems.append(
                    {
                        "day": day.isoformat(),
                        "series": list(key),
                        "intervals": count,
                        "covered_minutes": row["interval_minutes_sum"],
                        "expected_minutes": window.minutes,
                    }
                )
        per_day[day.isoformat()] = {
            "series": len(seen),
            "expected_intervals": {
                f"{minutes}min": n for minutes, n in sorted(expected_by_resolution.items())
            },
        }
        absent = sorted(all_series - seen, key=str)
        if absent:
            # Series come and go (Nuclear ended in April 2023): reported, not a failure.
            per_day[day.isoformat()]["series_absent"] = [list(key) for key in absent]
    passed = not problems
    summary = (
        f"interval counts match the local day length on {len(day_list)} day(s)"
        if passed
        else f"{len(problems)} series/day combination(s) with the wrong number of intervals"
    )
    return QualityResult(
        "interval_counts", passed, summary, {"days": per_day, "problems": problems[:_SAMPLE_LIMIT]}
    )


def check_unique_intervals(table: pa.Table, *, key_columns: Sequence[str]) -> QualityResult:
    """No two rows share a key (series + `interval_start`)."""
    grouped = table.group_by(list(key_columns)).aggregate([([], "count_all")])
    duplicates = grouped.filter(pc.greater(grouped.column("count_all"), 1))
    samples = [
        {column: _jsonable(row[column]) for column in key_columns} | {"rows": row["count_all"]}
        for row in duplicates.slice(0, _SAMPLE_LIMIT).to_pylist()
    ]
    passed = duplicates.num_rows == 0
    summary = "no duplicate timestamps" if passed else f"{duplicates.num_rows} duplicated key(s)"
    return QualityResult(
        "unique_intervals", passed, summary, {"duplicate_keys": duplicates.num_rows, "samples": samples}
    )


def check_price_bounds(
    table: pa.Table,
    *,
    column: str = "price_eur_per_mwh",
    floor: float = PRICE_FLOOR_EUR_PER_MWH,
    cap: float = PRICE_CAP_EUR_PER_MWH,
) -> QualityResult:
    """Every non-null price lies within the day-ahead market's floor and cap."""
    values = table.column(column)
    outside = pc.or_(pc.less(values, floor), pc.greater(values, cap))
    bad = table.filter(pc.fill_null(outside, False))
    samples = [
        {key: _jsonable(value) for key, value in row.items()}
        for row in bad.slice(0, _SAMPLE_LIMIT).to_pylist()
    ]
    passed = bad.num_rows == 0
    low, high = pc.min(values).as_py(), pc.max(values).as_py()
    summary = (
        f"all prices within [{floor:g}, {cap:g}] EUR/MWh (min {low}, max {high})"
        if passed
        else f"{bad.num_rows} price(s) outside [{floor:g}, {cap:g}] EUR/MWh"
    )
    return QualityResult(
        "price_bounds",
        passed,
        summary,
        {"min": low, "max": high, "outside_rows": bad.num_rows, "samples": samples},
    )


def check_physical_signs(
    table: pa.Table, *, value_column: str = "value_mw", tolerance: float = 0.0
) -> QualityResult:
    """Generation and load are >= 0 and pumping consumption <= 0 (`tolerance` allows metering noise)."""
    violations: dict[str, int] = {}
    for name in sorted(set(table.column("production_type").to_pylist())):
        rule = expected_sign(name)
        if rule == "any":
            continue
        values = table.filter(pc.equal(table.column("production_type"), name)).column(value_column)
        wrong = pc.less(values, -tolerance) if rule == "non_negative" else pc.greater(values, tolerance)
        count = pc.sum(pc.cast(pc.fill_null(wrong, False), pa.int64())).as_py() or 0
        if count:
            violations[name] = count
    passed = not violations
    summary = (
        "every series has its physically possible sign"
        if passed
        else f"values with the wrong sign in {len(violations)} series"
    )
    return QualityResult("physical_signs", passed, summary, {"violations": violations})


def check_row_counts_match(parquet_rows: int, postgres_rows: int, *, label: str = "") -> QualityResult:
    """The Parquet file and the PostgreSQL table hold the same rows for the partition."""
    passed = parquet_rows == postgres_rows
    where = f" for {label}" if label else ""
    summary = (
        f"{parquet_rows} rows in Parquet and PostgreSQL{where}"
        if passed
        else f"Parquet has {parquet_rows} rows but PostgreSQL {postgres_rows}{where}"
    )
    return QualityResult(
        "parquet_matches_postgres",
        passed,
        summary,
        {"parquet_rows": parquet_rows, "postgres_rows": postgres_rows},
    )


def check_freshness(latest_partition: date | None, *, today: date, max_lag_days: int = 2) -> QualityResult:
    """The newest loaded local day is at most `max_lag_days` before `today` (yesterday is lag 1)."""
    if latest_partition is None:
        return QualityResult("freshness", False, "no partition loaded yet", {"max_lag_days": max_lag_days})
    lag = (today - latest_partition).days
    passed = lag <= max_lag_days
    summary = f"latest partition {latest_partition} is {lag} day(s) old (allowed: {max_lag_days})"
    return QualityResult(
        "freshness",
        passed,
        summary,
        {"latest_partition": latest_partition.isoformat(), "lag_days": lag, "max_lag_days": max_lag_days},
    )


def _jsonable(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
