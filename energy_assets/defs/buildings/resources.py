"""The Zenodo resource: which BDG2 record, from where, how its timestamps are read, and the download budget.

Keep asset logic out of this module: it only turns configuration into the domain objects of
`energy_assets.sources.buildings` (the Zenodo client and the download cache). Empty fields fall back
to the environment (`ENERGY_ASSETS_SOURCE`, `ZENODO_BASE_URL`, `BDG2_ZENODO_RECORD`,
`BDG2_TIMESTAMP_CONVENTION`); the access token is passed with `EnvVar("ZENODO_ACCESS_TOKEN")`. Every field
is checked when the resource is built (at code location load for the defaults, at run start for launchpad
config), so a bad value fails before any step runs.
"""

import dataclasses
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, ValidationInfo, field_validator

from energy_assets.errors import ConfigurationError
from energy_assets.settings import DataHome, parse_http_url, parse_source
from energy_assets.sources.buildings import BuildingsSettings, LiveZenodoClient, ZenodoClient, make_client
from energy_assets.sources.buildings.archive import MeterKind
from energy_assets.sources.buildings.cache import DownloadCache
from energy_assets.sources.buildings.client import DEFAULT_BUDGET, DEFAULT_DOWNLOAD_DEADLINE_S
from energy_assets.sources.buildings.settings import TimestampConvention
from energy_assets.sources.buildings.zenodo_records import parse_record_id


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
    max_retries: int = Field(
        default=DEFAULT_BUDGET.max_retries,
        description="Retries of one request (live) on connection errors and 429/5xx, honouring Retry-After.",
    )
    request_deadline_s: float = Field(
        default=DEFAULT_BUDGET.request_deadline_s,
        description="Overall deadline of one request (live), retries and waits included.",
    )
    download_deadline_s: float = Field(
        default=DEFAULT_DOWNLOAD_DEADLINE_S,
        description="Overall deadline of the archive download (live), resumes included; the partial file is kept.",
    )
    max_resumes: int = Field(
        default=10, description="Times a broken download resumes (Range/If-Range) before the step fails."
    )

    # `mode="before"` sees the value as given, so an `EnvVar` (a `str`) is left for Dagster to resolve; the
    # validators run again on the resolved value when the run starts.
    @field_validator("source", mode="before")
    @classmethod
    def _known_source(cls, value: Any) -> Any:
        return parse_source(value, setting="source") if _given(value) else value

    @field_validator("base_url", mode="before")
    @classmethod
    def _http_base_url(cls, value: Any) -> Any:
        return parse_http_url(value, "base_url") if _given(value) else value

    @field_validator("record", mode="before")
    @classmethod
    def _record_id(cls, value: Any) -> Any:
        if _given(value):
            try:
                parse_record_id(value)
            except ConfigurationError as error:
                raise ConfigurationError(f"record: {error}") from None
        return value

    @field_validator("timestamp_convention", mode="before")
    @classmethod
    def _known_convention(cls, value: Any) -> Any:
        if _given(value):
            return TimestampConvention.parse(value, setting="timestamp_convention").value
        return value

    @field_validator("meter_kind", mode="before")
    @classmethod
    def _known_meter_kind(cls, value: Any) -> Any:
        if _given(value):
            choices = [kind.value for kind in MeterKind]
            if value not in choices:
                raise ConfigurationError(
                    f"meter_kind={value!r} is not a meter kind; use one of: {', '.join(choices)}"
                )
        return value

    @field_validator("request_deadline_s", "download_deadline_s")
    @classmethod
    def _positive(cls, value: float, info: ValidationInfo) -> float:
        if not value > 0:
            raise ConfigurationError(f"{info.field_name} must be positive, got {value!r}.")
        return value

    @field_validator("max_retries", "max_resumes")
    @classmethod
    def _not_negative(cls, value: int, info: ValidationInfo) -> int:
        if value < 0:
            raise ConfigurationError(f"{info.field_name} must be >= 0, got {value!r}.")
        return value

    def settings(self) -> BuildingsSettings:
        settings = BuildingsSettings.from_env()
        changes: dict = {}
        if self.source:
            changes["source"] = self.source
        if self.base_url:
            changes["zenodo_base_url"] = self.base_url
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
        settings = self.settings()
        if settings.source != "live":
            return make_client(settings)
        return LiveZenodoClient(
            settings.zenodo_base_url,
            access_token=settings.access_token,
            max_retries=self.max_retries,
            request_deadline_s=self.request_deadline_s,
            download_deadline_s=self.download_deadline_s,
            max_resumes=self.max_resumes,
        )

    def cache(self, client: ZenodoClient) -> DownloadCache:
        root = Path(self.cache_dir) if self.cache_dir else DataHome.from_env().raw_dir / "buildings"
        return client.cache_for(str(root))


def _given(value: Any) -> bool:
    """A non-empty value as written, not an `EnvVar` Dagster has yet to resolve."""
    return isinstance(value, str) and bool(value) and not isinstance(value, dg.EnvVar)
