"""The tables this source produces, described once: name, columns (Arrow type, unit, meaning) and key.

The normalizers and aggregates build Arrow tables with exactly these schemas; the Dagster layer turns the same
descriptions into `TableSchema` metadata and PostgreSQL tables, so a column is described in one place only.
"""

from __future__ import annotations

import pyarrow as pa

from energy_assets.warehouse.table_spec import UTC_TIMESTAMP, TableSpec, column

RAW_SCHEMA = "energy_charts"
MARTS_SCHEMA = "marts"

# Physical and market limits a published value must respect (the audit refuses anything outside them).
# Power: no series of a country comes near 1 TW. Prices: the day-ahead market's harmonised bounds.
POWER_LIMIT_MW = 1_000_000.0
PRICE_MIN_EUR_PER_MWH = -600.0
PRICE_MAX_EUR_PER_MWH = 4000.0


_COUNTRY = column("country", pa.string(), "Energy-Charts country code, lower case (`de`).", False)
_BIDDING_ZONE = column("bidding_zone", pa.string(), "Day-ahead bidding zone (`DE-LU`).", False)
_INTERVAL_START = column("interval_start", UTC_TIMESTAMP, "Start of the interval, UTC.", False)
_INTERVAL_MINUTES = column(
    "interval_minutes",
    pa.int32(),
    "Length of the interval in minutes (15 or 60), from the timestamp spacing.",
    False,
)
_PRODUCTION_TYPE = column(
    "production_type", pa.string(), "Series name, canonical spelling (`Wind onshore`); new names kept.", False
)
_LOCAL_DATE = column("local_date", pa.date32(), "Local calendar day (Europe/Berlin).", False)

PUBLIC_POWER = TableSpec(
    schema=RAW_SCHEMA,
    name="public_power",
    description="Public net electricity production, load and trade per interval, MW (interval average).",
    columns=(
        _COUNTRY,
        _INTERVAL_START,
        _INTERVAL_MINUTES,
        _PRODUCTION_TYPE,
        column(
            "value_mw",
            pa.float64(),
            "Average power over the interval, MW; NULL where the API sent null.",
            unit="MW",
            minimum=-POWER_LIMIT_MW,
            maximum=POWER_LIMIT_MW,
        ),
    ),
    primary_key=("country", "production_type", "interval_start"),
    series_columns=("country", "production_type"),
)

PUBLIC_POWER_SHARE = TableSpec(
    schema=RAW_SCHEMA,
    name="public_power_share",
    description="Percentage series of /public_power (`Renewable share of generation`, `... of load`).",
    columns=(
        _COUNTRY,
        _INTERVAL_START,
        _INTERVAL_MINUTES,
        _PRODUCTION_TYPE,
        column(
            "share_percent",
            pa.float64(),
            "Share in percent as reported by Energy-Charts (renewable share of load can exceed 100).",
            unit="%",
            minimum=0.0,
            maximum=1000.0,
        ),
    ),
    primary_key=("country", "production_type", "interval_start"),
    series_columns=("country", "production_type"),
)

DAY_AHEAD_PRICE = TableSpec(
    schema=RAW_SCHEMA,
    name="day_ahead_price",
    description="Day-ahead auction price per bidding zone and interval (hourly to 2025-09-30, 15-min from 2025-10-01).",
    columns=(
        _BIDDING_ZONE,
        _INTERVAL_START,
        _INTERVAL_MINUTES,
        column(
            "price_eur_per_mwh",
            pa.float64(),
            "Clearing price, EUR/MWh; may be negative.",
            unit="EUR/MWh",
            minimum=PRICE_MIN_EUR_PER_MWH,
            maximum=PRICE_MAX_EUR_PER_MWH,
        ),
    ),
    primary_key=("bidding_zone", "interval_start"),
    series_columns=("bidding_zone",),
)

INSTALLED_POWER = TableSpec(
    schema=RAW_SCHEMA,
    name="installed_power",
    description="Installed net capacity per production type, by month or year.",
    columns=(
        _COUNTRY,
        column(
            "period_start", pa.date32(), "First day of the month (`MM.YYYY`) or year (`YYYY`) label.", False
        ),
        column("time_step", pa.string(), "`monthly` or `yearly`.", False),
        _PRODUCTION_TYPE,
        column(
            "capacity_gw",
            pa.float64(),
            "Installed capacity, GW (the `Battery storage (capacity)` series is GWh, as the API reports it).",
            unit="GW",
            minimum=0.0,
            maximum=POWER_LIMIT_MW / 1000,
        ),
    ),
    primary_key=("country", "time_step", "production_type", "period_start"),
    series_columns=("country", "time_step", "production_type"),
)

