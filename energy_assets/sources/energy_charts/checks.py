"""Non-blocking checks (warnings) and freshness for Energy-Charts tables, as plain functions over Arrow tables.

The blocking rules (complete local days, interval grid, unique keys, finite values, market bounds) are SQL
run by the publish path before anything is published: see `rules` and the table specs. What is left
here does not block: MW series with the sign that holds physically (generation and load >= 0, pumping
<= 0), and whether the newest partition is recent enough. Each returns a `QualityResult` (passed, a
one-line summary, JSON-able details).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.production_types import expected_sign

_SAMPLE_LIMIT = 10


@dataclass(frozen=True)
class QualityResult:
    """The outcome of one rule on one partition (or range of partitions)."""

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


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
