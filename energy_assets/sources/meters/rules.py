"""Audit rules of `meters.meter_readings` beyond the generic ones `warehouse.audit.spec_rules` derives.

Each is an `AuditRule`: a DuckDB `SELECT` over the relation `candidate` (the table's columns plus
`lake_partition`) returning the rows that break it. The generic rules (unique key, NOT NULL, finite values,
the `ColumnSpec` bounds such as `value >= 0`) come from `tables.METER_READINGS`; these add what NEM12 means:

- `interval_length`: every interval is 5, 15 or 30 minutes long (the 200 record's IntervalLength);
- `interval_grid`: every interval ends on that length's grid in NEM time (UTC+10), e.g. :00/:30 for 30 min;
- `no_overlapping_intervals`: intervals of one channel do not overlap (a channel's length changed mid-day);
- `quality_flag`: quality is A, E, F, S or N (V is resolved by the 400 records before this point);
- `actual_has_no_method` and `estimate_has_method`: the quality/method pairing of the spec;
- `method_known`: methods are within the spec's ranges (11-19, 51-58, 61-68, 71-75);
- `uom_known`: units are Appendix B units in their canonical spelling;
- `one_unit_per_channel`: a channel does not mix units (kWh and Wh), so daily sums mean something.
"""

from __future__ import annotations

from energy_assets.sources.meters.nem12_records import INTERVAL_QUALITY_FLAGS, UNITS
from energy_assets.warehouse.audit import AuditRule

_NEM_OFFSET_US = 10 * 3600 * 1_000_000


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


INTERVAL_LENGTH = AuditRule(
    name="interval_length",
    description="interval_end - interval_start is 5, 15 or 30 minutes (the 200 record's IntervalLength).",
    sql="""
        SELECT * FROM candidate
        WHERE date_diff('second', interval_start, interval_end) NOT IN (300, 900, 1800)
    """,
    column="interval_start",
)

INTERVAL_GRID = AuditRule(
    name="interval_grid",
    description="interval_end lies on the grid of its interval length in NEM time (UTC+10).",
    sql=f"""
        SELECT * FROM candidate
        WHERE date_diff('second', interval_start, interval_end) > 0
          AND (epoch_us(interval_end) + {_NEM_OFFSET_US})
              % (date_diff('second', interval_start, interval_end) * 1000000) <> 0
    """,
    column="interval_end",
)

NO_OVERLAPPING_INTERVALS = AuditRule(
    name="no_overlapping_intervals",
    description="Intervals of one NMI and suffix do not overlap.",
    sql="""
        SELECT * EXCLUDE (previous_end) FROM (
            SELECT *, lag(interval_end) OVER (PARTITION BY nmi, nmi_suffix ORDER BY interval_end) AS previous_end
            FROM candidate
        ) WHERE interval_start < previous_end
    """,
    column="interval_start",
)

QUALITY_FLAG = AuditRule(
    name="quality_flag",
    description=f"quality is one of {', '.join(INTERVAL_QUALITY_FLAGS)} (V days are resolved by 400 records).",
    sql=f"SELECT * FROM candidate WHERE quality NOT IN ({_sql_list(INTERVAL_QUALITY_FLAGS)})",
    column="quality",
)

ACTUAL_HAS_NO_METHOD = AuditRule(
    name="actual_has_no_method",
    description="Actual reads (quality A) carry no estimation or substitution method.",
    sql="SELECT * FROM candidate WHERE quality = 'A' AND method IS NOT NULL",
    column="method",
)

ESTIMATE_HAS_METHOD = AuditRule(
    name="estimate_has_method",
    description="Estimated and substituted reads (quality E, F, S) name their method.",
    sql="SELECT * FROM candidate WHERE quality IN ('E', 'F', 'S') AND method IS NULL",
    column="method",
)

METHOD_KNOWN = AuditRule(
    name="method_known",
    description="method is within the spec's ranges: 11-19, 51-58, 61-68, 71-75.",
    sql="""
        SELECT * FROM candidate
        WHERE method IS NOT NULL
          AND NOT (method BETWEEN 11 AND 19 OR method BETWEEN 51 AND 58
                   OR method BETWEEN 61 AND 68 OR method BETWEEN 71 AND 75)
    """,
    column="method",
)

UOM_KNOWN = AuditRule(
    name="uom_known",
    description="uom is a unit of the spec's Appendix B in its canonical spelling (kWh, kVArh, ...).",
    sql=f"SELECT * FROM candidate WHERE uom IS NOT NULL AND uom NOT IN ({_sql_list(UNITS)})",
    column="uom",
)

ONE_UNIT_PER_CHANNEL = AuditRule(
    name="one_unit_per_channel",
    description="All intervals of one NMI and suffix have the same unit.",
    sql="""
        SELECT * FROM candidate
        WHERE (nmi, nmi_suffix) IN (
            SELECT (nmi, nmi_suffix) FROM candidate GROUP BY nmi, nmi_suffix HAVING count(DISTINCT uom) > 1
        )
    """,
    column="uom",
)

METER_READINGS_RULES: tuple[AuditRule, ...] = (
    INTERVAL_LENGTH,
    INTERVAL_GRID,
    NO_OVERLAPPING_INTERVALS,
    QUALITY_FLAG,
    ACTUAL_HAS_NO_METHOD,
    ESTIMATE_HAS_METHOD,
    METHOD_KNOWN,
    UOM_KNOWN,
    ONE_UNIT_PER_CHANNEL,
)
"""Source-specific audit rules of `meters.meter_readings`, to run with the generic `spec_rules`."""
