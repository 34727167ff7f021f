"""The file-source resource: where a source's inbox is and the keys of its sensitive columns.

Keep asset logic out of this module: it only turns configuration into the domain objects of
`energy_assets.sources.files` (the inbox layout and the pseudonymizer). The keys are the protected
identifiers' keys (EnvVar ENERGY_METERS_NMI_HMAC_KEY and ENERGY_METERS_NMI_FERNET_KEYS: one key set for
the platform, the same `energy-assets meters keys` and `rotate-keys` commands), resolved at launch.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from energy_assets.sources.files.ingest import SourceInbox
from energy_assets.sources.meters.identifiers import NmiProtector


class FileSourceResource(dg.ConfigurableResource):
    """One file source's inbox and the pseudonym keys."""

    inbox: str = Field(description="Inbox folder (processed/ and quarantine/ inside it).")
    hmac_key: str | None = Field(
        default=None, description="Pseudonym key (EnvVar ENERGY_METERS_NMI_HMAC_KEY)."
    )
    fernet_keys: str | None = Field(
        default=None, description="Fernet keys, newest first (EnvVar ENERGY_METERS_NMI_FERNET_KEYS)."
    )

    def layout(self) -> SourceInbox:
        layout = SourceInbox(Path(self.inbox))
        layout.ensure()
        return layout

    def protector(self) -> NmiProtector | None:
        """The pseudonymizer when both keys are set (a source with sensitive columns refuses to load without)."""
        if not self.hmac_key or not self.fernet_keys:
            return None
        return NmiProtector.from_text(self.hmac_key, self.fernet_keys)
