"""The Energy-Charts source as a Dagster component: what an operator declares in a `defs.yaml`.

Keep asset logic out of this module: it validates the declaration (area codes against the API's published
lists, the time zone against the areas' local day, cron strings, the first partition) and hands it to
`energy_charts_definitions`, which builds the assets, checks, jobs and schedules.

The source `name` names everything the instance owns, so two instances (say Germany and France, each
with its own schedule) never collide: asset keys `raw/<name>/<endpoint>` and `<name>/<table>`, the
PostgreSQL schema and lake folder `<name>`, jobs and schedules `<name>_daily_job`, ..., and the client
resource `<name>`. The instance called `energy_charts` (the bundled one) writes its marts to
`marts.<mart>`; any other instance to `marts.<name>_<mart>`.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from pydantic import Field, field_validator, model_validator

from energy_assets.defs.declarations import DEFAULT_SOURCE_NAME_PATTERN, valid_cron, valid_source_name
from energy_assets.errors import ConfigurationError
from energy_assets.sources.energy_charts.areas import (
    normalize_bidding_zones,
    normalize_countries,
    normalize_country,
)
from energy_assets.sources.energy_charts.local_days import MARKET_TIMEZONE_NAME, timezone_for

DEFAULT_NAME = "energy_charts"
MAX_NAME_LENGTH = 40
FIRST_DE_LU_DAY = "2018-10-01"


class EnergyChartsSource(dg.Component, dg.Model, dg.Resolvable):
    """Energy-Charts (Fraunhofer ISE): public net production per country, day-ahead prices per bidding zone
    and installed capacity, in daily partitions of local days, with the production and price marts."""

    name: str = Field(
        default=DEFAULT_NAME,
        description=(
            "Source name: asset key prefix, PostgreSQL schema, lake and raw folder, job and schedule prefix."
            f" Pattern {DEFAULT_SOURCE_NAME_PATTERN}."
        ),
    )
    countries: list[str] = Field(
        default=["de"], description="Countries for /public_power (published codes: de, at, fr, ...)."
    )
    bidding_zones: list[str] = Field(
        default=["DE-LU"], description="Bidding zones for /price (published codes: DE-LU, NL, DK1, ...)."
    )
    installed_power_country: str = Field(default="de", description="Country for /installed_power.")
    timezone: str = Field(
        default=MARKET_TIMEZONE_NAME,
        description="IANA time zone of the daily partitions (the local day of every configured area).",
    )
    first_partition: str = Field(
        default=FIRST_DE_LU_DAY, description="First local day (YYYY-MM-DD) that can be backfilled."
    )
    daily_schedule: str = Field(
        default="30 6 * * *", description="Cron (in `timezone`) of the run for yesterday's local day."
    )
    installed_power_schedule: str = Field(
        default="0 6 * * 1", description="Cron (in `timezone`) of the installed-capacity refresh."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = _as_value_error(valid_source_name, value)
        if len(name) > MAX_NAME_LENGTH:  # `<name>_daily_production_trend` must fit PostgreSQL's 63 bytes
            raise ValueError(f"name: {name!r} is longer than {MAX_NAME_LENGTH} characters; shorten it.")
        return name

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        return _as_value_error(normalize_countries, value, setting="countries")

    @field_validator("bidding_zones")
    @classmethod
    def _bidding_zones(cls, value: list[str]) -> list[str]:
        return _as_value_error(normalize_bidding_zones, value, setting="bidding_zones")

    @field_validator("installed_power_country")
    @classmethod
    def _installed_power_country(cls, value: str) -> str:
        return _as_value_error(normalize_country, value, setting="installed_power_country")

    @field_validator("first_partition")
    @classmethod
    def _first_partition(cls, value: str) -> str:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError(f"first_partition: {value!r} is not a date; write it as YYYY-MM-DD.") from None

    @field_validator("daily_schedule", "installed_power_schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _as_value_error(valid_cron, value)

    @model_validator(mode="after")
    def _one_local_day(self) -> EnergyChartsSource:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone: {self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)."
            ) from None
        for area in [*self.countries, *self.bidding_zones]:
            if timezone_for(area).key != self.timezone:
                raise ValueError(
                    f"timezone: {area} reports local days in {timezone_for(area).key}, not {self.timezone};"
                    " declare areas of one time zone per source (or a second source for the others)."
                )
        return self

    @property
    def mart_prefix(self) -> str:
        """`""` for the bundled instance (marts.daily_production_trend), `<name>_` for any other."""
        return "" if self.name == DEFAULT_NAME else f"{self.name}_"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from energy_assets.defs.energy_charts import energy_charts_definitions

        return energy_charts_definitions(self)


def _as_value_error(check: Any, value: Any, **kwargs: Any) -> Any:
    """Pydantic reports ValueError with the attribute's name; the project's ConfigurationError keeps its text."""
    try:
        return check(value, **kwargs)
    except ConfigurationError as error:
        raise ValueError(str(error)) from None
