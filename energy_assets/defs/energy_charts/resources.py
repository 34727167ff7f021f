"""The Energy-Charts client resource: live HTTP or recorded snapshot, and which countries and zones to load.

Keep asset logic out of this module: it only turns configuration into an `EnergyChartsClient`.
`source` and `base_url` left empty are read at run time from ENERGY_ASSETS_SOURCE (default `sample`) and
ENERGY_CHARTS_BASE_URL (default `https://api.energy-charts.info`).

`countries`, `bidding_zones` and `installed_power_country` end up in raw file paths, query strings and SQL, and
can be edited in the launchpad. Pydantic validators check them against the API's published code lists
(`sources.energy_charts.areas`) and store the normalized codes (`DE` -> `de`, `de-lu` -> `DE-LU`), so the assets
only ever see valid codes. Dagster builds the resource from the run config when a run starts, so a bad code
fails the run there, with `UnknownAreaError` listing the valid codes, before any step writes a file.
"""

import os
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from energy_assets.errors import ConfigurationError
from energy_assets.settings import ENV_SOURCE, parse_http_url, parse_source
from energy_assets.sources.energy_charts.areas import (
    normalize_bidding_zones,
    normalize_countries,
    normalize_country,
)
from energy_assets.sources.energy_charts.client import (
    DEFAULT_BUDGET,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_DEADLINE_S,
    EnergyChartsClient,
    LiveEnergyChartsClient,
)
from energy_assets.sources.energy_charts.settings import (
    DEFAULT_ENERGY_CHARTS_BASE_URL,
    ENV_ENERGY_CHARTS_BASE_URL,
)
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR, SnapshotEnergyChartsClient


class EnergyChartsResource(dg.ConfigurableResource):
    """Energy-Charts access for the assets: `client()` is shared by every asset of a run (one rate limit)."""

    source: str | None = Field(
        default=None,
        description="`sample` (recorded responses, offline) or `live`; empty: ENERGY_ASSETS_SOURCE.",
    )
    base_url: str | None = Field(
        default=None, description="API root for `live`; empty: ENERGY_CHARTS_BASE_URL."
    )
    countries: list[str] = Field(
        default=["de"], description="Countries for /public_power (published codes: de, at, fr, ...)."
    )
    bidding_zones: list[str] = Field(
        default=["DE-LU"], description="Bidding zones for /price (published codes: DE-LU, NL, DK1, ...)."
    )
    installed_power_country: str = Field(default="de", description="Country for /installed_power.")
    max_days_per_request: int = Field(default=31, description="Longest run of days asked for in one request.")
    min_seconds_between_requests: float = Field(default=1.0, description="Request rate limit (live).")
    connect_timeout_s: float = Field(default=DEFAULT_BUDGET.connect_timeout_s)
    read_timeout_s: float = Field(default=DEFAULT_BUDGET.read_timeout_s)
    max_retries: int = Field(
        default=DEFAULT_BUDGET.max_retries,
        description="Retries on connection errors and 429/5xx within one request, honouring Retry-After.",
    )
    backoff_factor_s: float = Field(
        default=DEFAULT_BUDGET.backoff_factor_s, description="Exponential backoff factor between retries."
    )
    retry_after_max_s: int = Field(
        default=DEFAULT_BUDGET.retry_after_max_s, description="Longest Retry-After honoured, in seconds."
    )
    request_deadline_s: float = Field(
        default=DEFAULT_REQUEST_DEADLINE_S,
        description=(
            "Overall deadline per request (live), retries, waits and body included: a dead or stalled server"
            " fails a request here, and a step within twice this plus the step's retry pause."
        ),
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES, description="Largest response body accepted (live), in bytes."
    )
    snapshot_dirs: list[str] = Field(
        default=[], description="Extra recording folders for `sample`, searched before the bundled sample."
    )

    _client: EnergyChartsClient | None = PrivateAttr(default=None)

    # `mode="before"` sees the value as given, so an `EnvVar` is left for Dagster to resolve; the validators
    # run again on the resolved value when the run starts.
    @field_validator("countries", mode="before")
    @classmethod
    def _known_countries(cls, value: Any) -> Any:
        return value if _unresolved(value) else normalize_countries(value, setting="countries")

    @field_validator("bidding_zones", mode="before")
    @classmethod
    def _known_bidding_zones(cls, value: Any) -> Any:
        return value if _unresolved(value) else normalize_bidding_zones(value, setting="bidding_zones")

    @field_validator("installed_power_country", mode="before")
    @classmethod
    def _known_installed_power_country(cls, value: Any) -> Any:
        return value if _unresolved(value) else normalize_country(value, setting="installed_power_country")

    @field_validator("request_deadline_s", "max_response_bytes", "connect_timeout_s", "read_timeout_s")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not value > 0:
            raise ConfigurationError(f"{info.field_name} must be positive, got {value!r}.")
        return value

    @field_validator("source", mode="before")
    @classmethod
    def _known_source(cls, value: Any) -> Any:
        return parse_source(value, setting="source") if value and not _unresolved(value) else value

    @field_validator("base_url", mode="before")
    @classmethod
    def _http_base_url(cls, value: Any) -> Any:
        return parse_http_url(value, "base_url") if value and not _unresolved(value) else value

    @field_validator("max_days_per_request")
    @classmethod
    def _at_least_one_day(cls, value: int) -> int:
        if value < 1:
            raise ConfigurationError(f"max_days_per_request must be at least 1, got {value}.")
        return value

    def resolved_source(self) -> str:
        if self.source:
            return self.source
        return parse_source(os.environ.get(ENV_SOURCE))

    def resolved_base_url(self) -> str:
        if self.base_url:
            return self.base_url
        from_env = os.environ.get(ENV_ENERGY_CHARTS_BASE_URL, "").strip()
        return (
            parse_http_url(from_env, ENV_ENERGY_CHARTS_BASE_URL)
            if from_env
            else DEFAULT_ENERGY_CHARTS_BASE_URL
        )

    def client(self) -> EnergyChartsClient:
        """The run's client (built on first use)."""
        if self._client is None:
            self._client = self._build_client()
        return self._client

    def _build_client(self) -> EnergyChartsClient:
        if self.resolved_source() == "sample":
            return SnapshotEnergyChartsClient([SAMPLE_DIR, *self.snapshot_dirs])
        return LiveEnergyChartsClient(
            base_url=self.resolved_base_url(),
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            max_retries=self.max_retries,
            backoff_factor_s=self.backoff_factor_s,
            retry_after_max_s=self.retry_after_max_s,
            min_seconds_between_requests=self.min_seconds_between_requests,
            request_deadline_s=self.request_deadline_s,
            max_response_bytes=self.max_response_bytes,
        )


def _unresolved(value: Any) -> bool:
    """An environment-variable reference Dagster has not resolved yet (at definition time)."""
    return isinstance(value, dg.EnvVar) or (
        isinstance(value, list) and any(isinstance(item, dg.EnvVar) for item in value)
    )
