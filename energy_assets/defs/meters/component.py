"""The NEM12 meter-file inbox as a Dagster component: what an operator declares in a `defs.yaml`.

Keep asset logic out of this module: it validates the declaration and hands it to `meters_definitions`.
Empty attributes fall back to the environment as before (`ENERGY_ASSETS_INBOX`, `ENERGY_METERS_PROTECT_NMI`);
the protected-identifier keys are never attributes (EnvVar ENERGY_METERS_NMI_HMAC_KEY and
ENERGY_METERS_NMI_FERNET_KEYS, resolved at launch). A relative inbox is resolved against the data home and
may not leave it. One instance per deployment: the tables are `meters.*`.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from pydantic import Field, field_validator

from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY

SOURCE_NAME = "meters"


class Nem12Inbox(dg.Component, dg.Model, dg.Resolvable):
    """NEM12 interval meter files dropped into an inbox: a sensor loads each stable new file into
    meters.meter_readings (revised reads keep their history) and the NMI daily mart."""

    inbox: str | None = Field(
        default=None,
        description=(
            "Inbox folder (processed/ and quarantine/ are its siblings): absolute, or relative to the data"
            " home; empty: ENERGY_ASSETS_INBOX or <data home>/inbox."
        ),
    )
    protect_nmi: bool | None = Field(
        default=None,
        description="Store NMIs as pseudonyms with the originals encrypted; empty: ENERGY_METERS_PROTECT_NMI.",
    )

    sensor_interval_seconds: int = Field(
        default=30,
        description="How often the inbox sensor looks (see `stable_ticks`).",
    )

    stable_ticks: int = Field(
        default=2,
        description="How many looks in a row must see a file unchanged (size and time) before it is loaded.",
    )

    @field_validator("stable_ticks")
    @classmethod
    def _ticks(cls, value: int) -> int:
        if not 2 <= value <= 20:
            raise ValueError(f"stable_ticks: {value} must be between 2 and 20.")
        return value

    @field_validator("sensor_interval_seconds")
    @classmethod
    def _interval(cls, value: int) -> int:
        if not 5 <= value <= 86400:
            raise ValueError(f"sensor_interval_seconds: {value} must be between 5 and 86400 (a day).")
        return value

    @field_validator("inbox")
    @classmethod
    def _inbox(cls, value: str | None) -> str | None:
        if value is None or Path(value).is_absolute():
            return value
        if ".." in Path(value).parts:
            raise ValueError(
                f"inbox: {value!r} leaves the data home; write an absolute path or one inside the data home."
            )
        return value

    @property
    def name(self) -> str:
        return SOURCE_NAME

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from energy_assets.defs.meters import MetersResource, meters_definitions
        from energy_assets.settings import DataHome

        inbox = self.inbox
        if inbox is not None and not Path(inbox).is_absolute():
            inbox = str(DataHome.from_env().root / inbox)
        meters = MetersResource(
            inbox=inbox,
            protect_nmi=self.protect_nmi,
            # Keys through EnvVar (resolved at launch, never shown), only when they are set.
            hmac_key=dg.EnvVar(ENV_NMI_HMAC_KEY) if os.environ.get(ENV_NMI_HMAC_KEY) else None,
            fernet_keys=dg.EnvVar(ENV_NMI_FERNET_KEYS) if os.environ.get(ENV_NMI_FERNET_KEYS) else None,
        )
        return meters_definitions(self).with_resources({"meters": meters})
