"""Partition definitions of the Energy-Charts assets: one place, shared by assets, checks and schedules.

Daily partitions are local days in the source's time zone (Europe/Berlin for the bundled source), the day
Energy-Charts answers a `start=YYYY-MM-DD` query with. The bundled source starts on 2018-10-01, the first
delivery day of the DE-LU bidding zone (a declaration's `first_partition`); the newest partition is
yesterday (a day is complete only once it is over).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from energy_assets.sources.energy_charts.local_days import contiguous_chunks
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DAYS

if TYPE_CHECKING:
    from energy_assets.defs.energy_charts.component import EnergyChartsSource


def daily_partitions_for(source: EnergyChartsSource) -> dg.DailyPartitionsDefinition:
    """Local days in the source's time zone from its first partition on (`YYYY-MM-DD` keys)."""
    return dg.DailyPartitionsDefinition(
        start_date=source.first_partition, timezone=source.timezone, fmt="%Y-%m-%d"
    )


SAMPLE_PARTITION_KEYS: tuple[str, ...] = tuple(day.isoformat() for day in SAMPLE_DAYS)


def partition_days(partition_keys: list[str] | tuple[str, ...]) -> list[date]:
    """The local days of daily partition keys (`2025-03-30` -> date(2025, 3, 30)), sorted."""
    return sorted(date.fromisoformat(key) for key in partition_keys)


def sample_partition_ranges() -> list[tuple[str, str]]:
    """The sample days as runs of consecutive days: one single-run backfill each.

    >>> sample_partition_ranges()
    [('2023-12-31', '2023-12-31'), ('2025-03-30', '2025-03-30'), ('2025-09-30', '2025-10-01'), ('2025-10-26', '2025-10-26')]
    """
    return [
        (first.isoformat(), last.isoformat()) for first, last in contiguous_chunks(SAMPLE_DAYS, max_days=31)
    ]
