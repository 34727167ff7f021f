"""Source-specific audit rules for the buildings tables, run by the publish path on the candidate.

Each rule is an `AuditRule`: a DuckDB `SELECT` over the relation `candidate` (the table's columns plus
`lake_partition`) returning the offending rows. The generic rules (unique key, NOT NULL, finite floats, the
ColumnSpec bounds such as `reading >= 0`) come from the TableSpecs in `tables`; these add what only this source
knows. Some rules read relations the caller registers next to `candidate` (`audit_relations` builds them):

- `metadata`: the published `buildings.metadata` rows (at least `building_id, site_id`);
- `site_clock`: `site_id, utc_offset_minutes` from `timestamps.site_clock_table` (all zero under the default `utc`
  convention), so the hourly grid is checked on the dataset's own clock.
"""

from __future__ import annotations

import pyarrow as pa

from energy_assets.sources.buildings.settings import TimestampConvention
from energy_assets.sources.buildings.tables import METER_UNITS
from energy_assets.sources.buildings.timestamps import clock_offsets, site_clock_table
from energy_assets.warehouse.audit import AuditRule

_ON_DATASET_CLOCK_HOUR = '(epoch_us(c."timestamp") + CAST(COALESCE(s.utc_offset_minutes, 0) AS BIGINT) * 60000000) % 3600000000 <> 0'

# Relations: candidate, site_clock.
HOURLY_GRID = AuditRule(
    name="hourly_grid",
    description="every timestamp is a whole hour on the dataset's clock (minutes, seconds and fractions 0)",
    sql=f"SELECT c.* FROM candidate AS c LEFT JOIN site_clock AS s USING (site_id) WHERE {_ON_DATASET_CLOCK_HOUR}",
    column="timestamp",
)

# Relations: candidate, metadata.
BUILDING_IN_METADATA = AuditRule(
    name="building_in_metadata",
    description="every building_id is a building of the published metadata",
    sql="SELECT c.* FROM candidate AS c WHERE c.building_id NOT IN (SELECT building_id FROM metadata)",
    column="building_id",
)

# Relations: candidate, metadata.
SITE_MATCHES_METADATA = AuditRule(
    name="site_matches_metadata",
    description="a reading's site_id is the site the metadata gives its building",
    sql=(
        "SELECT c.*, m.site_id AS metadata_site_id FROM candidate AS c JOIN metadata AS m USING (building_id)"
        " WHERE c.site_id <> m.site_id"
    ),
    column="site_id",
)

_UNITS = ", ".join(f"('{meter}', '{unit}')" for meter, unit in METER_UNITS.items())
# Relations: candidate.
UNIT_MATCHES_METER = AuditRule(
    name="unit_matches_meter",
    description="unit is kWh for energy meters and L for water and irrigation",
    sql=(
        "SELECT c.* FROM candidate AS c WHERE NOT EXISTS (SELECT 1 FROM (VALUES "
        f"{_UNITS}) AS units(meter, unit) WHERE units.meter = c.meter AND units.unit = c.unit)"
    ),
    column="unit",
)

# Relations: candidate, metadata.
WEATHER_SITE_IN_METADATA = AuditRule(
    name="site_in_metadata",
    description="every weather site_id is a site of the published metadata",
    sql="SELECT c.* FROM candidate AS c WHERE c.site_id NOT IN (SELECT site_id FROM metadata)",
    column="site_id",
)

# Relations: candidate.
SITE_IS_BUILDING_PREFIX = AuditRule(
    name="site_is_building_prefix",
    description="site_id is the prefix of building_id (`Panther` for `Panther_parking_Lorriane`)",
    sql="SELECT * FROM candidate WHERE split_part(building_id, '_', 1) <> site_id",
    column="site_id",
)

METER_READINGS_RULES: tuple[AuditRule, ...] = (
    HOURLY_GRID,
    BUILDING_IN_METADATA,
    SITE_MATCHES_METADATA,
    UNIT_MATCHES_METER,
)
WEATHER_RULES: tuple[AuditRule, ...] = (HOURLY_GRID, WEATHER_SITE_IN_METADATA)
METADATA_RULES: tuple[AuditRule, ...] = (SITE_IS_BUILDING_PREFIX,)


def audit_relations(metadata: pa.Table, convention: TimestampConvention | str) -> dict[str, pa.Table]:
    """The relations the rules above read: `metadata` (building and site ids) and `site_clock`."""
    return {
        "metadata": metadata.select(["building_id", "site_id"]),
        "site_clock": site_clock_table(clock_offsets(metadata, convention)),
    }
