"""The blocking audit rules of Energy-Charts tables, as SQL over the publish path's `candidate` relation.

The generic rules (unique key, NOT NULL, finite numbers, value bounds, no shrinking partition) come from
each table's `TableSpec`; these add what is particular to interval series of local days:

- `interval_grid`: every interval is 15 or 60 minutes long and starts on its own grid (a timestamp
  shifted 7 minutes is refused);
- `inside_local_day`: every interval starts inside the local day of its partition;
- `complete_local_days`: every series of a partition covers the whole local day (the interval lengths add
  up to 1,380/1,440/1,500 minutes: 92/96/100 quarter hours or 23/24/25 hours), and no partition is empty.

They read the relation `local_days` (`lake_partition`, `window_start`, `window_end`), built by
`local_days_relation` from the run's partitions. No Dagster here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from energy_assets.sources.energy_charts.local_days import LocalDayWindow
from energy_assets.warehouse.audit import AuditRule, quote
from energy_assets.warehouse.table_spec import UTC_TIMESTAMP

LOCAL_DAYS = "local_days"
INTERVAL_MINUTES = (15, 60)


def local_days_relation(partitions: Iterable[tuple[str, LocalDayWindow]]) -> pa.Table:
    """The `local_days` relation: each partition label with its local day's UTC window."""
    labels, starts, ends = [], [], []
    for label, window in partitions:
        labels.append(label)
        starts.append(window.start_utc)
        ends.append(window.end_utc)
    return pa.table(
        {
            "lake_partition": pa.array(labels, pa.string()),
            "window_start": pa.array(starts, UTC_TIMESTAMP),
            "window_end": pa.array(ends, UTC_TIMESTAMP),
        }
    )


def interval_rules(series_columns: Sequence[str], *, rows_required: bool = True) -> list[AuditRule]:
    """The interval rules for a table whose series are identified by `series_columns`.

    `rows_required=False` for a table a day may lack entirely (the percentage series of a response):
    its series must still be complete, but an empty partition is not refused.
    """
    series = ", ".join(f"c.{quote(name)}" for name in series_columns)
    allowed = ", ".join(str(minutes) for minutes in INTERVAL_MINUTES)
    return [
        AuditRule(
            name="interval_grid",
            description=f"every interval is {' or '.join(map(str, INTERVAL_MINUTES))} minutes long and starts on its grid",
            sql=(
                "SELECT * FROM candidate WHERE interval_minutes NOT IN "
                f"({allowed}) OR epoch(interval_start)::BIGINT % (interval_minutes * 60) <> 0 "
                "ORDER BY lake_partition, interval_start"
            ),
            column="interval_start",
        ),
        AuditRule(
            name="inside_local_day",
            description="every interval starts inside the local day of its partition",
            sql=(
                f"SELECT c.* FROM candidate c JOIN {LOCAL_DAYS} d USING (lake_partition) "
                "WHERE c.interval_start < d.window_start OR c.interval_start >= d.window_end "
                "ORDER BY c.lake_partition, c.interval_start"
            ),
            column="interval_start",
        ),
        AuditRule(
            # Same family as complete_local_days: the minutes may add up while an overlap hides a gap.
            name="complete_local_days:contiguous",
            description="each interval of a series starts where the previous one ends (no overlap, no gap)",
            sql=(
                "SELECT * FROM (SELECT c.*, lead(c.interval_start) OVER ("
                f"PARTITION BY c.lake_partition, {series} ORDER BY c.interval_start) AS next_start"
                " FROM candidate c) WHERE next_start IS NOT NULL"
                " AND next_start <> interval_start + to_minutes(interval_minutes)"
                " ORDER BY lake_partition, interval_start"
            ),
            column="interval_start",
        ),
        AuditRule(
            name="complete_local_days",
            description=(
                "every series covers its whole local day (92/96/100 quarter hours or 23/24/25 hours) "
                "and no partition is empty"
            ),
            sql=(
                f"SELECT c.lake_partition, {series}, count(*) AS intervals,"
                " sum(c.interval_minutes) AS minutes_covered,"
                " (epoch(d.window_end) - epoch(d.window_start))::BIGINT // 60 AS minutes_in_day"
                f" FROM candidate c JOIN {LOCAL_DAYS} d USING (lake_partition)"
                f" GROUP BY c.lake_partition, {series}, d.window_start, d.window_end"
                " HAVING sum(c.interval_minutes) <> (epoch(d.window_end) - epoch(d.window_start))::BIGINT // 60"
                + (
                    f" UNION ALL BY NAME SELECT d.lake_partition, 0 AS intervals, 0 AS minutes_covered,"
                    " (epoch(d.window_end) - epoch(d.window_start))::BIGINT // 60 AS minutes_in_day"
                    f" FROM {LOCAL_DAYS} d WHERE d.lake_partition NOT IN (SELECT lake_partition FROM candidate)"
                    if rows_required
                    else ""
                )
                + " ORDER BY 1"
            ),
            column="interval_start",
        ),
    ]
