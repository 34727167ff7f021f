"""Builds small BDG2-shaped zips: the bundled sample (`sample/`) and the archives the tests need.

Synthetic data in the real shapes and with the real quirks: one top folder, `data/meters/{raw,cleaned}/...`,
`data/metadata/metadata.csv` (32 columns, `Yes`/empty flags, sparse columns) and `data/weather/weather.csv`
(long, about half the cloud coverage empty); meter files wide with CRLF line endings, no BOM, empty cells, an
all-empty building column and floats with representation noise (`14763.098999999998`). Output is byte-for-byte
reproducible (fixed zip timestamps, fixed order), so regenerating the sample changes nothing unless the data does.

Regenerate the bundled sample with `python -m energy_assets.sources.buildings.sample_builder`.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from energy_assets.sources.buildings.archive import METADATA_MEMBER, WEATHER_MEMBER, MeterKind, meter_member
from energy_assets.sources.buildings.metadata import SOURCE_COLUMNS
from energy_assets.sources.buildings.settings import BDG2_DOI, BDG2_FILE_KEY, DEFAULT_BDG2_ZENODO_RECORD

TOP_FOLDER = "buds-lab-building-data-genome-project-2-3d0cbaf"
ZIP_DATE_TIME = (2020, 6, 7, 12, 0, 0)
SAMPLE_DIR = Path(__file__).parent / "sample"
SAMPLE_ZIP_NAME = "bdg2_sample.zip"
SAMPLE_RECORD_NAME = f"record_{DEFAULT_BDG2_ZENODO_RECORD}.json"
SAMPLE_START = datetime(2016, 1, 1)
SAMPLE_HOURS = 24 * 31  # January 2016: a month keeps the bundled zip small


@dataclass(frozen=True)
class SampleSite:
    site_id: str
    timezone: str
    lat: float
    lng: float
    base_temperature_c: float


@dataclass(frozen=True)
class SampleBuilding:
    building_id: str
    primaryspaceusage: str
    sqm: float | None
    base_kwh: float
    meters: tuple[str, ...]
    yearbuilt: int | None = None


SITES: tuple[SampleSite, ...] = (
    SampleSite("Panther", "US/Eastern", 28.517689, -81.379039, 16.0),
    SampleSite("Fox", "US/Mountain", 33.424425, -111.928025, 12.0),
    SampleSite("Robin", "Europe/London", 51.5185, -0.13, 6.0),
)
BUILDINGS: tuple[SampleBuilding, ...] = (
    SampleBuilding(
        "Panther_office_Hannah", "Office", 1200.5, 42.0, ("electricity", "chilledwater", "water"), 1995
    ),
    SampleBuilding("Panther_parking_Lorriane", "Parking", 3500.0, 8.0, ("electricity",), None),
    SampleBuilding(
        "Panther_lodging_Cora", "Lodging/residential", 8000.0, 120.0, ("electricity", "hotwater"), 1970
    ),
    SampleBuilding(
        "Fox_education_Ollie", "Education", 5100.0, 300.0, ("electricity", "chilledwater", "gas"), 2004
    ),
    SampleBuilding("Fox_office_Zachary", "Office", None, 55.0, ("electricity", "gas"), None),
    SampleBuilding("Robin_education_Celia", "Education", 2500.0, 90.0, ("electricity", "gas", "water"), 1962),
)
# A building column that is present but never has a reading (the real files have such columns).
ALL_EMPTY = ("electricity", "Panther_parking_Lorriane")
NOISY_VALUE = "257.40000000000003"  # representation noise, as in `14763.098999999998`


def hourly(start: datetime, hours: int) -> list[datetime]:
    return [start + timedelta(hours=hour) for hour in range(hours)]


def format_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_reading(value: float | None) -> str:
    """Empty for a missing reading; otherwise Python's shortest repr (what pandas wrote into BDG2)."""
    return "" if value is None else repr(float(value))


