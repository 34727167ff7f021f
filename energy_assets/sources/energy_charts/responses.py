"""Validate Energy-Charts responses and normalize them into long Arrow tables.

Shapes (see the API's OpenAPI 1.5 spec):

- `/public_power`: `{"unix_seconds": [int], "production_types": [{"name": str, "data": [float|null]}],
  "deprecated": bool}`
- `/price`: `{"license_info": str, "unix_seconds": [int]|null, "price": [float|null]|null, "unit": str,
  "deprecated": bool}`
- `/installed_power`: `{"time": ["2024" | "10.2024"], "production_types": [...], "last_update": int|null,
  "deprecated": bool}`

Rules, each learned from a pipeline that got it wrong:

- Each series is exploded with `zip(unix_seconds, data)`: one row per (series, timestamp), never a Cartesian
  product. A data array whose length differs from `unix_seconds` is an error.
- Series are keyed by name, matched case-insensitively (`production_types.canonical_production_type`); new
  names are accepted; a response holding two spellings of one name is an error.
- Percent series (`Renewable share of ...`) go to their own table; MW series to `public_power`.
- A series that is null at every timestamp (`Nuclear` after the 2023 shutdown) carries no information and is
  dropped (its name is reported in `all_null_series`); single nulls inside a series are kept as NULL rows, so
  interval counts stay exact.
- Timestamps are UNIX seconds at interval start, kept as `timestamp[us, tz=UTC]`. Each must lie inside the
  requested local day(s). `interval_minutes` comes from the spacing of the timestamps: each point gets the
  smaller of the gaps to its neighbours, so on the mixed price day the last hourly point is 60 minutes and
  the first quarter-hourly point 15; a point without neighbours runs to the window end (at most 60 minutes).
- `/price` units `EUR / MWh` (2025-) and `EUR / megawatt_hour` (2024) are both EUR/MWh; any other unit is an
  error.

Raw files keep only the fields each endpoint documents (`documented_fields`, `slice_response`); the
lists are in `endpoints`.

Every error is an `EnergyChartsResponseError` naming the endpoint, the partition and the field; normalizing
never returns a partial table, so nothing from a bad response can be loaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa

from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.errors import EnergyChartsResponseError
from energy_assets.sources.energy_charts.local_days import LocalDayWindow
from energy_assets.sources.energy_charts.production_types import (
    canonical_production_type,
    is_percent_series,
)
from energy_assets.sources.energy_charts.tables import (
    DAY_AHEAD_PRICE,
    INSTALLED_POWER,
    PUBLIC_POWER,
    PUBLIC_POWER_SHARE,
    UTC_TIMESTAMP,
)

ACCEPTED_PRICE_UNITS: tuple[str, ...] = ("EUR / MWh", "EUR / megawatt_hour")
_ACCEPTED_PRICE_UNIT_KEYS = frozenset(unit.replace(" ", "").casefold() for unit in ACCEPTED_PRICE_UNITS)

# With no neighbour to measure against, a lone point runs to the window end, but never longer than this.
_LONE_POINT_MAX_MINUTES = 60


@dataclass(frozen=True)
class PublicPowerResponse:
    """A normalized `/public_power` response: MW rows, percent rows and what was dropped."""

    power: pa.Table
    share: pa.Table
    series_names: tuple[str, ...]
    all_null_series: tuple[str, ...]
    deprecated: bool


@dataclass(frozen=True)
class PriceResponse:
    """A normalized `/price` response."""

    table: pa.Table
    unit: str
    license_info: str | None
    deprecated: bool


@dataclass(frozen=True)
class InstalledPowerResponse:
    """A normalized `/installed_power` response."""

    table: pa.Table
    series_names: tuple[str, ...]
    all_null_series: tuple[str, ...]
    last_update: datetime | None
    deprecated: bool


@dataclass(frozen=True)
class _Series:
    position: int
    name: str
    values: list[float | None]


class _Context:
    """Which response is being read, for error messages."""

    def __init__(self, endpoint: str, partition: str) -> None:
        self.endpoint = endpoint
        self.partition = partition

    def error(self, field: str, problem: str) -> EnergyChartsResponseError:
        return EnergyChartsResponseError(self.endpoint, self.partition, field, problem)


def partition_label_for(area: str, window: LocalDayWindow) -> str:
    """How errors name a partition: `2025-03-30 (de)`."""
    return f"{window.label} ({area})"


def parse_json_body(body: bytes | str, *, endpoint: str, partition: str) -> dict[str, Any]:
    """Parse a response body; malformed JSON or a non-object raises `EnergyChartsResponseError`."""
    context = _Context(endpoint, partition)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        raise context.error("<body>", f"not valid JSON ({exc}); body starts {text[:120]!r}") from exc
    return _require_object(payload, context)


def normalize_public_power(payload: Any, *, country: str, window: LocalDayWindow) -> PublicPowerResponse:
    """Validate a `/public_power` response for `window` and explode it into MW and percent tables."""
    context = _Context(endpoints.PUBLIC_POWER, partition_label_for(country, window))
    body = _require_object(payload, context)
    timestamps = _timestamps(body, "unix_seconds", context, window)
    minutes = _interval_minutes(timestamps, window, context)
    series = _named_series(body, "production_types", len(timestamps), "unix_seconds", context)

    power_rows: dict[str, list[Any]] = {name: [] for name in PUBLIC_POWER.column_names}
    share_rows: dict[str, list[Any]] = {name: [] for name in PUBLIC_POWER_SHARE.column_names}
    all_null: list[str] = []
    country_code = country.strip().lower()
    for item in series:
        if all(value is None for value in item.values):
            all_null.append(item.name)
            continue
        if is_percent_series(item.name):
            rows, value_column = share_rows, "share_percent"
        else:
            rows, value_column = power_rows, "value_mw"
        rows["country"].extend([country_code] * len(timestamps))
        rows["interval_start"].extend(timestamps)
        rows["interval_minutes"].extend(minutes)
        rows["production_type"].extend([item.name] * len(timestamps))
        rows[value_column].extend(item.values)

    return PublicPowerResponse(
        power=_build_table(power_rows, PUBLIC_POWER.arrow_schema),
        share=_build_table(share_rows, PUBLIC_POWER_SHARE.arrow_schema),
        series_names=tuple(item.name for item in series),
        all_null_series=tuple(all_null),
        deprecated=_deprecated(body, context),
    )


def normalize_price(payload: Any, *, bidding_zone: str, window: LocalDayWindow) -> PriceResponse:
    """Validate a `/price` response for `window` (unit, lengths, timestamps) into `day_ahead_price` rows."""
    context = _Context(endpoints.PRICE, partition_label_for(bidding_zone, window))
    body = _require_object(payload, context)
    unit = body.get("unit")
    if not isinstance(unit, str):
        raise context.error(
            "unit", f"missing or not a string ({unit!r}); expected one of {ACCEPTED_PRICE_UNITS}"
        )
    if unit.replace(" ", "").casefold() not in _ACCEPTED_PRICE_UNIT_KEYS:
        raise context.error("unit", f"unknown unit {unit!r}; expected one of {ACCEPTED_PRICE_UNITS}")
    timestamps = _timestamps(body, "unix_seconds", context, window)
    minutes = _interval_minutes(timestamps, window, context)
    prices = _number_array(body.get("price"), "price", len(timestamps), "unix_seconds", context)
    license_info = body.get("license_info")
    table = _build_table(
        {
            "bidding_zone": [bidding_zone.strip()] * len(timestamps),
            "interval_start": timestamps,
            "interval_minutes": minutes,
            "price_eur_per_mwh": prices,
        },
        DAY_AHEAD_PRICE.arrow_schema,
    )
    return PriceResponse(
        table=table,
        unit=unit,
        license_info=license_info if isinstance(license_info, str) else None,
        deprecated=_deprecated(body, context),
    )


def normalize_installed_power(payload: Any, *, country: str, time_step: str) -> InstalledPowerResponse:
    """Validate an `/installed_power` response and explode it into `installed_power` rows.

    Labels are `YYYY` (yearly) or `MM.YYYY` (monthly); `period_start` is the first day of that period. The
    label format must match `time_step`.
    """
    country_code = country.strip().lower()
    context = _Context(endpoints.INSTALLED_POWER, f"{time_step} ({country_code})")
    body = _require_object(payload, context)
    labels = body.get("time")
    if not isinstance(labels, list):
        raise context.error("time", f"expected a list of period labels, got {type(labels).__name__}")
    period_starts = [
        _parse_period_label(label, time_step, f"time[{i}]", context) for i, label in enumerate(labels)
    ]
    series = _named_series(body, "production_types", len(labels), "time", context)
    rows: dict[str, list[Any]] = {name: [] for name in INSTALLED_POWER.column_names}
    all_null: list[str] = []
    for item in series:
        if all(value is None for value in item.values):
            all_null.append(item.name)
            continue
        rows["country"].extend([country_code] * len(labels))
        rows["period_start"].extend(period_starts)
        rows["time_step"].extend([time_step] * len(labels))
        rows["production_type"].extend([item.name] * len(labels))
        rows["capacity_gw"].extend(item.values)
    last_update = body.get("last_update")
    if last_update is not None and (isinstance(last_update, bool) or not isinstance(last_update, int)):
        raise context.error("last_update", f"expected UNIX seconds or null, got {last_update!r}")
    return InstalledPowerResponse(
        table=pa.table(rows, schema=INSTALLED_POWER.arrow_schema),
        series_names=tuple(item.name for item in series),
        all_null_series=tuple(all_null),
        last_update=datetime.fromtimestamp(last_update, tz=timezone.utc) if last_update is not None else None,
        deprecated=_deprecated(body, context),
    )


def documented_fields(endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Only the top-level fields `endpoint` documents (`endpoints.DOCUMENTED_FIELDS`), in the payload's order.

    Items of `production_types` keep only `name` and `data`. Raw files are written from this, so a field the
    server adds without documenting it is not copied into every stored day. Values are not validated here.

    >>> documented_fields("price", {"unit": "EUR / MWh", "debug": {"node": 7}, "deprecated": False})
    {'unit': 'EUR / MWh', 'deprecated': False}
    >>> documented_fields("public_power", {"production_types": [{"name": "Solar", "data": [], "id": 3}]})
    {'production_types': [{'name': 'Solar', 'data': []}]}
    """
    fields = endpoints.DOCUMENTED_FIELDS.get(endpoint)
    if fields is None:
        raise ValueError(
            f"no documented fields for endpoint {endpoint!r}; known: {', '.join(endpoints.DOCUMENTED_FIELDS)}"
        )
    body = _require_object(payload, _Context(endpoint, "<any>"))
    kept: dict[str, Any] = {}
    for key, value in body.items():
        if key not in fields:
            continue
        if key == "production_types" and isinstance(value, list):
            value = [
                {name: item[name] for name in item if name in endpoints.NAMED_SERIES_FIELDS}
                if isinstance(item, dict)
                else item
                for item in value
            ]
        kept[key] = value
    return kept


