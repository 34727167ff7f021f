"""The buildings marts, computed with DuckDB (SQL in `sql/*.sql`), deterministic to the byte.

- `building_daily_consumption`: per building, meter and day: consumption, hours with a reading, min and max hour;
- `site_usage_daily_consumption`: per site, primary space usage, meter and day (from the daily mart + metadata);
- `building_energy_use_intensity`: per building and year: kWh of the consumption meters (`tables.EUI_METERS`) and
  kWh per m2 of `sqm`;
- `building_daily_weather`: the daily mart beside the site's mean air temperature and heating/cooling degree days
  against `DEFAULT_DEGREE_DAY_BASE_C` (18 degC, between the 15.5 degC common in Europe and the US 65 degF = 18.3 degC;
  a parameter).

Days are days on the dataset's own clock (`site_clock`, see `timestamps`). Every query runs on one DuckDB thread
over inputs in a fixed order and ends in an ORDER BY on the key, so the same inputs give the same bytes (floating
sums depend on the order in which they are added). Meter readings can be an Arrow table or Parquet files (a path,
a glob or a list), so the full 53M-row dataset need not be in memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from energy_assets.sources.buildings.tables import (
    BUILDING_DAILY_CONSUMPTION,
    BUILDING_DAILY_WEATHER,
    BUILDING_ENERGY_USE_INTENSITY,
    EUI_METERS,
    SITE_USAGE_DAILY_CONSUMPTION,
)
from energy_assets.warehouse.duckdb_session import Relation, deterministic_session, package_sql

DEFAULT_DEGREE_DAY_BASE_C = 18.0


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`, shipped with this source."""
    return package_sql("energy_assets.sources.buildings", name)


def building_daily_consumption(meter_readings: Relation, site_clock: pa.Table) -> pa.Table:
    """Per building, meter and day: consumption, reading count, lowest and highest hourly reading."""
    with deterministic_session({"meter_readings": meter_readings, "site_clock": site_clock}) as connection:
        result = connection.sql(load_sql("building_daily_consumption")).to_arrow_table()
    return BUILDING_DAILY_CONSUMPTION.conform(result)


def site_usage_daily_consumption(building_daily: pa.Table, metadata: pa.Table) -> pa.Table:
    """Per site, primary space usage, meter and day: consumption and buildings reporting."""
    with deterministic_session(
        {"building_daily_consumption": building_daily, "metadata": metadata}
    ) as connection:
        result = connection.sql(load_sql("site_usage_daily_consumption")).to_arrow_table()
    return SITE_USAGE_DAILY_CONSUMPTION.conform(result)


def building_energy_use_intensity(
    building_daily: pa.Table, metadata: pa.Table, *, eui_meters: Sequence[str] = EUI_METERS
) -> pa.Table:
    """Per building and year: kWh of the consumption meters and kWh per m2 of floor area."""
    with deterministic_session(
        {"building_daily_consumption": building_daily, "metadata": metadata}
    ) as connection:
        result = connection.sql(
            load_sql("building_energy_use_intensity"), params={"eui_meters": list(eui_meters)}
        ).to_arrow_table()
    return BUILDING_ENERGY_USE_INTENSITY.conform(result)


def building_daily_weather(
    building_daily: pa.Table,
    weather: Relation,
    site_clock: pa.Table,
    *,
    degree_day_base_c: float = DEFAULT_DEGREE_DAY_BASE_C,
) -> pa.Table:
    """The daily mart with the site's mean air temperature and heating/cooling degree days."""
    with deterministic_session(
        {"building_daily_consumption": building_daily, "weather": weather, "site_clock": site_clock}
    ) as connection:
        result = connection.sql(
            load_sql("building_daily_weather"), params={"degree_day_base_c": float(degree_day_base_c)}
        ).to_arrow_table()
    return BUILDING_DAILY_WEATHER.conform(result)
