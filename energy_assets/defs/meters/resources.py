"""The meters resource: where the inbox is and how identifiers are protected.

Keep asset logic out of this module: it only turns configuration into the domain objects of
`energy_assets.sources.meters` (the inbox layout and the `NmiProtector`). Empty fields fall back to
the environment (`ENERGY_ASSETS_INBOX`, `ENERGY_METERS_PROTECT_NMI`); the keys are passed with
`EnvVar` (`ENERGY_METERS_NMI_HMAC_KEY`, `ENERGY_METERS_NMI_FERNET_KEYS`), resolved at launch and never
shown in the UI or logged.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from energy_assets.errors import ConfigurationError
from energy_assets.sources.meters.identifiers import NmiProtector
from energy_assets.sources.meters.inbox import InboxLayout
from energy_assets.sources.meters.settings import (
    ENV_NMI_FERNET_KEYS,
    ENV_NMI_HMAC_KEY,
    ENV_PROTECT_NMI,
    MeterSettings,
)


class MetersResource(dg.ConfigurableResource):
    """The NEM12 inbox and the protected-identifier keys."""

    inbox: str | None = Field(
        default=None, description="Inbox folder; empty: ENERGY_ASSETS_INBOX or <data home>/inbox."
    )
    protect_nmi: bool | None = Field(
        default=None,
        description="Store NMIs as pseudonyms (originals encrypted); empty: ENERGY_METERS_PROTECT_NMI.",
    )
    hmac_key: str | None = Field(
        default=None, description="Pseudonym key (use EnvVar ENERGY_METERS_NMI_HMAC_KEY)."
    )
    fernet_keys: str | None = Field(
        default=None, description="Fernet keys, newest first (use EnvVar ENERGY_METERS_NMI_FERNET_KEYS)."
    )

    def settings(self) -> MeterSettings:
        return MeterSettings.from_env()

    def layout(self) -> InboxLayout:
        layout = InboxLayout(Path(self.inbox) if self.inbox else self.settings().inbox)
        layout.ensure()
        return layout

    def protected(self) -> bool:
        return self.protect_nmi if self.protect_nmi is not None else self.settings().protect_nmi

    def protector(self) -> NmiProtector | None:
        """The pseudonymizer when identifiers are protected; None when they are not."""
        if not self.protected():
            return None
        if not self.hmac_key or not self.fernet_keys:
            raise ConfigurationError(
                f"{ENV_PROTECT_NMI} is on but the keys are missing: set {ENV_NMI_HMAC_KEY} and {ENV_NMI_FERNET_KEYS}"
                " (generate them with `energy-assets meters keys`)."
            )
        return NmiProtector.from_text(self.hmac_key, self.fernet_keys)
