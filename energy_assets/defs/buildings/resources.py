"""The Zenodo resource: which BDG2 record, from where, and how its timestamps are read.

Keep asset logic out of this module: it only turns configuration into the domain objects of
`energy_assets.sources.buildings` (the Zenodo client and the download cache). Empty fields fall back
to the environment (`ENERGY_ASSETS_SOURCE`, `ZENODO_BASE_URL`, `BDG2_ZENODO_RECORD`,
`BDG2_TIMESTAMP_CONVENTION`); the access token is passed with `EnvVar("ZENODO_ACCESS_TOKEN")`.
"""

import dataclasses
from pathlib import Path

import dagster as dg
from pydantic import Field

from energy_assets.settings import DataHome
from energy_assets.sources.buildings import BuildingsSettings, ZenodoClient, make_client
from energy_assets.sources.buildings.archive import MeterKind
from energy_assets.sources.buildings.cache import DownloadCache
from energy_assets.sources.buildings.settings import TimestampConvention


class ZenodoResource(dg.ConfigurableResource):
    """Zenodo access for the buildings assets and the record the platform loads."""

    source: str | None = Field(default=None, description="`sample` or `live`; empty: ENERGY_ASSETS_SOURCE.")
    base_url: str | None = Field(default=None, description="Zenodo root; empty: ZENODO_BASE_URL.")
    record: str | None = Field(default=None, description="Record id, DOI or URL; empty: BDG2_ZENODO_RECORD.")
    access_token: str | None = Field(default=None, description="Personal token (EnvVar ZENODO_ACCESS_TOKEN).")
    timestamp_convention: str | None = Field(
        default=None, description="`utc` or `site_standard_time`; empty: BDG2_TIMESTAMP_CONVENTION."
    )
    meter_kind: str = Field(default="cleaned", description="Which meter files to load: `cleaned` or `raw`.")
    cache_dir: str | None = Field(
        default=None, description="Download cache; empty: <data home>/raw/buildings."
    )

    def settings(self) -> BuildingsSettings:
        settings = BuildingsSettings.from_env()
        changes: dict = {}
        if self.source:
            changes["source"] = self.source.strip().lower()
        if self.base_url:
            changes["zenodo_base_url"] = self.base_url.rstrip("/")
        if self.record:
            changes["record"] = self.record
        if self.access_token:
            changes["access_token"] = self.access_token
        if self.timestamp_convention:
            changes["timestamp_convention"] = TimestampConvention.parse(self.timestamp_convention)
        return dataclasses.replace(settings, **changes)

    def kind(self) -> MeterKind:
        return MeterKind(self.meter_kind)

    def client(self) -> ZenodoClient:
        return make_client(self.settings())

    def cache(self, client: ZenodoClient) -> DownloadCache:
        root = Path(self.cache_dir) if self.cache_dir else DataHome.from_env().raw_dir / "buildings"
        return client.cache_for(str(root))