def slice_response(
    payload: Mapping[str, Any], *, start_unix: int, end_unix: int, endpoint: str | None = None
) -> dict[str, Any]:
    """The documented part of a validated time-series response whose timestamps lie in `[start_unix, end_unix)`.

    Used to store a multi-day response as one raw JSON document per day partition, in the API's own shape but
    with only the fields `endpoint` documents (see `documented_fields`). Arrays parallel to `unix_seconds`
    (`price`, `data` of each named series) are cut the same way. Pass `endpoint` (`public_power` or `price`);
    left out, it is read from the shape: a `price` or `unit` field means `/price`, anything else
    `/public_power`.
    """
    if endpoint is None:
        endpoint = endpoints.PRICE if "price" in payload or "unit" in payload else endpoints.PUBLIC_POWER
    body = documented_fields(endpoint, payload)
    timestamps = body.get("unix_seconds") or []
    keep = [i for i, ts in enumerate(timestamps) if start_unix <= ts < end_unix]
    sliced: dict[str, Any] = {}
    for key, value in body.items():
        if key == "unix_seconds" or (
            isinstance(value, list) and key != "production_types" and _parallel(value, timestamps)
        ):
            sliced[key] = [value[i] for i in keep]
        elif key == "production_types" and isinstance(value, list):
            sliced[key] = [
                {**item, "data": [item["data"][i] for i in keep] if item.get("data") is not None else None}
                for item in value
            ]
        else:
            sliced[key] = value
    return sliced


