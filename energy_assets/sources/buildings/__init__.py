"""Buildings: the Building Data Genome Project 2 (BDG2) from Zenodo. Pure domain code, no Dagster.

Modules, in the order data flows through them:

- `settings`: environment variables (`ZENODO_BASE_URL`, `BDG2_ZENODO_RECORD`, `ZENODO_ACCESS_TOKEN`,
  `BDG2_TIMESTAMP_CONVENTION`; `ENERGY_ASSETS_SOURCE` is shared) and the timestamp convention.
- `zenodo_records`: record and file descriptions from `GET /api/records/{id}`; record id / DOI parsing.
- `client`: `ZenodoClient` (interface) and `LiveZenodoClient` (requests + urllib3 `Retry`, `Retry-After`,
  deadline, User-Agent, token, resumable downloads with `Range`/`If-Range`).
- `snapshot`: `SnapshotZenodoClient` serving the bundled synthetic record in `sample/` (offline runs).
- `cache`: `DownloadCache`, keyed by server, record id and file key; size and md5 verified before an atomic publish.
- `archive`: `Bdg2Archive`, members located below the zip's top folder; LFS pointers and corrupt zips refused.
- `readings`: wide meter CSV -> long Parquet, streamed (`convert_meter`).
- `metadata`, `weather`: the metadata and weather tables.
- `timestamps`: the convention applied (per-site clock offsets).
- `tables`: the TableSpecs of the raw tables and the marts.
- `rules`: the source's blocking audit rules for the publish path.
- `ingest`: the archive's reference tables and meter readings as publish requests.
- `aggregates`: the marts in DuckDB SQL (`sql/*.sql`).
- `sample_builder`: builds BDG2-shaped zips (the bundled sample and test archives).
- `errors`: `ZenodoApiError` and subclasses, `ChecksumMismatchError`, `Bdg2ArchiveError` and subclasses,
  `Bdg2CsvError`.

Data: BDG2 (Miller et al., 2020), Zenodo record 3887306, CC BY 4.0.
"""

from energy_assets.sources.buildings.archive import METERS, Bdg2Archive, MeterKind
from energy_assets.sources.buildings.cache import CachedFile, DownloadCache
from energy_assets.sources.buildings.client import LiveZenodoClient, ZenodoClient, fetch_file
from energy_assets.sources.buildings.settings import BuildingsSettings, TimestampConvention
from energy_assets.sources.buildings.snapshot import SnapshotZenodoClient
from energy_assets.sources.buildings.zenodo_records import (
    RecordVersion,
    ZenodoFile,
    ZenodoRecord,
    parse_record_id,
)


def make_client(settings: BuildingsSettings | None = None) -> ZenodoClient:
    """The client `ENERGY_ASSETS_SOURCE` asks for: the bundled sample or live Zenodo."""
    settings = settings or BuildingsSettings.from_env()
    if settings.source == "live":
        return LiveZenodoClient(settings.zenodo_base_url, access_token=settings.access_token)
    return SnapshotZenodoClient()


__all__ = [
    "METERS",
    "Bdg2Archive",
    "BuildingsSettings",
    "CachedFile",
    "DownloadCache",
    "LiveZenodoClient",
    "MeterKind",
    "RecordVersion",
    "SnapshotZenodoClient",
    "TimestampConvention",
    "ZenodoClient",
    "ZenodoFile",
    "ZenodoRecord",
    "fetch_file",
    "make_client",
    "parse_record_id",
]
