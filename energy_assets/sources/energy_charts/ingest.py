"""Ingesting a range of local days from one Energy-Charts endpoint: fetch, validate, cut into days, and
build the publish requests of the tables it feeds. No Dagster here.

The steps, for every area and run of consecutive days (at most `max_days_per_request` per request):

1. fetch one response for the run of days;
2. validate the whole response before cutting it (a ragged one never is), then cut it into local days
   (each in the area's own time zone) and normalize each day;
3. one candidate per table, area and day: lake partition `{<area column>, date}`, its PostgreSQL scope
   (the area and the day's UTC window) and, with the first table, the day's raw JSON document;
4. one `PublishRequest` per table, with the interval rules and the local-day relation the audit needs.

Installed power (`ingest_installed_power`) is not partitioned by day: one candidate per country and step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.client import EnergyChartsClient
from energy_assets.sources.energy_charts.local_days import (
    LocalDayWindow,
    contiguous_chunks,
    days_between,
    local_day_window,
    local_days_window,
    timezone_for,
)
from energy_assets.sources.energy_charts.responses import (
    documented_fields,
    normalize_installed_power,
    slice_response,
)
from energy_assets.sources.energy_charts.rules import LOCAL_DAYS, interval_rules, local_days_relation
from energy_assets.warehouse.lake_sql import partition_label
from energy_assets.warehouse.publish import Candidate, PublishRequest
from energy_assets.warehouse.table_spec import TableSpec


@dataclass(frozen=True)
class DailyTable:
    """One table a daily endpoint feeds, and how to take it out of a normalized day."""

    spec: TableSpec
    rows_of: Callable[[Any], pa.Table]


@dataclass(frozen=True)
class DailyEndpoint:
    """A daily endpoint: how to ask it for a range of days, how to parse a day, the tables it feeds.

    The first table must cover every day; the others (share series) may be absent on one.
    """

    name: str
    area_column: str
    fetch: Callable[[EnergyChartsClient, str, date, date], dict[str, Any]]
    normalize: Callable[[dict[str, Any], str, LocalDayWindow], Any]
    tables: tuple[DailyTable, ...]

    def rules(self, index: int) -> list[Any]:
        table = self.tables[index]
        return interval_rules(table.spec.series_columns, rows_required=index == 0)


@dataclass
class IngestedDays:
    """What one run of an endpoint fetched: a request per table, the parsed days, and the traffic."""

    requests: list[PublishRequest]
    parsed_days: list[Any]
    chunks: int
    documents: int


def raw_document_path(raw_dir: Path, area: str, name: str) -> Path:
    """`<raw_dir>/<area>/<name>.json` (area codes are validated before they get here)."""
    return raw_dir / area / f"{name}.json"


def raw_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def ingest_days(
    endpoint: DailyEndpoint,
    client: EnergyChartsClient,
    areas: Sequence[str],
    days: Sequence[date],
    *,
    max_days_per_request: int,
    raw_dir: Path,
) -> IngestedDays:
    """Fetch `days` for every area and build one publish request per table (nothing is written here)."""
    chunks = contiguous_chunks(days, max_days_per_request)
    fetched = [
        (area, first, last, endpoint.fetch(client, area, first, last))
        for area in areas
        for first, last in chunks
    ]
    candidates: list[list[Candidate]] = [[] for _ in endpoint.tables]
    windows, parsed_days = [], []
    for area, first, last, body in fetched:
        endpoint.normalize(body, area, local_days_window(first, last, timezone_for(area)))
        for day in days_between(first, last):
            window = local_day_window(day, timezone_for(area))
            day_body = slice_response(
                body, start_unix=window.start_unix, end_unix=window.end_unix, endpoint=endpoint.name
            )
            parsed = endpoint.normalize(day_body, area, window)
            parsed_days.append(parsed)
            partition = {endpoint.area_column: area, "date": day.isoformat()}
            windows.append((partition_label(partition), window))
            scope = {endpoint.area_column: area, "interval_start": (window.start_utc, window.end_utc)}
            raw = {raw_document_path(raw_dir, area, day.isoformat()): raw_bytes(day_body)}
            for index, table in enumerate(endpoint.tables):
                candidates[index].append(
                    Candidate(partition, scope, table.rows_of(parsed), raw if index == 0 else {})
                )
    relations = {LOCAL_DAYS: local_days_relation(windows)}
    requests = [
        PublishRequest(table.spec, candidates[index], rules=endpoint.rules(index), relations=relations)
        for index, table in enumerate(endpoint.tables)
    ]
    return IngestedDays(requests, parsed_days, len(chunks), len(windows))


def ingest_installed_power(
    client: EnergyChartsClient, spec: TableSpec, country: str, *, raw_dir: Path
) -> PublishRequest:
    """Installed capacity of `country`, yearly and monthly: one candidate per time step with its raw JSON."""
    candidates = []
    for time_step in endpoints.TIME_STEPS:
        body = client.installed_power(country, time_step)
        table = normalize_installed_power(body, country=country, time_step=time_step).table
        partition = {"country": country, "time_step": time_step}
        raw = {
            raw_document_path(raw_dir, country, time_step): raw_bytes(
                documented_fields(endpoints.INSTALLED_POWER, body)
            )
        }
        candidates.append(Candidate(partition, dict(partition), table, raw))
    return PublishRequest(spec, candidates)
