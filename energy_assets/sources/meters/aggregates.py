"""The mart of the meter-file source, computed with DuckDB over Arrow (SQL in `sql/*.sql`).

- `nmi_daily_consumption`: per NMI, suffix and local day (Australia/Brisbane): the day's energy in the
  channel's unit, interval counts (actual and expected), and the shares of actual (A) versus estimated or
  substituted (E, F, S) intervals.

Deterministic: one DuckDB thread, sums over input ordered by key, output ordered by key; the same readings
give the same bytes whatever order they arrive in.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pyarrow as pa

from energy_assets.sources.meters.tables import NMI_DAILY_CONSUMPTION


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`, shipped with the package."""
    return resources.files("energy_assets.sources.meters").joinpath("sql", f"{name}.sql").read_text("utf-8")


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET threads = 1")
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def nmi_daily_consumption(readings: pa.Table) -> pa.Table:
    """`marts.nmi_daily_consumption` from `meters.meter_readings` rows (any subset of days and NMIs).

    Pass whole local days: a day with only some of its intervals in `readings` gets a partial sum (its
    `interval_count` below `expected_interval_count` shows it).
    """
    ordered = readings.sort_by(
        [("nmi", "ascending"), ("nmi_suffix", "ascending"), ("interval_end", "ascending")]
    )
    connection = _connect()
    try:
        connection.register("readings", ordered)
        result = connection.sql(load_sql("nmi_daily_consumption")).to_arrow_table()
    finally:
        connection.close()
    return NMI_DAILY_CONSUMPTION.conform(result)
