"""Energy-Charts endpoints this source uses and the exact query parameters sent to each.

Live requests, recorded snapshots and the test server all build their parameters here, so a recorded response
is found under the same key the live client would send. Day parameters are local days, both inclusive
(`start=2025-09-30&end=2025-10-01` is two whole local days). The API silently ignores unknown parameters
(`start_date` gets you *today*), so names are never typed anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from energy_assets.sources.energy_charts.local_days import partition_label

PUBLIC_POWER = "public_power"
PRICE = "price"
INSTALLED_POWER = "installed_power"

ENDPOINTS: tuple[str, ...] = (PUBLIC_POWER, PRICE, INSTALLED_POWER)

# The top-level response fields each endpoint documents (OpenAPI 1.5); raw files keep these and nothing else,
# so an undocumented field the server adds is never copied into every stored day.
PUBLIC_POWER_FIELDS: tuple[str, ...] = ("unix_seconds", "production_types", "deprecated")
PRICE_FIELDS: tuple[str, ...] = ("license_info", "unix_seconds", "price", "unit", "deprecated")
INSTALLED_POWER_FIELDS: tuple[str, ...] = ("time", "production_types", "last_update", "deprecated")
# The fields of each item of `production_types`.
NAMED_SERIES_FIELDS: tuple[str, ...] = ("name", "data")

DOCUMENTED_FIELDS: dict[str, tuple[str, ...]] = {
    PUBLIC_POWER: PUBLIC_POWER_FIELDS,
    PRICE: PRICE_FIELDS,
    INSTALLED_POWER: INSTALLED_POWER_FIELDS,
}

TIME_STEPS: tuple[str, ...] = ("yearly", "monthly")


def public_power_params(country: str, start: date, end: date) -> dict[str, str]:
    """`/public_power?country=de&start=2025-03-30&end=2025-03-30`."""
    _check_range(start, end)
    return {"country": country.strip().lower(), "start": start.isoformat(), "end": end.isoformat()}


def price_params(bidding_zone: str, start: date, end: date) -> dict[str, str]:
    """`/price?bzn=DE-LU&start=2025-09-30&end=2025-10-01`."""
    _check_range(start, end)
    return {"bzn": bidding_zone.strip(), "start": start.isoformat(), "end": end.isoformat()}


def installed_power_params(country: str, time_step: str) -> dict[str, str]:
    """`/installed_power?country=de&time_step=monthly&installation_decommission=false`.

    `installation_decommission=false` asks for installed capacity in GW; `true` would return net additions
    (and monthly figures in MW), which the normalizer does not expect.
    """
    if time_step not in TIME_STEPS:
        raise ValueError(f"time_step must be one of {TIME_STEPS}, got {time_step!r}")
    return {"country": country.strip().lower(), "time_step": time_step, "installation_decommission": "false"}


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise ValueError(f"end {end} is before start {start}")


def partition_of(params: Mapping[str, str]) -> str:
    """How errors name the partition a request is for: `2025-03-30 (de)`, `yearly (de)`."""
    area = params.get("country") or params.get("bzn") or "?"
    if "start" in params and "end" in params:
        label = partition_label(date.fromisoformat(params["start"]), date.fromisoformat(params["end"]))
        return f"{label} ({area})"
    return f"{params.get('time_step', '?')} ({area})"
