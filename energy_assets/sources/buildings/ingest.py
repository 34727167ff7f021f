"""Ingesting the BDG2 archive: the reference tables and the meter readings as publish requests. No Dagster.

- `reference_requests`: buildings.metadata and buildings.weather read from the archive, one candidate per
  site, with the relations the audit rules read (building and site ids, each site's clock);
- `meter_requests`: each requested meter file converted (streamed) into a long Parquet working file in
  `workdir`, one candidate per meter. The caller removes `workdir` after publishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.buildings.archive import Bdg2Archive, MeterKind
from energy_assets.sources.buildings.errors import MissingMemberError
from energy_assets.sources.buildings.metadata import metadata_table
from energy_assets.sources.buildings.readings import ConversionStats, convert_meter
from energy_assets.sources.buildings.rules import (
    METADATA_RULES,
    METER_READINGS_RULES,
    WEATHER_RULES,
    audit_relations,
)
from energy_assets.sources.buildings.settings import TimestampConvention
from energy_assets.sources.buildings.tables import METADATA, METER_READINGS, WEATHER
from energy_assets.sources.buildings.timestamps import clock_offsets
from energy_assets.sources.buildings.weather import weather_table
from energy_assets.warehouse.publish import Candidate, PublishRequest


@dataclass
class ReferenceTables:
    """The archive's building metadata and weather, as tables and as their publish requests."""

    metadata: pa.Table
    weather: pa.Table
    requests: list[PublishRequest]


def reference_requests(archive: Bdg2Archive, convention: TimestampConvention) -> ReferenceTables:
    """buildings.metadata and buildings.weather, one candidate per site."""
    metadata = metadata_table(archive)
    weather = weather_table(archive, utc_offset_minutes=clock_offsets(metadata, convention))
    relations = audit_relations(metadata, convention)
    requests = [
        PublishRequest(spec, _by_site(table), rules=rules, relations=relations)
        for spec, table, rules in ((METADATA, metadata, METADATA_RULES), (WEATHER, weather, WEATHER_RULES))
    ]
    return ReferenceTables(metadata, weather, requests)


def _by_site(table: pa.Table) -> list[Candidate]:
    sites = sorted(set(table.column("site_id").to_pylist()))
    return [
        Candidate({"site_id": site}, {"site_id": site}, table.filter(pc.equal(table.column("site_id"), site)))
        for site in sites
    ]


@dataclass
class MeterReadings:
    """The converted meter files of a run and their publish request."""

    request: PublishRequest
    stats: dict[str, ConversionStats]


def meter_requests(
    archive: Bdg2Archive,
    meters: Sequence[str],
    *,
    kind: MeterKind,
    metadata: pa.Table,
    convention: TimestampConvention,
    workdir: Path,
) -> MeterReadings:
    """Convert each meter file of `meters` into `workdir` and build the request of buildings.meter_readings."""
    available = archive.available_meters(kind)
    offsets = clock_offsets(metadata, convention)
    candidates, stats = [], {}
    for meter in sorted(meters):
        if meter not in available:
            raise MissingMemberError(
                f"The archive has no {kind.value} {meter} file (it has: {', '.join(available)});"
                " materialize only those meter partitions."
            )
        path = workdir / f"{meter}.parquet"
        stats[meter] = convert_meter(archive, meter, path, kind=kind, utc_offset_minutes=offsets)
        candidates.append(Candidate({"meter": meter}, {"meter": meter}, path))
    request = PublishRequest(
        METER_READINGS,
        candidates,
        rules=METER_READINGS_RULES,
        relations=audit_relations(metadata, convention),
    )
    return MeterReadings(request, stats)