def wide_csv(timestamps: Sequence[datetime], columns: Mapping[str, Sequence[float | str | None]]) -> bytes:
    """A meter file: `timestamp` + one column per building, CRLF line endings, empty cells for None."""
    lines = [",".join(["timestamp", *columns])]
    for row, moment in enumerate(timestamps):
        cells = [
            value if isinstance(value, str) else format_reading(value)
            for value in (c[row] for c in columns.values())
        ]
        lines.append(",".join([format_timestamp(moment), *cells]))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def lfs_pointer(size: int = 174_239_039) -> bytes:
    """A Git LFS pointer file as found in git copies of BDG2."""
    oid = hashlib.sha256(str(size).encode()).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def _reading(building: SampleBuilding, meter: str, hour: int, raw: bool) -> float | None:
    factor = {
        "electricity": 1.0,
        "chilledwater": 2.5,
        "hotwater": 0.8,
        "gas": 1.6,
        "steam": 3.0,
        "water": 0.35,
    }[meter]
    daily = 1.0 + 0.35 * math.sin(2 * math.pi * ((hour % 24) - 8) / 24)
    weekly = 0.75 if (hour // 24) % 7 in (1, 2) else 1.0  # 2016-01-02/03 was a weekend
    value = round(building.base_kwh * factor * daily * weekly, 3)
    seed = sum(map(ord, building.building_id + meter))
    if (hour + seed) % 37 == 0:
        return None  # a missing reading
    if raw and (hour + seed) % 53 == 0:
        return round(value * 4.0, 3)  # a spike the cleaned series removed
    return value


def meter_csvs(
    start: datetime = SAMPLE_START, hours: int = SAMPLE_HOURS, buildings: Sequence[SampleBuilding] = BUILDINGS
) -> dict[str, bytes]:
    """Member path -> bytes of every meter file (raw and cleaned) the buildings have."""
    stamps = hourly(start, hours)
    result = {}
    meters = sorted({meter for building in buildings for meter in building.meters})
    for meter in meters:
        for kind in MeterKind:
            columns: dict[str, list[float | str | None]] = {}
            for building in buildings:
                if meter not in building.meters:
                    continue
                if (meter, building.building_id) == ALL_EMPTY:
                    columns[building.building_id] = [None] * hours
                    continue
                series: list[float | str | None] = [
                    _reading(building, meter, hour, kind is MeterKind.RAW) for hour in range(hours)
                ]
                if meter == "electricity" and building.building_id.startswith("Fox_education"):
                    series[5] = NOISY_VALUE
                columns[building.building_id] = series
            result[meter_member(meter, kind)] = wide_csv(stamps, columns)
    return result


def metadata_csv(
    buildings: Sequence[SampleBuilding] = BUILDINGS, sites: Sequence[SampleSite] = SITES
) -> bytes:
    """`metadata.csv` with the real 32 columns; most optional columns left empty as in the real file."""
    by_site = {site.site_id: site for site in sites}
    lines = [",".join(SOURCE_COLUMNS)]
    for number, building in enumerate(buildings):
        site = by_site[building.building_id.split("_", 1)[0]]
        row = dict.fromkeys(SOURCE_COLUMNS, "")
        row.update(
            building_id=building.building_id,
            site_id=site.site_id,
            building_id_kaggle=str(100 + number) if number % 2 == 0 else "",
            site_id_kaggle=str(sites.index(site)) if number % 2 == 0 else "",
            primaryspaceusage=building.primaryspaceusage,
            sqm="" if building.sqm is None else repr(building.sqm),
            sqft="" if building.sqm is None else repr(round(building.sqm * 10.7639, 1)),
            lat=repr(site.lat),
            lng=repr(site.lng),
            timezone=site.timezone,
            yearbuilt="" if building.yearbuilt is None else f"{building.yearbuilt}.0",
            numberoffloors="3" if number % 3 == 0 else "",
            heatingtype="Gas" if "gas" in building.meters else "",
        )
        for meter in building.meters:
            row[meter] = "Yes"
        lines.append(",".join(row[name] for name in SOURCE_COLUMNS))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def weather_csv(
    start: datetime = SAMPLE_START, hours: int = SAMPLE_HOURS, sites: Sequence[SampleSite] = SITES
) -> bytes:
    """Long `weather.csv`: every site and hour; cloud coverage empty every other hour, 6-hour rain mostly empty."""
    header = "timestamp,site_id,airTemperature,cloudCoverage,dewTemperature,precipDepth1HR,precipDepth6HR,seaLvlPressure,windDirection,windSpeed"
    lines = [header]
    for site in sites:
        for hour, moment in enumerate(hourly(start, hours)):
            temperature = round(
                site.base_temperature_c + 5.0 * math.sin(2 * math.pi * ((hour % 24) - 9) / 24), 1
            )
            cloud = "" if hour % 2 else str(hour % 9)
            rain6 = "" if hour % 6 else "0.0"
            lines.append(
                f"{format_timestamp(moment)},{site.site_id},{temperature},{cloud},{round(temperature - 4.2, 1)},"
                f"0.0,{rain6},{1013.0 + hour % 7},{(hour * 10) % 360}.0,{round(2.1 + hour % 5 * 0.5, 1)}"
            )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def default_members() -> dict[str, bytes]:
    """Every member of the sample archive, by path below the top folder."""
    return {**meter_csvs(), METADATA_MEMBER: metadata_csv(), WEATHER_MEMBER: weather_csv()}


def build_bdg2_zip(
    path: str | Path,
    members: Mapping[str, bytes] | None = None,
    *,
    top_folder: str = TOP_FOLDER,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a BDG2-shaped zip holding `members` (default: the sample data) below `top_folder`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = default_members() if members is None else members
    with zipfile.ZipFile(path, "w") as archive:
        folders = sorted(
            {
                f"{top_folder}/{'/'.join(name.split('/')[:depth])}/"
                for name in members
                for depth in range(1, name.count("/") + 1)
            }
        )
        for folder in [f"{top_folder}/", *folders]:
            archive.writestr(zipfile.ZipInfo(folder, ZIP_DATE_TIME), b"")
        for name in sorted(members):
            info = zipfile.ZipInfo(f"{top_folder}/{name}", ZIP_DATE_TIME)
            info.compress_type = compression
            archive.writestr(info, members[name], compresslevel=9)
    return path


def zenodo_record(
    record_id: int,
    files: Mapping[str, bytes | Path],
    *,
    base_url: str = "https://zenodo.org",
    concept_record_id: str = "3887305",
    version: str = "v1.0",
    checksum_prefix: bool = True,
) -> dict:
    """A `GET /api/records/{id}` body (legacy-compatible shape) listing `files` (key -> content or path)."""
    entries = []
    for key, content in files.items():
        data = content.read_bytes() if isinstance(content, Path) else content
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        entries.append(
            {
                "id": hashlib.md5(key.encode(), usedforsecurity=False).hexdigest(),
                "key": key,
                "size": len(data),
                "checksum": f"md5:{digest}" if checksum_prefix else digest,
                "links": {"self": f"{base_url}/api/records/{record_id}/files/{quote(key, safe='')}/content"},
            }
        )
    return {
        "id": record_id,
        "recid": str(record_id),
        "conceptrecid": concept_record_id,
        "doi": f"10.5281/zenodo.{record_id}",
        "conceptdoi": f"10.5281/zenodo.{concept_record_id}",
        "status": "published",
        "metadata": {
            "title": "The Building Data Genome Project 2 (synthetic sample in the real shapes)",
            "doi": f"10.5281/zenodo.{record_id}",
            "publication_date": "2020-06-07",
            "version": version,
            "access_right": "open",
            "license": {"id": "cc-by-4.0"},
        },
        "files": entries,
        "links": {
            "self": f"{base_url}/api/records/{record_id}",
            "latest": f"{base_url}/api/records/{record_id}/versions/latest",
            "versions": f"{base_url}/api/records/{record_id}/versions",
        },
    }


def write_sample(directory: Path = SAMPLE_DIR) -> Path:
    """Regenerate the bundled sample: the zip, its record and `index.json`."""
    directory.mkdir(parents=True, exist_ok=True)
    zip_path = build_bdg2_zip(directory / SAMPLE_ZIP_NAME)
    record = zenodo_record(int(DEFAULT_BDG2_ZENODO_RECORD), {BDG2_FILE_KEY: zip_path})
    (directory / SAMPLE_RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    index = {
        "note": (
            f"Synthetic BDG2-shaped sample standing in for Zenodo record {DEFAULT_BDG2_ZENODO_RECORD} ({BDG2_DOI}):"
            " real file key, layout, columns and quirks; invented buildings, readings and weather; size and md5 are"
            " the sample zip's. Regenerate with `python -m energy_assets.sources.buildings.sample_builder`."
        ),
        "records": [{"record": SAMPLE_RECORD_NAME, "files": {BDG2_FILE_KEY: SAMPLE_ZIP_NAME}}],
    }
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n", "utf-8")
    return zip_path


if __name__ == "__main__":
    written = write_sample()
    print(f"{written} ({written.stat().st_size:,} bytes)")