DAILY_PRODUCTION_TREND = TableSpec(
    schema=MARTS_SCHEMA,
    name="daily_production_trend",
    description="Per local day, country and production type: energy, min/max power and share of generation.",
    columns=(
        _LOCAL_DATE,
        _COUNTRY,
        _PRODUCTION_TYPE,
        column(
            "is_generation", pa.bool_(), "True for generation series (not load, trade or pumping).", False
        ),
        column(
            "is_renewable",
            pa.bool_(),
            "True for renewable generation (wind, solar, hydro, biomass, geothermal).",
            False,
        ),
        column("energy_mwh", pa.float64(), "Energy over the local day: sum of MW x interval hours."),
        column("mean_mw", pa.float64(), "Time-weighted mean power, MW."),
        column("min_mw", pa.float64(), "Lowest interval value, MW."),
        column("max_mw", pa.float64(), "Highest interval value, MW."),
        column("interval_count", pa.int64(), "Intervals with a value.", False),
        column("share_of_generation_percent", pa.float64(), "Share of the day's total generation, percent."),
        column(
            "renewable_share_of_generation_percent",
            pa.float64(),
            "Renewable generation / total generation of the day and country, percent (same on every row).",
        ),
    ),
    primary_key=("local_date", "country", "production_type"),
    series_columns=("country", "production_type"),
)

DAILY_PRICE_ANALYSIS = TableSpec(
    schema=MARTS_SCHEMA,
    name="daily_price_analysis",
    description="Per local day and bidding zone: price statistics, wind energy and price/wind correlation.",
    columns=(
        _LOCAL_DATE,
        _BIDDING_ZONE,
        column("country", pa.string(), "Country whose wind production is compared with the zone's price."),
        column(
            "mean_price_eur_per_mwh", pa.float64(), "Time-weighted mean price (weights = interval minutes)."
        ),
        column("min_price_eur_per_mwh", pa.float64(), "Lowest price of the day."),
        column("max_price_eur_per_mwh", pa.float64(), "Highest price of the day."),
        column("price_interval_count", pa.int64(), "Price intervals with a value.", False),
        column("negative_price_interval_count", pa.int64(), "Price intervals below 0 EUR/MWh.", False),
        column("wind_onshore_mwh", pa.float64(), "Onshore wind energy over the day, MWh."),
        column("wind_offshore_mwh", pa.float64(), "Offshore wind energy over the day, MWh."),
        column(
            "correlation_point_count", pa.int64(), "15-minute points with both a price and wind power.", False
        ),
        column(
            "price_wind_correlation",
            pa.float64(),
            "Pearson r between price and onshore+offshore wind power on the 15-minute grid (hourly prices expanded"
            " to quarter hours); NULL with fewer than 2 points or zero variance.",
        ),
    ),
    primary_key=("local_date", "bidding_zone"),
    series_columns=("bidding_zone",),
)

UNDERPERFORMANCE_30MIN = TableSpec(
    schema=MARTS_SCHEMA,
    name="underperformance_30min",
    description=(
        "Wind and solar output in 30-minute buckets, capacity factor against installed power, and a flag when"
        " output falls below a fraction of the trailing median of the same local slot."
    ),
    columns=(
        _COUNTRY,
        _PRODUCTION_TYPE,
        column("bucket_start", UTC_TIMESTAMP, "Start of the 30-minute bucket, UTC.", False),
        _LOCAL_DATE,
        column("local_slot", pa.string(), "Local wall-clock start of the bucket, `HH:MM`.", False),
        column("mean_mw", pa.float64(), "Mean of the 15-minute values in the bucket, MW."),
        column("quarter_hour_count", pa.int64(), "15-minute values in the bucket (2 when complete).", False),
        column("installed_gw", pa.float64(), "Installed capacity applied to the day, GW."),
        column(
            "capacity_time_step", pa.string(), "`monthly` or `yearly`: which capacity figure was applied."
        ),
        column("capacity_factor", pa.float64(), "mean_mw / (installed_gw x 1000)."),
        column(
            "expected_mw",
            pa.float64(),
            "Median of the same local slot over the previous N days available (within a lookback), MW.",
        ),
        column("baseline_day_count", pa.int64(), "Earlier days that went into expected_mw.", False),
        column("threshold_fraction", pa.float64(), "Flag threshold as a fraction of expected_mw.", False),
        column(
            "is_underperforming",
            pa.bool_(),
            "mean_mw < threshold_fraction x expected_mw; NULL without a baseline.",
        ),
    ),
    primary_key=("country", "production_type", "bucket_start"),
    series_columns=("country", "production_type"),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    PUBLIC_POWER,
    PUBLIC_POWER_SHARE,
    DAY_AHEAD_PRICE,
    INSTALLED_POWER,
    DAILY_PRODUCTION_TREND,
    DAILY_PRICE_ANALYSIS,
    UNDERPERFORMANCE_30MIN,
)
