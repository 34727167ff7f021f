"""Settings of the buildings source: environment variable names, defaults and the timestamp convention.

| variable | default | meaning |
|---|---|---|
| `ZENODO_BASE_URL` | `https://zenodo.org` | Zenodo (or a server speaking its API, e.g. `https://sandbox.zenodo.org`) |
| `BDG2_ZENODO_RECORD` | `3887306` | the BDG2 record: an id, a DOI (`10.5281/zenodo.3887306`) or a record URL |
| `ZENODO_ACCESS_TOKEN` | unset | optional personal access token (higher rate limits); sent as a Bearer header |
| `BDG2_TIMESTAMP_CONVENTION` | `utc` | how the naive BDG2 timestamps become instants, for meters and weather alike |
| `ENERGY_ASSETS_SOURCE` | `sample` | shared with every source: `sample` serves the bundled record, `live` asks Zenodo |

**Timestamp convention.** BDG2 timestamps (`2016-01-01 00:00:00`) carry no offset, and they lie on a perfectly
regular hourly grid even at sites that observe DST, so they are not wall-clock local times. Two readings are
possible, chosen once for the whole source with `BDG2_TIMESTAMP_CONVENTION`:

- `utc` (default): the naive value is the UTC instant (`2016-01-01 00:00:00` -> `2016-01-01T00:00:00Z`);
- `site_standard_time`: the naive value is the site's local *standard* time, all year (no DST); it is converted
  to UTC with the fixed standard offset of the site's `timezone` in the metadata (`US/Eastern`: +5 h).

Either way the stored `timestamp` is `timestamptz`, and the marts' `date` is the day on the dataset's own clock
(the date written in the file), so daily figures do not move when the convention changes.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from energy_assets.errors import ConfigurationError
from energy_assets.settings import ENV_SOURCE, parse_http_url, parse_source

ENV_ZENODO_BASE_URL = "ZENODO_BASE_URL"
ENV_BDG2_ZENODO_RECORD = "BDG2_ZENODO_RECORD"
ENV_ZENODO_ACCESS_TOKEN = "ZENODO_ACCESS_TOKEN"
ENV_BDG2_TIMESTAMP_CONVENTION = "BDG2_TIMESTAMP_CONVENTION"

DEFAULT_ZENODO_BASE_URL = "https://zenodo.org"
DEFAULT_BDG2_ZENODO_RECORD = "3887306"
BDG2_DOI = "10.5281/zenodo.3887306"
BDG2_FILE_KEY = "buds-lab/building-data-genome-project-2-v1.0.zip"
BDG2_FILE_SIZE = 595_266_464
BDG2_FILE_MD5 = "44393dc4cf61e84dec105e955368c890"


class TimestampConvention(str, enum.Enum):
    """How a naive BDG2 timestamp becomes an instant (see the module docstring)."""

    UTC = "utc"
    SITE_STANDARD_TIME = "site_standard_time"

    @classmethod
    def parse(
        cls, value: str | TimestampConvention, setting: str = ENV_BDG2_TIMESTAMP_CONVENTION
    ) -> TimestampConvention:
        if isinstance(value, TimestampConvention):
            return value
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(member.value for member in cls)
            raise ConfigurationError(
                f"{setting}={value!r} is not a timestamp convention; use one of: {choices}"
            ) from None


@dataclass(frozen=True)
class BuildingsSettings:
    """Everything the buildings source reads from the environment, resolved once."""

    source: str
    zenodo_base_url: str
    record: str
    access_token: str | None
    timestamp_convention: TimestampConvention

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuildingsSettings:
        env = os.environ if environ is None else environ
        base_url = env.get(ENV_ZENODO_BASE_URL, "").strip() or DEFAULT_ZENODO_BASE_URL
        return cls(
            source=parse_source(env.get(ENV_SOURCE)),
            zenodo_base_url=parse_http_url(base_url, ENV_ZENODO_BASE_URL),
            record=env.get(ENV_BDG2_ZENODO_RECORD, DEFAULT_BDG2_ZENODO_RECORD).strip()
            or DEFAULT_BDG2_ZENODO_RECORD,
            access_token=env.get(ENV_ZENODO_ACCESS_TOKEN) or None,
            timestamp_convention=TimestampConvention.parse(
                env.get(ENV_BDG2_TIMESTAMP_CONVENTION, TimestampConvention.UTC.value)
            ),
        )
