"""The Energy-Charts client resource: live HTTP or recorded snapshot, and which countries and zones to load.

Keep asset logic out of this module: it only turns configuration into an `EnergyChartsClient`.
`source` and `base_url` left empty are read at run time from ENERGY_ASSETS_SOURCE (default `sample`) and
ENERGY_CHARTS_BASE_URL (default `https://api.energy-charts.info`).
"""

import os

import dagster as dg
from pydantic import Field, PrivateAttr

from energy_assets.errors import ConfigurationError
from energy_assets.settings import DEFAULT_ENERGY_CHARTS_BASE_URL, ENV_ENERGY_CHARTS_BASE_URL, ENV_SOURCE
from energy_assets.sources.energy_charts.client import EnergyChartsClient, LiveEnergyChartsClient
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR, SnapshotEnergyChartsClient

SOURCES = ("sample", "live")


class EnergyChartsResource(dg.ConfigurableResource):
    """Energy-Charts access for the assets: `client()` is shared by every asset of a run (one rate limit)."""

    source: str | None = Field(
        default=None,
        description="`sample` (recorded responses, offline) or `live`; empty: ENERGY_ASSETS_SOURCE.",
    )
    base_url: str | None = Field(
        default=None, description="API root for `live`; empty: ENERGY_CHARTS_BASE_URL."
    )
    countries: list[str] = Field(default=["de"], description="Countries for /public_power.")
    bidding_zones: list[str] = Field(default=["DE-LU"], description="Bidding zones for /price.")
    installed_power_country: str = Field(default="de", description="Country for /installed_power.")
    max_days_per_request: int = Field(default=31, description="Longest run of days asked for in one request.")
    min_seconds_between_requests: float = Field(default=1.0, description="Request rate limit (live).")
    connect_timeout_s: float = Field(default=5.0)
    read_timeout_s: float = Field(default=60.0)
    max_retries: int = Field(default=5, description="Retries on 429/5xx, honouring Retry-After.")
    backoff_factor_s: float = Field(default=2.0, description="Exponential backoff factor between retries.")
    snapshot_dirs: list[str] = Field(
        default=[], description="Extra recording folders for `sample`, searched before the bundled sample."
    )

    _client: EnergyChartsClient | None = PrivateAttr(default=None)

    def resolved_source(self) -> str:
        source = (self.source or os.environ.get(ENV_SOURCE) or "sample").strip().lower()
        if source not in SOURCES:
            raise ConfigurationError(f"{ENV_SOURCE}={source!r} is not a source; use one of {SOURCES}.")
        return source

    def resolved_base_url(self) -> str:
        return self.base_url or os.environ.get(ENV_ENERGY_CHARTS_BASE_URL) or DEFAULT_ENERGY_CHARTS_BASE_URL

    def client(self) -> EnergyChartsClient:
        """The run's client (built on first use)."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> EnergyChartsClient:
        if self.max_days_per_request < 1:
            raise ConfigurationError(
                f"max_days_per_request must be at least 1, got {self.max_days_per_request}."
            )
        if self.resolved_source() == "sample":
            return SnapshotEnergyChartsClient([SAMPLE_DIR, *self.snapshot_dirs])
        return LiveEnergyChartsClient(
            base_url=self.resolved_base_url(),
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_retries=self.max_retries,
            backoff_factor_s=self.backoff_factor_s,
            min_seconds_between_requests=self.min_seconds_between_requests,
        )