def _parallel(value: list[Any], timestamps: Sequence[Any]) -> bool:
    return len(value) == len(timestamps)


def _require_object(payload: Any, context: _Context) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise context.error("<body>", f"expected a JSON object, got {type(payload).__name__}")
    return payload


def _deprecated(body: Mapping[str, Any], context: _Context) -> bool:
    value = body.get("deprecated", False)
    if not isinstance(value, bool):
        raise context.error("deprecated", f"expected true or false, got {value!r}")
    return value


def _timestamps(body: Mapping[str, Any], field: str, context: _Context, window: LocalDayWindow) -> list[int]:
    raw = body.get(field)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise context.error(field, f"expected a list of UNIX seconds, got {type(raw).__name__}")
    timestamps: list[int] = []
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
            raise context.error(f"{field}[{i}]", f"expected integer UNIX seconds, got {value!r}")
        ts = int(value)
        if not window.contains_unix(ts):
            instant = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
            raise context.error(
                f"{field}[{i}]",
                f"timestamp {ts} ({instant}) lies outside the requested local day(s) {window.describe()}",
            )
        timestamps.append(ts)
    return timestamps


def _interval_minutes(timestamps: Sequence[int], window: LocalDayWindow, context: _Context) -> list[int]:
    """Interval length per point: the smaller gap to a neighbouring distinct timestamp."""
    distinct = sorted(set(timestamps))
    gaps = [distinct[i + 1] - distinct[i] for i in range(len(distinct) - 1)]
    for i, gap in enumerate(gaps):
        if gap % 60:
            instant = datetime.fromtimestamp(distinct[i], tz=timezone.utc).isoformat()
            raise context.error("unix_seconds", f"spacing of {gap} s after {instant} is not whole minutes")
    minutes_by_ts: dict[int, int] = {}
    for i, ts in enumerate(distinct):
        neighbours = [gaps[j] for j in (i - 1, i) if 0 <= j < len(gaps)]
        if neighbours:
            minutes_by_ts[ts] = min(neighbours) // 60
        else:
            minutes_by_ts[ts] = min((window.end_unix - ts) // 60, _LONE_POINT_MAX_MINUTES)
    return [minutes_by_ts[ts] for ts in timestamps]


def _named_series(
    body: Mapping[str, Any], field: str, length: int, length_field: str, context: _Context
) -> list[_Series]:
    raw = body.get(field)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise context.error(field, f"expected a list of {{name, data}} objects, got {type(raw).__name__}")
    seen: dict[str, int] = {}
    series: list[_Series] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise context.error(f"{field}[{i}]", f"expected an object with name and data, got {item!r:.80}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise context.error(f"{field}[{i}].name", f"expected a non-empty string, got {name!r}")
        canonical = canonical_production_type(name)
        if canonical in seen:
            raise context.error(
                f"{field}[{i}].name",
                f"{name!r} is the same series as {field}[{seen[canonical]}] (names match case-insensitively)",
            )
        seen[canonical] = i
        values = _number_array(
            item.get("data"), f"{field}[{i}].data ({name!r})", length, length_field, context
        )
        series.append(_Series(position=i, name=canonical, values=values))
    return series


def _number_array(
    raw: Any, field: str, length: int, length_field: str, context: _Context
) -> list[float | None]:
    if raw is None:
        return [None] * length
    if not isinstance(raw, list):
        raise context.error(field, f"expected a list of numbers, got {type(raw).__name__}")
    if len(raw) != length:
        raise context.error(field, f"has {len(raw)} values but {length_field} has {length}")
    values: list[float | None] = []
    for i, value in enumerate(raw):
        if value is None:
            values.append(None)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise context.error(f"{field}[{i}]", f"expected a number or null, got {value!r}")
        else:
            values.append(float(value))
    return values


def _parse_period_label(label: Any, time_step: str, field: str, context: _Context) -> date:
    if not isinstance(label, str):
        raise context.error(field, f"expected a period label string, got {label!r}")
    text = label.strip()
    try:
        if time_step == "yearly" and len(text) == 4 and text.isdigit():
            return date(int(text), 1, 1)
        if time_step == "monthly" and len(text) == 7 and text[2] == ".":
            return date(int(text[3:]), int(text[:2]), 1)
    except ValueError:
        pass
    expected = "YYYY" if time_step == "yearly" else "MM.YYYY"
    raise context.error(field, f"label {label!r} is not a {time_step} label ({expected})")


def _build_table(columns: Mapping[str, list[Any]], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "interval_start":
            # A zero-copy view: a cast to a zoned timestamp costs about 0.5 ms per call (732 in a year).
            arrays.append(pa.array([ts * 1_000_000 for ts in values], pa.int64()).view(UTC_TIMESTAMP))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
