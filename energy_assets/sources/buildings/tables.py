"""The tables this source produces, described once: name, columns (Arrow type, unit, meaning, bounds) and key.

The converters build Arrow tables and Parquet files with exactly these columns; the publish path derives the
PostgreSQL tables and the generic audit rules (unique key, NOT NULL, finite floats, bounds) from the same specs.

Units: the energy meters (electricity, chilled water, steam, hot water, gas, solar) are kWh per hour; water and
irrigation are volumes. Irrigation values are multiples of 3.78541 (US gallons converted to litres), so both
volume meters are recorded as litres (`L`; the water unit is not stated by the dataset and is an assumption).
"""

from __future__ import annotations

import pyarrow as pa

from energy_assets.warehouse.table_spec import UTC_TIMESTAMP, TableSpec, column

RAW_SCHEMA = "buildings"
MARTS_SCHEMA = "marts"

KWH = "kWh"
LITRE = "L"
METER_UNITS: dict[str, str] = {
    "electricity": KWH,
    "chilledwater": KWH,
    "steam": KWH,
    "hotwater": KWH,
    "gas": KWH,
    "solar": KWH,
    "water": LITRE,
    "irrigation": LITRE,
}
# Meters whose energy counts towards a building's energy use intensity (solar is generation, water is volume).
EUI_METERS: tuple[str, ...] = ("electricity", "chilledwater", "steam", "hotwater", "gas")
# Metadata flags `electricity, hotwater, ...` (`Yes` or empty) become booleans `has_<meter>`.
METER_FLAG_COLUMNS: dict[str, str] = {meter: f"has_{meter}" for meter in METER_UNITS}

_BUILDING_ID = column(
    "building_id",
    pa.string(),
    "BDG2 building id `<Site>_<usage>_<Name>` (`Panther_parking_Lorriane`).",
    False,
)
_SITE_ID = column("site_id", pa.string(), "BDG2 site (`Panther`): the building id's prefix.", False)
_METER = column(
    "meter",
    pa.string(),
    "Meter: electricity, chilledwater, steam, hotwater, gas, water, irrigation or solar.",
    False,
)
_UNIT = column(
    "unit", pa.string(), "Unit of the meter's readings: `kWh` (energy) or `L` (water, irrigation).", False
)
_DATE = column(
    "date", pa.date32(), "Day on the dataset's own clock (the date written in the BDG2 files).", False
)

METER_READINGS = TableSpec(
    schema=RAW_SCHEMA,
    name="meter_readings",
    description=(
        "Hourly BDG2 meter readings in long form, one row per non-empty cell of the wide meter files"
        " (`cleaned` by default). Lake partitions: `meter=<meter>`."
    ),
    columns=(
        _BUILDING_ID,
        _SITE_ID,
        _METER,
        column(
            "timestamp",
            UTC_TIMESTAMP,
            "Start of the hour, UTC, from the naive BDG2 timestamp by BDG2_TIMESTAMP_CONVENTION.",
            False,
        ),
        column(
            "reading",
            pa.float64(),
            "Consumption over the hour in `unit` (kWh, or litres for water and irrigation); never negative.",
            False,
            minimum=0.0,
        ),
        _UNIT,
    ),
    primary_key=("building_id", "meter", "timestamp"),
    series_columns=("building_id", "meter"),
    key_after_initial_copy=True,  # a first load is tens of millions of rows
)

_METADATA_TEXT = {
    "building_id_kaggle": "Building id in the ASHRAE Kaggle competition (integer), if the building was in it.",
    "site_id_kaggle": "Site id in the ASHRAE Kaggle competition (integer), if any.",
    "primaryspaceusage": "Primary space usage (`Office`, `Education`, ...).",
    "sub_primaryspaceusage": "Finer space usage.",
    "timezone": "IANA time zone of the site (`US/Eastern`).",
    "industry": "Industry of the owner.",
    "subindustry": "Sub-industry of the owner.",
    "heatingtype": "Heating type.",
    "date_opened": "Opening date as written in the metadata (free text).",
    "energystarscore": "ENERGY STAR score as written in the metadata.",
    "leed_level": "LEED certification level.",
    "rating": "Other rating as written in the metadata.",
}

