"""Energy-Charts (Fraunhofer ISE): German and European power data. Pure domain code, no Dagster.

Modules, in the order data flows through them:

- `areas`: the published country and bidding-zone codes; codes are checked and normalized once, here.
- `endpoints`: endpoint names, the exact query parameters sent, and the documented response fields.
- `client`: `EnergyChartsClient` (interface) and `LiveEnergyChartsClient` (the shared retrying session of
  `energy_assets.http`, timeouts, an overall deadline and a size cap per request, rate limit, API errors with the
  server's message).
- `snapshot`: `SnapshotEnergyChartsClient` answering from recorded responses; the bundled `sample/` covers
  `SAMPLE_DAYS`, so everything runs offline.
- `responses`: validation and normalization into long Arrow tables (`zip(unix_seconds, data)` per named series).
- `local_days`: Europe/Berlin local-day windows and interval counts (96/92/100 quarter hours).
- `production_types`: canonical series names, percent vs MW, generation and renewable classes.
- `ingest`: a range of local days from one endpoint (or installed power) into publish requests.
- `tables`: the table schemas (columns, units, keys) of the raw tables and the marts.
- `aggregates`: the three marts in DuckDB SQL (`sql/*.sql`).
- `rules`: the blocking audit rules of interval tables (grid, inside the local day, complete days), as SQL.
- `checks`: the non-blocking checks (physical signs) and freshness, as functions over Arrow tables.
- `errors`: `EnergyChartsApiError` (with `EnergyChartsDeadlineError`, `EnergyChartsResponseTooLargeError`),
  `EnergyChartsResponseError`, `SnapshotNotRecordedError`.

Data: Energy-Charts.info / Fraunhofer ISE, CC BY 4.0; DE-LU prices: Bundesnetzagentur | SMARD.de.
"""

from energy_assets.sources.energy_charts.client import EnergyChartsClient, LiveEnergyChartsClient
from energy_assets.sources.energy_charts.errors import (
    EnergyChartsApiError,
    EnergyChartsResponseError,
    SnapshotNotRecordedError,
)
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DAYS, SnapshotEnergyChartsClient

__all__ = [
    "SAMPLE_DAYS",
    "EnergyChartsApiError",
    "EnergyChartsClient",
    "EnergyChartsResponseError",
    "LiveEnergyChartsClient",
    "SnapshotEnergyChartsClient",
    "SnapshotNotRecordedError",
]
