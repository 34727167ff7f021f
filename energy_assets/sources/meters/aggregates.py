"""The mart of the meter-file source, computed with DuckDB over Arrow (SQL in `sql/*.sql`).

- `nmi_daily_consumption`: per NMI, suffix and local day (Australia/Brisbane): the day's energy in the
  channel's unit, interval counts (actual and expected), and the shares of actual (A) versus estimated or
  substituted (E, F, S) intervals.

Deterministic: one DuckDB thread, sums over input ordered by key, output ordered by key; the same readings
give the same bytes whatever order they arrive in.
"""

from __future__ import annotations

import pyarrow as pa

from energy_assets.sources.meters.tables import NMI_DAILY_CONSUMPTION
from energy_assets.warehouse.duckdb_session import deterministic_session, package_sql


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`, shipped with this source."""
    return package_sql("energy_assets.sources.meters", name)


def nmi_daily_consumption(readings: pa.Table) -> pa.Table:
    """`marts.nmi_daily_consumption` from `meters.meter_readings` rows (any subset of days and NMIs).

    Pass whole local days: a day with only some of its intervals in `readings` gets a partial sum (its
    `interval_count` below `expected_interval_count` shows it).
    """
    ordered = readings.sort_by(
        [("nmi", "ascending"), ("nmi_suffix", "ascending"), ("interval_end", "ascending")]
    )
    with deterministic_session({"readings": ordered}) as connection:
        result = connection.sql(load_sql("nmi_daily_consumption")).to_arrow_table()
    return NMI_DAILY_CONSUMPTION.conform(result)