METADATA = TableSpec(
    schema=RAW_SCHEMA,
    name="metadata",
    description="One row per BDG2 building: site, use, floor area, location and which meters it has.",
    columns=(
        _BUILDING_ID,
        _SITE_ID,
        column("building_id_kaggle", pa.int32(), _METADATA_TEXT["building_id_kaggle"]),
        column("site_id_kaggle", pa.int32(), _METADATA_TEXT["site_id_kaggle"]),
        column("primaryspaceusage", pa.string(), _METADATA_TEXT["primaryspaceusage"]),
        column("sub_primaryspaceusage", pa.string(), _METADATA_TEXT["sub_primaryspaceusage"]),
        column("sqm", pa.float64(), "Gross floor area, square metres.", unit="m2", minimum=0.0),
        column("sqft", pa.float64(), "Gross floor area, square feet.", unit="ft2", minimum=0.0),
        column(
            "lat", pa.float64(), "Latitude of the site, degrees.", unit="deg", minimum=-90.0, maximum=90.0
        ),
        column(
            "lng", pa.float64(), "Longitude of the site, degrees.", unit="deg", minimum=-180.0, maximum=180.0
        ),
        column("timezone", pa.string(), _METADATA_TEXT["timezone"]),
        *(
            column(
                flag,
                pa.bool_(),
                f"True when the building has a {meter} meter (`Yes` in the metadata).",
                False,
            )
            for meter, flag in METER_FLAG_COLUMNS.items()
        ),
        column("industry", pa.string(), _METADATA_TEXT["industry"]),
        column("subindustry", pa.string(), _METADATA_TEXT["subindustry"]),
        column("heatingtype", pa.string(), _METADATA_TEXT["heatingtype"]),
        column("yearbuilt", pa.int32(), "Year of construction.", minimum=1000.0, maximum=2100.0),
        column("date_opened", pa.string(), _METADATA_TEXT["date_opened"]),
        column("numberoffloors", pa.int32(), "Number of floors.", minimum=0.0),
        column("occupants", pa.float64(), "Number of occupants.", minimum=0.0),
        column("energystarscore", pa.string(), _METADATA_TEXT["energystarscore"]),
        column("eui", pa.float64(), "Energy use intensity as given in the metadata (unit not stated)."),
        column("site_eui", pa.float64(), "Site EUI as given in the metadata (unit not stated)."),
        column("source_eui", pa.float64(), "Source EUI as given in the metadata (unit not stated)."),
        column("leed_level", pa.string(), _METADATA_TEXT["leed_level"]),
        column("rating", pa.string(), _METADATA_TEXT["rating"]),
    ),
    primary_key=("building_id",),
)

WEATHER = TableSpec(
    schema=RAW_SCHEMA,
    name="weather",
    description="Hourly weather per BDG2 site (NOAA ISD observations as shipped with BDG2).",
    columns=(
        _SITE_ID,
        column(
            "timestamp",
            UTC_TIMESTAMP,
            "Hour of the observation, UTC, from the naive BDG2 timestamp by BDG2_TIMESTAMP_CONVENTION.",
            False,
        ),
        column(
            "air_temperature_c",
            pa.float64(),
            "Air temperature, degrees Celsius (`airTemperature`).",
            unit="degC",
        ),
        column(
            "cloud_coverage_oktas",
            pa.float64(),
            "Cloud coverage, oktas (`cloudCoverage`).",
            unit="okta",
            minimum=0.0,
        ),
        column(
            "dew_temperature_c", pa.float64(), "Dew point, degrees Celsius (`dewTemperature`).", unit="degC"
        ),
        column(
            "precip_depth_1hr_mm",
            pa.float64(),
            "Precipitation over 1 hour, mm (`precipDepth1HR`; -1 means a trace, as in the source).",
            unit="mm",
        ),
        column(
            "precip_depth_6hr_mm",
            pa.float64(),
            "Precipitation over 6 hours, mm (`precipDepth6HR`).",
            unit="mm",
        ),
        column(
            "sea_level_pressure_hpa",
            pa.float64(),
            "Sea-level pressure, hPa (`seaLvlPressure`).",
            unit="hPa",
            minimum=0.0,
        ),
        column(
            "wind_direction_deg",
            pa.float64(),
            "Wind direction, degrees from north (`windDirection`).",
            unit="deg",
            minimum=0.0,
            maximum=360.0,
        ),
        column("wind_speed_m_per_s", pa.float64(), "Wind speed, m/s (`windSpeed`).", unit="m/s", minimum=0.0),
    ),
    primary_key=("site_id", "timestamp"),
    series_columns=("site_id",),
)
# weather.csv header name -> column name in WEATHER.
WEATHER_COLUMNS: dict[str, str] = {
    "airTemperature": "air_temperature_c",
    "cloudCoverage": "cloud_coverage_oktas",
    "dewTemperature": "dew_temperature_c",
    "precipDepth1HR": "precip_depth_1hr_mm",
    "precipDepth6HR": "precip_depth_6hr_mm",
    "seaLvlPressure": "sea_level_pressure_hpa",
    "windDirection": "wind_direction_deg",
    "windSpeed": "wind_speed_m_per_s",
}

