"""The timestamp convention applied: per site, the offset of the dataset's clock from UTC.

BDG2 timestamps are naive and perfectly regular (no DST gaps or repeats), so they are either UTC or a fixed local
standard time; `settings.TimestampConvention` picks one for meters and weather alike. Everything that turns a naive
timestamp into an instant, or an instant back into the dataset's date, uses `clock_offsets` so the two directions
agree.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from energy_assets.errors import DataValidationError
from energy_assets.sources.buildings.settings import TimestampConvention

# Any date works for the standard offset (utcoffset - dst); the middle of the dataset keeps it honest.
_REFERENCE = datetime(2016, 7, 1, 12, 0)


def standard_offset_minutes(timezone_name: str) -> int:
    """The zone's standard (non-DST) offset from UTC in minutes: `US/Eastern` -> -300, `Europe/London` -> 0."""
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataValidationError(
            f"time zone {timezone_name!r} in the BDG2 metadata is not an IANA zone"
        ) from None
    moment = _REFERENCE.replace(tzinfo=zone)
    offset = (moment.utcoffset() or timedelta(0)) - (moment.dst() or timedelta(0))
    return int(offset.total_seconds() // 60)


def clock_offsets(metadata: pa.Table, convention: TimestampConvention | str) -> dict[str, int]:
    """Site id -> minutes to add to UTC to get the dataset's clock (0 everywhere under `utc`).

    Under `site_standard_time` every site needs one time zone in the metadata; a site with none or with
    conflicting zones raises `DataValidationError`.
    """
    convention = TimestampConvention.parse(convention)
    sites = metadata.column("site_id").to_pylist()
    zones = metadata.column("timezone").to_pylist()
    if convention is TimestampConvention.UTC:
        return dict.fromkeys(sites, 0)
    by_site: dict[str, set[str]] = {}
    for site, zone in zip(sites, zones, strict=True):
        by_site.setdefault(site, set())
        if zone:
            by_site[site].add(zone)
    offsets = {}
    for site, site_zones in sorted(by_site.items()):
        if not site_zones:
            raise DataValidationError(
                f"metadata: site {site!r} has no `timezone`, needed by BDG2_TIMESTAMP_CONVENTION=site_standard_time"
            )
        minutes = {standard_offset_minutes(zone) for zone in site_zones}
        if len(minutes) > 1:
            raise DataValidationError(
                f"metadata: site {site!r} has time zones {sorted(site_zones)} with different offsets"
            )
        offsets[site] = minutes.pop()
    return offsets


def site_clock_table(offsets: dict[str, int]) -> pa.Table:
    """`site_id, utc_offset_minutes`: the relation `site_clock` the marts and the hourly-grid audit rule use."""
    items = sorted(offsets.items())
    return pa.table(
        {
            "site_id": pa.array([site for site, _ in items], pa.string()),
            "utc_offset_minutes": pa.array([minutes for _, minutes in items], pa.int32()),
        }
    )
