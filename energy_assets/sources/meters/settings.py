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

from energy_assets.errors import ConfigurationError, EnergyAssetsError
from energy_assets.settings import ENV_HOME, DataHome, parse_switch

ENV_INBOX = "ENERGY_ASSETS_INBOX"
ENV_PROTECT_NMI = "ENERGY_METERS_PROTECT_NMI"
ENV_NMI_HMAC_KEY = "ENERGY_METERS_NMI_HMAC_KEY"
ENV_NMI_FERNET_KEYS = "ENERGY_METERS_NMI_FERNET_KEYS"
ENV_BATCH_ROWS = "ENERGY_METERS_BATCH_ROWS"

DEFAULT_BATCH_ROWS = 262_144
# Small synthetic NEM12 files shipped with the package, for the offline demo: two NMIs with consumption and
# solar export (30 min, a V day with 400 records), a revision of two estimated days, a zipped 15-minute meter.
SAMPLE_DIR = Path(__file__).parent / "sample"
__all__ = ["MeterSettings", "meter_settings_problems", "parse_switch", "sample_files"]


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
            home = env.get(ENV_HOME)
            inbox = (Path(home).expanduser() if home else DataHome.from_env().root) / "inbox"
        return cls(
            inbox=inbox,
            protect_nmi=parse_switch(env.get(ENV_PROTECT_NMI), ENV_PROTECT_NMI),
            batch_rows=parse_batch_rows(env.get(ENV_BATCH_ROWS)),
        )


def parse_batch_rows(value: str | None) -> int:
    """A positive row count; unset or empty: `DEFAULT_BATCH_ROWS`."""
    text = (value or "").strip()
    if not text:
        return DEFAULT_BATCH_ROWS
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(f"{ENV_BATCH_ROWS}={text!r}: expected a positive integer")
    return int(text)


def meter_settings_problems(environ: Mapping[str, str]) -> list[str]:
    """Every problem with the meter settings, keys included (for `energy_assets.settings.environment_problems`).

    Keys are checked when protection is on (then both are required) or when they are set.
    """
    # Imported here: the identifiers module imports this one for the variable names.
    from energy_assets.sources.meters.identifiers import parse_fernet_keys, parse_hmac_key

    problems = []
    protect = False
    try:
        parse_batch_rows(environ.get(ENV_BATCH_ROWS))
    except ConfigurationError as error:
        problems.append(str(error))
    try:
        protect = parse_switch(environ.get(ENV_PROTECT_NMI), ENV_PROTECT_NMI)
    except ConfigurationError as error:
        problems.append(str(error))
    inbox = environ.get(ENV_INBOX, "").strip()
    if inbox and Path(inbox).expanduser().exists() and not Path(inbox).expanduser().is_dir():
        problems.append(
            f"{ENV_INBOX}={inbox} is not a folder; point it at the folder watched for NEM12 files."
        )
    for name, parse in ((ENV_NMI_HMAC_KEY, parse_hmac_key), (ENV_NMI_FERNET_KEYS, parse_fernet_keys)):
        if protect or environ.get(name, "").strip():
            try:
                parse(environ.get(name))
            except EnergyAssetsError as error:
                problems.append(str(error))
    return problems


def sample_files() -> list[Path]:
    """The bundled sample files in the order to drop them (the revision comes after the file it revises)."""
    return sorted(path for path in SAMPLE_DIR.iterdir() if path.suffix in {".csv", ".zip"})
