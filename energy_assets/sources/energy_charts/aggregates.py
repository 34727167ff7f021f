"""The three Energy-Charts marts, computed with DuckDB over Arrow tables (SQL in `sql/*.sql`).

- `daily_production_trend`: per local day, country and production type: energy (MW x interval hours), min,
  max and mean MW, share of the day's generation, and the day's renewable share.
- `daily_price_analysis`: per local day and bidding zone: time-weighted mean, min and max price, negative
  price intervals, onshore and offshore wind energy, and the Pearson correlation of price and wind power on a
  15-minute grid (`price_wind_correlation`, NULL with fewer than 2 points or zero variance).
- `underperformance_30min`: wind and solar in 30-minute buckets, capacity factor against installed power,
  and a flag when output falls below `threshold_fraction` of the trailing median of the same local slot
  (the baseline is documented in `sql/underperformance_30min.sql`).

Local days are Europe/Berlin days (`timezone('Europe/Berlin', interval_start)`), never UTC dates. Inputs are
tables with the schemas in `tables`; outputs are conformed to the mart schemas there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE_NAME
from energy_assets.sources.energy_charts.production_types import (
    SOLAR,
    WIND_OFFSHORE,
    WIND_ONSHORE,
    is_generation,
    is_renewable,
)
from energy_assets.sources.energy_charts.tables import (
    DAILY_PRICE_ANALYSIS,
    DAILY_PRODUCTION_TREND,
    UNDERPERFORMANCE_30MIN,
)
from energy_assets.warehouse.duckdb_session import deterministic_session, package_sql

# Which country's generation a bidding zone's price is compared with.
BIDDING_ZONE_COUNTRIES: dict[str, str] = {
    "DE-LU": "de",
    "DE-AT-LU": "de",
    "AT": "at",
    "BE": "be",
    "CH": "ch",
    "CZ": "cz",
    "FR": "fr",
    "NL": "nl",
    "PL": "pl",
    "DK1": "dk",
    "DK2": "dk",
    "HU": "hu",
    "SI": "si",
    "SK": "sk",
    "ES": "es",
    "PT": "pt",
}

DEFAULT_MONITORED_TYPES: tuple[str, ...] = (WIND_ONSHORE, WIND_OFFSHORE, SOLAR)
DEFAULT_THRESHOLD_FRACTION = 0.5
DEFAULT_TRAILING_DAYS = 7
DEFAULT_MAX_LOOKBACK_DAYS = 28


def load_sql(name: str) -> str:
    """The text of `sql/<name>.sql`, shipped with this source."""
    return package_sql("energy_assets.sources.energy_charts", name)


def daily_production_trend(public_power: pa.Table, *, timezone_name: str = MARKET_TIMEZONE_NAME) -> pa.Table:
    """Per local day, country and production type: energy MWh, mean/min/max MW, shares of generation."""
    types = sorted(set(public_power.column("production_type").to_pylist()))
    classes = pa.table(
        {
            "production_type": pa.array(types, pa.string()),
            "is_generation": pa.array([is_generation(name) for name in types], pa.bool_()),
            "is_renewable": pa.array([is_renewable(name) for name in types], pa.bool_()),
        }
    )
    with deterministic_session(
        {"public_power": public_power, "production_type_classes": classes}
    ) as connection:
        result = connection.sql(
            load_sql("daily_production_trend"), params={"timezone": timezone_name}
        ).to_arrow_table()
    return DAILY_PRODUCTION_TREND.conform(result)


def daily_price_analysis(
    day_ahead_price: pa.Table,
    public_power: pa.Table,
    *,
    zone_countries: Mapping[str, str] | None = None,
    timezone_name: str = MARKET_TIMEZONE_NAME,
) -> pa.Table:
    """Per local day and bidding zone: price statistics, wind energy and the price/wind correlation."""
    _require_quarter_hour_multiples(day_ahead_price, "day_ahead_price")
    _require_quarter_hour_multiples(public_power, "public_power")
    mapping = dict(BIDDING_ZONE_COUNTRIES if zone_countries is None else zone_countries)
    zones = sorted(set(day_ahead_price.column("bidding_zone").to_pylist()))
    zone_table = pa.table(
        {
            "bidding_zone": pa.array(zones, pa.string()),
            "country": pa.array([mapping.get(zone) for zone in zones], pa.string()),
        }
    )
    with deterministic_session(
        {"day_ahead_price": day_ahead_price, "public_power": public_power, "zone_countries": zone_table}
    ) as connection:
        result = connection.sql(
            load_sql("daily_price_analysis"),
            params={"timezone": timezone_name, "wind_onshore": WIND_ONSHORE, "wind_offshore": WIND_OFFSHORE},
        ).to_arrow_table()
    return DAILY_PRICE_ANALYSIS.conform(result)


def underperformance_30min(
    public_power: pa.Table,
    installed_power: pa.Table,
    *,
    threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION,
    trailing_days: int = DEFAULT_TRAILING_DAYS,
    max_lookback_days: int = DEFAULT_MAX_LOOKBACK_DAYS,
    monitored_types: Iterable[str] = DEFAULT_MONITORED_TYPES,
    output_days: Iterable[date] | None = None,
    timezone_name: str = MARKET_TIMEZONE_NAME,
) -> pa.Table:
    """30-minute wind/solar buckets with capacity factor and an underperformance flag.

    The baseline of a bucket is the median of the same local slot over the previous `trailing_days` days
    present in `public_power`, none older than `max_lookback_days`. `public_power` should therefore hold
    those earlier days too; `output_days` keeps only the rows of the days of interest.
    """
    if not 0 < threshold_fraction <= 1:
        raise ValueError(f"threshold_fraction must be in (0, 1], got {threshold_fraction}")
    if trailing_days < 1 or max_lookback_days < 1:
        raise ValueError(
            f"trailing_days and max_lookback_days must be at least 1, got {trailing_days}, {max_lookback_days}"
        )
    _require_quarter_hour_multiples(public_power, "public_power")
    monitored = pa.table({"production_type": pa.array(list(monitored_types), pa.string())})
    with deterministic_session(
        {"public_power": public_power, "installed_power": installed_power, "monitored_types": monitored}
    ) as connection:
        result = connection.sql(
            load_sql("underperformance_30min"),
            params={
                "timezone": timezone_name,
                "threshold_fraction": float(threshold_fraction),
                "trailing_days": int(trailing_days),
                "max_lookback_days": int(max_lookback_days),
            },
        ).to_arrow_table()
    table = UNDERPERFORMANCE_30MIN.conform(result)
    if output_days is not None:
        wanted = pa.array(sorted(set(output_days)), pa.date32())
        table = table.filter(pc.is_in(table.column("local_date"), value_set=wanted))
    return table


def _require_quarter_hour_multiples(table: pa.Table, name: str) -> None:
    distinct = pc.unique(table.column("interval_minutes")).to_pylist()
    odd = sorted(minutes for minutes in distinct if minutes is None or minutes % 15)
    if odd:
        raise ValueError(
            f"{name}: interval_minutes {odd} are not multiples of 15; the 15-minute grid needs them"
        )
