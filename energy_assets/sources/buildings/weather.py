"""`data/weather/weather.csv` -> the `buildings.weather` Arrow table.

The file is long: `timestamp, site_id, airTemperature, cloudCoverage, dewTemperature, precipDepth1HR,
precipDepth6HR, seaLvlPressure, windDirection, windSpeed` (331,166 rows; cloudCoverage about half empty). Columns
are renamed with their units (`air_temperature_c`, ...; see `tables.WEATHER_COLUMNS`), timestamps must be whole
hours and become instants by the same convention as the meters (`timestamps.clock_offsets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from energy_assets.sources.buildings.archive import WEATHER_MEMBER, Bdg2Archive
from energy_assets.sources.buildings.errors import Bdg2CsvError
from energy_assets.sources.buildings.readings import HOUR_S, TIMESTAMP_FORMAT, locate_csv_problem
from energy_assets.sources.buildings.tables import WEATHER, WEATHER_COLUMNS


def weather_table(archive: Bdg2Archive, *, utc_offset_minutes: Mapping[str, int] | None = None) -> pa.Table:
    """The archive's weather as a table with the `WEATHER` schema."""
    member = archive.describe(WEATHER_MEMBER)
    with archive.open(WEATHER_MEMBER) as stream:
        try:
            return read_weather_csv(stream, member, utc_offset_minutes=utc_offset_minutes)
        except _NeedsLocating:
            pass
    with archive.open(WEATHER_MEMBER) as stream:
        located = locate_csv_problem(stream, member, text_columns=frozenset({"site_id"}))
    raise located or Bdg2CsvError(member, "cannot be parsed as CSV")


class _NeedsLocating(Exception):
    pass


def read_weather_csv(
    stream: IO[bytes], member: str, *, utc_offset_minutes: Mapping[str, int] | None = None
) -> pa.Table:
    """Parse a weather CSV stream (a parse error raises `_NeedsLocating` for the caller to pin down)."""
    column_types = {"timestamp": pa.timestamp("s"), "site_id": pa.string()}
    column_types.update(dict.fromkeys(WEATHER_COLUMNS, pa.float64()))
    try:
        raw = pacsv.read_csv(
            stream,
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                null_values=[""],
                strings_can_be_null=True,
                timestamp_parsers=[TIMESTAMP_FORMAT],
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _NeedsLocating(str(exc)) from None
    missing = [name for name in column_types if name not in raw.column_names]
    if missing:
        raise Bdg2CsvError(member, f"columns {missing} are missing from the header", line=1)
    for name in ("timestamp", "site_id"):
        if raw.column(name).null_count:
            row = raw.column(name).is_null().to_pylist().index(True)
            raise Bdg2CsvError(member, "empty", line=row + 2, column=name)
    seconds = raw.column("timestamp").combine_chunks().cast(pa.int64()).to_numpy()
    off_grid = np.flatnonzero(seconds % HOUR_S)
    if off_grid.size:
        row = int(off_grid[0])
        raise Bdg2CsvError(
            member,
            f"timestamp {raw.column('timestamp')[row].as_py()} is not on the hourly grid",
            line=row + 2,
            column="timestamp",
        )
    sites = raw.column("site_id").combine_chunks()
    micros = seconds * 1_000_000
    if utc_offset_minutes and any(utc_offset_minutes.values()):
        names = pc.unique(sites).to_pylist()
        unknown = sorted(set(names) - set(utc_offset_minutes))
        if unknown:
            raise Bdg2CsvError(member, f"sites {unknown} have no time zone in the metadata", column="site_id")
        site_index = pc.index_in(sites, value_set=pa.array(names)).to_numpy()
        offsets = np.array([utc_offset_minutes[name] * 60_000_000 for name in names], dtype=np.int64)
        micros = micros - offsets[site_index]
    columns = {
        "site_id": sites,
        "timestamp": pa.array(micros, WEATHER.column("timestamp").arrow_type),
        **{target: raw.column(source) for source, target in WEATHER_COLUMNS.items()},
    }
    return WEATHER.conform(pa.table(columns))
