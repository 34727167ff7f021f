"""Warning rules and freshness on sample partitions and on deliberately broken ones (blocking rules:
`test_energy_charts_audit_rules.py`)."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.checks import (
    check_freshness,
    check_physical_signs,
)
from energy_assets.sources.energy_charts.local_days import local_day_window
from energy_assets.sources.energy_charts.responses import normalize_public_power
from energy_assets.sources.energy_charts.snapshot import SnapshotEnergyChartsClient

SPRING_DST = date(2025, 3, 30)
AUTUMN_DST = date(2025, 10, 26)


def _power(day: date) -> pa.Table:
    client = SnapshotEnergyChartsClient()
    return normalize_public_power(
        client.public_power("de", day, day), country="de", window=local_day_window(day)
    ).power


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


def test_freshness() -> None:
    assert check_freshness(date(2025, 10, 25), today=date(2025, 10, 26)).passed
    stale = check_freshness(date(2025, 10, 20), today=date(2025, 10, 26), max_lag_days=2)
    assert not stale.passed
    assert stale.details["lag_days"] == 6
    assert not check_freshness(None, today=date(2025, 10, 26)).passed
