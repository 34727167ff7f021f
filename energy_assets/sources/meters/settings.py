"""Settings of the meter-file source: environment variable names and defaults, in one place.

| Variable | Default | Meaning |
|---|---|---|
| `ENERGY_ASSETS_INBOX` | `<data home>/inbox` | Folder watched for NEM12 files; `processed/` and `quarantine/` are its siblings. |
| `ENERGY_METERS_PROTECT_NMI` | off | `1`/`true`/`yes`/`on`: store NMIs as pseudonyms, originals encrypted. |
| `ENERGY_METERS_NMI_HMAC_KEY` | - | Pseudonym key: urlsafe base64 of >= 32 bytes. Changing it changes every pseudonym. |
| `ENERGY_METERS_NMI_FERNET_KEYS` | - | Comma-separated Fernet keys, newest first; the first encrypts, all decrypt. |
| `ENERGY_METERS_BATCH_ROWS` | 262144 | Interval rows per Arrow batch when reading a file (bounds memory). |

The keys are read by the Dagster layer through `EnvVar` only, never at import time; this module names them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from energy_assets.errors import ConfigurationError
from energy_assets.settings import DataHome

ENV_INBOX = "ENERGY_ASSETS_INBOX"
ENV_PROTECT_NMI = "ENERGY_METERS_PROTECT_NMI"
ENV_NMI_HMAC_KEY = "ENERGY_METERS_NMI_HMAC_KEY"
ENV_NMI_FERNET_KEYS = "ENERGY_METERS_NMI_FERNET_KEYS"
ENV_BATCH_ROWS = "ENERGY_METERS_BATCH_ROWS"

DEFAULT_BATCH_ROWS = 262_144
# Small synthetic NEM12 files shipped with the package, for the offline demo: two NMIs with consumption and
# solar export (30 min, a V day with 400 records), a revision of two estimated days, a zipped 15-minute meter.
SAMPLE_DIR = Path(__file__).parent / "sample"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def parse_switch(value: str | None, setting: str) -> bool:
    """`1/true/yes/on` -> True, `0/false/no/off`/unset -> False; anything else is a configuration error."""
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(f"{setting}={value!r}: expected 1/0, true/false, yes/no or on/off")


@dataclass(frozen=True)
class MeterSettings:
    """Where the inbox is and whether identifiers are protected (keys are not part of this object)."""

    inbox: Path
    protect_nmi: bool = False
    batch_rows: int = DEFAULT_BATCH_ROWS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MeterSettings:
        env = os.environ if environ is None else environ
        inbox_text = env.get(ENV_INBOX)
        if inbox_text:
            inbox = Path(inbox_text).expanduser()
        else:
            home = env.get("ENERGY_ASSETS_HOME")
            inbox = (Path(home).expanduser() if home else DataHome.from_env().root) / "inbox"
        batch_text = env.get(ENV_BATCH_ROWS, "").strip()
        if batch_text and (not batch_text.isdigit() or int(batch_text) < 1):
            raise ConfigurationError(f"{ENV_BATCH_ROWS}={batch_text!r}: expected a positive integer")
        return cls(
            inbox=inbox,
            protect_nmi=parse_switch(env.get(ENV_PROTECT_NMI), ENV_PROTECT_NMI),
            batch_rows=int(batch_text) if batch_text else DEFAULT_BATCH_ROWS,
        )


def sample_files() -> list[Path]:
    """The bundled sample files in the order to drop them (the revision comes after the file it revises)."""
    return sorted(path for path in SAMPLE_DIR.iterdir() if path.suffix in {".csv", ".zip"})
