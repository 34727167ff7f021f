"""The tables of the meter-file source, described once: columns (Arrow type, unit, meaning, bounds) and keys.

- `meters.meter_readings`: one row per interval, key (`nmi`, `nmi_suffix`, `interval_end`).
- `meters.meter_readings_history`: superseded values, one row per changed reading and revision.
- `meters.ingested_files`: every file the inbox saw, by sha256 (the durable record and the sensor's cursor).
- `meters.protected_nmis`: with protected identifiers on, one row per NMI: pseudonym and Fernet token.
- `marts.nmi_daily_consumption`: per NMI, suffix and local (Australia/Brisbane) day.

With protected identifiers on, every `nmi` column holds the HMAC-SHA256 pseudonym (64 hex characters), so
tables still join across files; the original is only in `protected_nmis.nmi_encrypted`, one token per NMI
(re-encrypting under a new key rewrites that small table, never the readings).
"""

from __future__ import annotations

import pyarrow as pa

from energy_assets.warehouse.table_spec import UTC_TIMESTAMP, TableSpec, column

METERS_SCHEMA = "meters"
MARTS_SCHEMA = "marts"
LOCAL_TIMEZONE = "Australia/Brisbane"  # NEM time: UTC+10 all year, as Brisbane keeps no daylight saving

_NMI = column(
    "nmi",
    pa.string(),
    "National Metering Identifier (10 letters/digits), or its HMAC-SHA256 pseudonym (64 hex) when protected.",
    False,
)
_NMI_SUFFIX = column(
    "nmi_suffix",
    pa.string(),
    "Channel of the NMI (`E1` consumption, `E2` controlled load, `B1` export, `Q1` reactive); '' when the"
    " file left it empty.",
    False,
)
_INTERVAL_END = column(
    "interval_end",
    UTC_TIMESTAMP,
    "End of the interval (NEM intervals are numbered by their end), UTC; NEM time is UTC+10.",
    False,
)

METER_READINGS = TableSpec(
    schema=METERS_SCHEMA,
    name="meter_readings",
    description="NEM12 interval meter readings, one row per NMI, suffix and interval, with quality flags.",
    columns=(
        _NMI,
        _NMI_SUFFIX,
        column("register_id", pa.string(), "RegisterID of the 200 record; numeric ids zero-padded (`001`)."),
        column(
            "uom",
            pa.string(),
            "Unit of `value`, AEMO spelling (`kWh`, `kVArh`, `Wh`); NULL if the file had none.",
        ),
        column("interval_start", UTC_TIMESTAMP, "Start of the interval, UTC.", False),
        _INTERVAL_END,
        column(
            "value",
            pa.float64(),
            "Energy (or other quantity) measured over the interval, in `uom`.",
            False,
            minimum=0.0,
        ),
        column(
            "quality",
            pa.string(),
            "Quality flag of the interval: A actual, E forward estimate, F final substitute, S substitute,"
            " N null (legacy); from the 400 record for a V day.",
            False,
        ),
        column(
            "method",
            pa.int16(),
            "Estimation/substitution method (11-75); NULL for actual reads.",
            minimum=11,
            maximum=75,
        ),
        column(
            "reason",
            pa.int16(),
            "Reason code (0-109) of the 300 or 400 record; NULL when none.",
            minimum=0,
            maximum=999,
        ),
        column("source_file", pa.string(), "Name of the file the current value came from.", False),
    ),
    primary_key=("nmi", "nmi_suffix", "interval_end"),
    series_columns=("nmi", "nmi_suffix"),
)

METER_READINGS_HISTORY = TableSpec(
    schema=METERS_SCHEMA,
    name="meter_readings_history",
    description="Values of meter_readings superseded by a later file: when, by which file, old and new.",
    columns=(
        _NMI,
        _NMI_SUFFIX,
        _INTERVAL_END,
        column("superseded_at", UTC_TIMESTAMP, "When the revision was published, UTC.", False),
        column("old_value", pa.float64(), "Value before the revision."),
        column("new_value", pa.float64(), "Value after the revision."),
        column("old_quality", pa.string(), "Quality flag before the revision."),
        column("new_quality", pa.string(), "Quality flag after the revision."),
        column("old_source_file", pa.string(), "File the old value came from."),
        column("new_source_file", pa.string(), "File that revised it.", False),
    ),
    primary_key=("nmi", "nmi_suffix", "interval_end", "superseded_at"),
    series_columns=("nmi", "nmi_suffix"),
)