_CONSUMPTION = column(
    "consumption", pa.float64(), "Sum of the hourly readings of the day, in `unit`.", False, minimum=0.0
)
_READING_COUNT = column(
    "reading_count", pa.int64(), "Hourly readings that went into the sum.", False, minimum=0.0
)

BUILDING_DAILY_CONSUMPTION = TableSpec(
    schema=MARTS_SCHEMA,
    name="building_daily_consumption",
    description="Per building, meter and day: consumption, hours with a reading, lowest and highest hour.",
    columns=(
        _DATE,
        _BUILDING_ID,
        _SITE_ID,
        _METER,
        _UNIT,
        _CONSUMPTION,
        _READING_COUNT,
        column("min_hourly_reading", pa.float64(), "Lowest hourly reading of the day, in `unit`.", False),
        column("max_hourly_reading", pa.float64(), "Highest hourly reading of the day, in `unit`.", False),
    ),
    primary_key=("building_id", "meter", "date"),
    series_columns=("building_id", "meter"),
)

SITE_USAGE_DAILY_CONSUMPTION = TableSpec(
    schema=MARTS_SCHEMA,
    name="site_usage_daily_consumption",
    description="Per site, primary space usage, meter and day: total consumption and buildings reporting.",
    columns=(
        _DATE,
        _SITE_ID,
        column(
            "primaryspaceusage",
            pa.string(),
            "Primary space usage from the metadata; `Unknown` where the metadata has none.",
            False,
        ),
        _METER,
        _UNIT,
        _CONSUMPTION,
        column("building_count", pa.int64(), "Buildings with at least one reading that day.", False),
        _READING_COUNT,
    ),
    primary_key=("site_id", "primaryspaceusage", "meter", "date"),
    series_columns=("site_id", "primaryspaceusage", "meter"),
)

BUILDING_ENERGY_USE_INTENSITY = TableSpec(
    schema=MARTS_SCHEMA,
    name="building_energy_use_intensity",
    description=(
        "Per building and year: energy of the consumption meters (electricity, chilled water, steam, hot water,"
        " gas; not solar, water or irrigation) and its intensity per square metre of floor area."
    ),
    columns=(
        column("year", pa.int32(), "Calendar year on the dataset's own clock.", False),
        _BUILDING_ID,
        _SITE_ID,
        column("primaryspaceusage", pa.string(), "Primary space usage from the metadata."),
        column("sqm", pa.float64(), "Gross floor area from the metadata, m2.", unit="m2"),
        column(
            "energy_kwh", pa.float64(), "Sum of the year's readings of the consumption meters, kWh.", False
        ),
        column(
            "electricity_kwh",
            pa.float64(),
            "Of which electricity, kWh (0 without an electricity meter).",
            False,
        ),
        column("meter_count", pa.int64(), "Consumption meters with readings that year.", False),
        column("reading_count", pa.int64(), "Hourly readings that went into `energy_kwh`.", False),
        column(
            "eui_kwh_per_m2",
            pa.float64(),
            "energy_kwh / sqm; NULL where the floor area is unknown or zero. Years with gaps read low: see"
            " reading_count.",
            unit="kWh/m2",
        ),
    ),
    primary_key=("building_id", "year"),
    series_columns=("building_id",),
)

BUILDING_DAILY_WEATHER = TableSpec(
    schema=MARTS_SCHEMA,
    name="building_daily_weather",
    description=(
        "Per building, meter and day: consumption beside the site's mean air temperature and heating and"
        " cooling degree days (mean-temperature method against `degree_day_base_c`)."
    ),
    columns=(
        _DATE,
        _BUILDING_ID,
        _SITE_ID,
        _METER,
        _UNIT,
        _CONSUMPTION,
        _READING_COUNT,
        column(
            "mean_air_temperature_c", pa.float64(), "Mean of the site's hourly air temperatures that day."
        ),
        column("weather_hour_count", pa.int64(), "Hours with an air temperature that day.", False),
        column(
            "heating_degree_days",
            pa.float64(),
            "max(0, degree_day_base_c - mean_air_temperature_c), K*day; NULL without temperatures.",
            minimum=0.0,
        ),
        column(
            "cooling_degree_days",
            pa.float64(),
            "max(0, mean_air_temperature_c - degree_day_base_c), K*day; NULL without temperatures.",
            minimum=0.0,
        ),
        column(
            "degree_day_base_c", pa.float64(), "Base temperature of the degree days, degrees Celsius.", False
        ),
    ),
    primary_key=("building_id", "meter", "date"),
    series_columns=("building_id", "meter"),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    METER_READINGS,
    METADATA,
    WEATHER,
    BUILDING_DAILY_CONSUMPTION,
    SITE_USAGE_DAILY_CONSUMPTION,
    BUILDING_ENERGY_USE_INTENSITY,
    BUILDING_DAILY_WEATHER,
)
