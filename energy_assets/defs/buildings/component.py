"""The BDG2 record on Zenodo as a Dagster component: what an operator declares in a `defs.yaml`.

Keep asset logic out of this module: it validates the declaration and hands it to `buildings_definitions`.
Empty attributes fall back to the environment as before (`BDG2_ZENODO_RECORD`, `BDG2_TIMESTAMP_CONVENTION`),
so an existing deployment keeps working; the access token is never an attribute (EnvVar ZENODO_ACCESS_TOKEN).
One instance per deployment: the tables are `buildings.*`.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field, field_validator

from energy_assets.sources.buildings.archive import METERS, MeterKind
from energy_assets.sources.buildings.settings import ENV_ZENODO_ACCESS_TOKEN, TimestampConvention

SOURCE_NAME = "buildings"


class Bdg2Source(dg.Component, dg.Model, dg.Resolvable):
    """Building Data Genome 2 (Zenodo): building metadata, weather and hourly meter readings per meter
    (one partition per meter), with the building marts and a daily new-version sensor."""

    record: str | None = Field(
        default=None, description="Zenodo record id, DOI or URL of BDG2; empty: BDG2_ZENODO_RECORD (3887306)."
    )
    meter_kind: str = Field(
        default="cleaned", description="Meter files to load: `cleaned` (the authors' cleaned set) or `raw`."
    )
    timestamp_convention: str | None = Field(
        default=None,
        description="How BDG2 timestamps are read: `utc` or `site_standard_time`; empty: BDG2_TIMESTAMP_CONVENTION.",
    )
    meters: list[str] = Field(
        default=list(METERS), description="The meters to load, one partition each (electricity, gas, ...)."
    )
    version_check_interval_hours: int = Field(
        default=24, description="How often the new-version sensor asks Zenodo for the latest version."
    )

    @field_validator("meters")
    @classmethod
    def _meters(cls, value: list[str]) -> list[str]:
        unknown = [meter for meter in value if meter not in METERS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(
                f"meters: {value!r} must name each BDG2 meter at most once, from: {', '.join(METERS)}."
            )
        return value

    @field_validator("version_check_interval_hours")
    @classmethod
    def _interval(cls, value: int) -> int:
        if not 1 <= value <= 24 * 31:
            raise ValueError(f"version_check_interval_hours: {value} must be between 1 and 744 (31 days).")
        return value

    @field_validator("meter_kind")
    @classmethod
    def _meter_kind(cls, value: str) -> str:
        kinds = [kind.value for kind in MeterKind]
        if value not in kinds:
            raise ValueError(f"meter_kind: {value!r} is not a BDG2 meter set; use one of {kinds}.")
        return value

    @field_validator("timestamp_convention")
    @classmethod
    def _timestamp_convention(cls, value: str | None) -> str | None:
        if value is None:
            return None
        conventions = [convention.value for convention in TimestampConvention]
        if value not in conventions:
            raise ValueError(f"timestamp_convention: {value!r} is not one of {conventions}.")
        return value

    @property
    def name(self) -> str:
        return SOURCE_NAME

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from energy_assets.defs.buildings import ZenodoResource, buildings_definitions

        zenodo = ZenodoResource(
            record=self.record,
            meter_kind=self.meter_kind,
            timestamp_convention=self.timestamp_convention,
            # Only the presence of the variable is read here; EnvVar resolves it at launch, unseen in the UI.
            access_token=dg.EnvVar(ENV_ZENODO_ACCESS_TOKEN)
            if os.environ.get(ENV_ZENODO_ACCESS_TOKEN)
            else None,
        )
        return buildings_definitions(self).with_resources({"zenodo": zenodo})