INGESTED_FILES = TableSpec(
    schema=METERS_SCHEMA,
    name="ingested_files",
    description="Every file dropped into the meter inbox, identified by content hash, and what became of it.",
    columns=(
        column(
            "sha256", pa.string(), "SHA-256 of the file's bytes, hex: its identity (names may repeat).", False
        ),
        column("file_name", pa.string(), "Name the file had in the inbox when first seen.", False),
        column("bytes", pa.int64(), "File size.", False, unit="bytes", minimum=0),
        column(
            "status",
            pa.string(),
            "`seen`, `loading`, `committed` (rows in PostgreSQL, file not yet moved), `processed` or `quarantined`.",
            False,
        ),
        column("rows", pa.int64(), "Interval rows published from the file; NULL until processed.", minimum=0),
        column("error", pa.string(), "Why the file was quarantined (line, reason); never an NMI or a key."),
        column("first_seen_at", UTC_TIMESTAMP, "When the inbox first saw the file stable, UTC.", False),
        column("updated_at", UTC_TIMESTAMP, "Last status change, UTC.", False),
        column("moved_to", pa.string(), "Path under processed/ or quarantine/ once moved."),
    ),
    primary_key=("sha256",),
)

PROTECTED_NMIS = TableSpec(
    schema=METERS_SCHEMA,
    name="protected_nmis",
    description="Protected identifiers: the NMI pseudonym and the NMI encrypted with Fernet (MultiFernet keys).",
    columns=(
        column("nmi", pa.string(), "HMAC-SHA256 pseudonym of the NMI, 64 hex characters.", False),
        column(
            "nmi_encrypted",
            pa.string(),
            "Fernet token of the original NMI (decrypt with the key set).",
            False,
        ),
        column("encrypted_at", UTC_TIMESTAMP, "When the token was (re-)encrypted, UTC.", False),
    ),
    primary_key=("nmi",),
)

NMI_DAILY_CONSUMPTION = TableSpec(
    schema=MARTS_SCHEMA,
    name="nmi_daily_consumption",
    description=(
        "Energy per NMI, suffix and local day (Australia/Brisbane), with the share of actual versus estimated"
        " or substituted intervals. Energy units only (`kWh`, `kVArh`, ...)."
    ),
    columns=(
        column(
            "local_date", pa.date32(), "Local calendar day (Australia/Brisbane) of the interval start.", False
        ),
        _NMI,
        _NMI_SUFFIX,
        column("uom", pa.string(), "Unit of `consumption` (the channel's unit).", False),
        column(
            "consumption", pa.float64(), "Sum of the day's interval values, in `uom`.", False, minimum=0.0
        ),
        column("interval_count", pa.int64(), "Intervals of the day with a reading.", False, minimum=0),
        column(
            "expected_interval_count",
            pa.int64(),
            "Intervals a full day has at the channel's interval length (48, 96 or 288).",
            False,
            minimum=0,
        ),
        column(
            "actual_share",
            pa.float64(),
            "Fraction of the intervals with quality A.",
            False,
            minimum=0,
            maximum=1,
        ),
        column(
            "estimated_or_substituted_share",
            pa.float64(),
            "Fraction of the intervals with quality E, F or S.",
            False,
            minimum=0,
            maximum=1,
        ),
    ),
    primary_key=("nmi", "nmi_suffix", "local_date"),
    series_columns=("nmi", "nmi_suffix"),
)

ALL_TABLES: tuple[TableSpec, ...] = (
    METER_READINGS,
    METER_READINGS_HISTORY,
    INGESTED_FILES,
    PROTECTED_NMIS,
    NMI_DAILY_CONSUMPTION,
)
