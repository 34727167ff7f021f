"""Recorded Energy-Charts responses and a client that answers from them, so the whole graph runs offline.

A recording folder holds JSON bodies exactly as the API sent them plus `index.json`:

    {"responses": [{"endpoint": "price", "params": {"bzn": "DE-LU", "start": "2025-03-30",
                    "end": "2025-03-30"}, "file": "price_DE-LU_2025-03-30.json", "note": "..."}]}

`params` are the exact query parameters `endpoints.*_params` build. The bundled sample (`sample/`) covers
`SAMPLE_DAYS`; tests add folders of odd cases on top. A multi-day request that was not recorded as such is
answered by joining the single-day recordings of every day in the range, which is what the API returns for a
range; anything else raises `SnapshotNotRecordedError` listing what is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from energy_assets.sources.energy_charts import endpoints
from energy_assets.sources.energy_charts.client import EnergyChartsClient
from energy_assets.sources.energy_charts.errors import SnapshotNotRecordedError
from energy_assets.sources.energy_charts.local_days import days_between
from energy_assets.sources.energy_charts.responses import parse_json_body

SAMPLE_DIR = Path(__file__).parent / "sample"
INDEX_FILE = "index.json"

# The local days the bundled sample covers for /public_power (de) and /price (DE-LU).
SAMPLE_DAYS: tuple[date, ...] = (
    date(2023, 12, 31),  # a normal winter day: 96 quarter hours, hourly prices
    date(2025, 3, 30),  # spring DST: 92 quarter hours, 23 hourly prices
    date(2025, 9, 30),  # last hourly price day (24 values)
    date(2025, 10, 1),  # first quarter-hourly price day (96 values)
    date(2025, 10, 26),  # autumn DST: 100 quarter hours, 100 quarter-hourly prices
)


@dataclass(frozen=True)
class Recording:
    """One recorded response: which request it answers and the file holding the body."""

    endpoint: str
    params: dict[str, str]
    file: str
    note: str = ""

    def request_line(self) -> str:
        query = "&".join(f"{key}={value}" for key, value in self.params.items())
        return f"/{self.endpoint}?{query}"


@dataclass
class SnapshotIndex:
    """The recordings of one folder, looked up by (endpoint, params)."""

    root: Path
    recordings: list[Recording] = field(default_factory=list)

    @classmethod
    def load(cls, root: Path) -> SnapshotIndex:
        index_path = root / INDEX_FILE
        try:
            document = json.loads(index_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"no recording index at {index_path}") from exc
        recordings = [
            Recording(
                endpoint=item["endpoint"],
                params={key: str(value) for key, value in item["params"].items()},
                file=item["file"],
                note=item.get("note", ""),
            )
            for item in document["responses"]
        ]
        return cls(root=root, recordings=recordings)

    def find(self, endpoint: str, params: Mapping[str, str]) -> Recording | None:
        wanted = {key: str(value) for key, value in params.items()}
        for recording in self.recordings:
            if recording.endpoint == endpoint and recording.params == wanted:
                return recording
        return None

    def path_of(self, recording: Recording) -> Path:
        return self.root / recording.file

    def read_bytes(self, recording: Recording) -> bytes:
        return self.path_of(recording).read_bytes()


class SnapshotEnergyChartsClient(EnergyChartsClient):
    """Answers from recorded responses (the bundled sample by default); never touches the network."""

    def __init__(self, roots: Path | str | Sequence[Path | str] = SAMPLE_DIR) -> None:
        super().__init__()
        folders = [roots] if isinstance(roots, (str, Path)) else list(roots)
        # Later folders win, so test fixtures can override sample recordings.
        self.indexes = [SnapshotIndex.load(Path(folder)) for folder in reversed(folders)]

    def describe(self) -> str:
        return f"SnapshotEnergyChartsClient({', '.join(str(index.root) for index in self.indexes)})"

    def recorded_requests(self) -> list[str]:
        return sorted({recording.request_line() for index in self.indexes for recording in index.recordings})

    def get_json(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any]:
        found = self._read(endpoint, params)
        if found is not None:
            return found
        if "start" in params and "end" in params and params["start"] < params["end"]:
            joined = self._join_days(endpoint, params)
            if joined is not None:
                return joined
        recorded = "\n  ".join(self.recorded_requests())
        raise SnapshotNotRecordedError(
            endpoint,
            params,
            f"not recorded; recorded requests are:\n  {recorded}\n"
            "Use a recorded day, or set ENERGY_ASSETS_SOURCE=live to ask the real API.",
        )

    def _read(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        for index in self.indexes:
            recording = index.find(endpoint, params)
            if recording is not None:
                # The recording's file stands in for the partition, so a damaged file is named in the error.
                partition = f"{endpoints.partition_of(params)} in {index.path_of(recording)}"
                return parse_json_body(index.read_bytes(recording), endpoint=endpoint, partition=partition)
        return None

    def _join_days(self, endpoint: str, params: Mapping[str, str]) -> dict[str, Any] | None:
        first, last = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
        bodies = []
        for day in days_between(first, last):
            day_params = {**params, "start": day.isoformat(), "end": day.isoformat()}
            body = self._read(endpoint, day_params)
            if body is None:
                return None
            bodies.append(body)
        if endpoint == endpoints.PRICE:
            return join_price_days(bodies)
        return join_named_series_days(bodies)


def join_price_days(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Consecutive single-day `/price` bodies as the one body a range request returns."""
    joined: dict[str, Any] = dict(bodies[-1])
    joined["unix_seconds"] = [ts for body in bodies for ts in body.get("unix_seconds") or []]
    joined["price"] = [value for body in bodies for value in body.get("price") or []]
    joined["deprecated"] = any(body.get("deprecated", False) for body in bodies)
    return joined


def join_named_series_days(bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Consecutive single-day `/public_power` bodies as one; a series missing on a day is null there."""
    names: list[str] = []
    for body in bodies:
        for item in body.get("production_types") or []:
            if item["name"] not in names:
                names.append(item["name"])
    data: dict[str, list[Any]] = {name: [] for name in names}
    unix_seconds: list[int] = []
    for body in bodies:
        day_seconds = body.get("unix_seconds") or []
        unix_seconds.extend(day_seconds)
        by_name = {item["name"]: item.get("data") for item in body.get("production_types") or []}
        for name in names:
            values = by_name.get(name)
            data[name].extend(values if values is not None else [None] * len(day_seconds))
    joined: dict[str, Any] = dict(bodies[-1])
    joined["unix_seconds"] = unix_seconds
    joined["production_types"] = [{"name": name, "data": data[name]} for name in names]
    joined["deprecated"] = any(body.get("deprecated", False) for body in bodies)
    return joined
