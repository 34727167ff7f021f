"""BDG2 archives and the wide -> long meter conversion: exact cells, odd archives, bad input named precisely."""

from __future__ import annotations

import csv
import io
import math
import random
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from energy_assets.archive_limits import FileLimitError, FileLimits
from energy_assets.files import NotARegularFileError
from energy_assets.sources.buildings import meter_blocks
from energy_assets.sources.buildings.archive import METADATA_MEMBER, Bdg2Archive, meter_member
from energy_assets.sources.buildings.errors import (
    Bdg2CsvError,
    CorruptArchiveError,
    LfsPointerError,
    MissingMemberError,
)
from energy_assets.sources.buildings.readings import convert_meter, convert_meter_file
from energy_assets.sources.buildings.sample_builder import (
    build_bdg2_zip,
    hourly,
    lfs_pointer,
    metadata_csv,
    wide_csv,
)
from energy_assets_tests.hostile_files import bdg2_long_line_bomb, fifo_with_a_writer, run_measured

START = datetime(2016, 1, 1)
ELECTRICITY = meter_member("electricity")
HOURS = 30
BUILDINGS = (
    "Panther_office_Hannah",
    "Panther_parking_Lorriane",
    "Fox_education_Ollie",
    "Robin_education_Celia",
)


def _series(building: str, hours: int = HOURS) -> list[float | str | None]:
    if building == "Panther_parking_Lorriane":
        return [None] * hours  # an all-empty column
    values: list[float | str | None] = []
    for hour in range(hours):
        if (hour + len(building)) % 4 == 0:
            values.append(None)
        else:
            values.append(round(10.0 + hour * 0.25 + len(building), 3))
    if building == "Fox_education_Ollie":
        values[7] = "14763.098999999998"  # representation noise as in the real files
    return values


def electricity_csv(hours: int = HOURS) -> bytes:
    return wide_csv(hourly(START, hours), {building: _series(building, hours) for building in BUILDINGS})


def make_zip(tmp_path: Path, members: dict[str, bytes], name: str = "bdg2.zip", **options: object) -> Path:
    return build_bdg2_zip(tmp_path / name, members, **options)  # type: ignore[arg-type]


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def test_the_long_parquet_holds_exactly_the_non_empty_cells(tmp_path: Path) -> None:
    content = electricity_csv()
    assert b"\r\n" in content and not content.startswith(b"\xef\xbb\xbf")
    archive_path = make_zip(tmp_path, {ELECTRICITY: content})
    destination = tmp_path / "out" / "electricity.parquet"

    with Bdg2Archive(archive_path) as archive:
        stats = convert_meter(archive, "electricity", destination)

    expected = {}
    for row in list(csv.reader(io.StringIO(content.decode(), newline="")))[1:]:
        moment = datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
        for building, cell in zip(BUILDINGS, row[1:], strict=True):
            if cell:
                expected[(building, moment)] = float(cell)
    table = pq.read_table(destination)
    got = {
        (row["building_id"], row["timestamp"]): row["reading"]
        for row in table.to_pylist()
        if row["meter"] == "electricity" and row["unit"] == "kWh"
    }
    assert got == expected
    assert table.num_rows == len(expected)
    assert table.schema.field("building_id").type == "string"
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert set(table.column("site_id").to_pylist()) == {"Panther", "Fox", "Robin"}
    assert got[("Fox_education_Ollie", datetime(2016, 1, 1, 7, tzinfo=timezone.utc))] == 14763.098999999998
    assert stats.rows == HOURS
    assert stats.buildings == 4
    assert stats.values == len(expected)
    assert stats.empty_cells == 4 * HOURS - len(expected)
    assert stats.empty_buildings == ("Panther_parking_Lorriane",)
    assert (stats.first_timestamp, stats.last_timestamp) == (START, START + timedelta(hours=HOURS - 1))
    assert stats.parquet_bytes == destination.stat().st_size
    assert leftovers(destination.parent) == ["electricity.parquet"]


def test_streaming_across_many_blocks_gives_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_path = make_zip(tmp_path, {ELECTRICITY: electricity_csv(hours=400)})
    with Bdg2Archive(archive_path) as archive:
        whole = convert_meter(archive, "electricity", tmp_path / "whole.parquet")
        monkeypatch.setattr(meter_blocks, "CHUNK_BYTES", 2048)
        blocks = convert_meter(archive, "electricity", tmp_path / "blocks.parquet")

    assert pq.ParquetFile(tmp_path / "blocks.parquet").metadata.num_row_groups > 5
    assert blocks.values == whole.values
    sort = [("building_id", "ascending"), ("timestamp", "ascending")]
    assert (
        pq.read_table(tmp_path / "blocks.parquet")
        .sort_by(sort)
        .equals(pq.read_table(tmp_path / "whole.parquet").sort_by(sort))
    )


def test_spelled_out_nan_and_infinity_stay_readings_for_the_audit_to_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Empty cells are dropped; a cell that says NaN or inf is not empty: it is kept (the publish audit's
    # `finite` rule then refuses the meter), whether its chunk goes the fast path or not.
    series = {building: _series(building, 40) for building in BUILDINGS}
    series["Panther_office_Hannah"][3] = "NaN"
    series["Robin_education_Celia"][35] = "inf"
    archive_path = make_zip(tmp_path, {ELECTRICITY: wide_csv(hourly(START, 40), series)})
    monkeypatch.setattr(meter_blocks, "CHUNK_BYTES", 1024)  # chunks without the spelled-out values too
    with Bdg2Archive(archive_path) as archive:
        stats = convert_meter(archive, "electricity", tmp_path / "long.parquet")

    rows = pq.read_table(tmp_path / "long.parquet").to_pylist()
    expected = sum(value is not None for values in series.values() for value in values)
    assert stats.values == len(rows) == expected
    odd = {
        (row["building_id"], row["timestamp"].hour): row["reading"]
        for row in rows
        if not math.isfinite(row["reading"])
    }
    assert set(odd) == {("Panther_office_Hannah", 3), ("Robin_education_Celia", 11)}
    assert math.isnan(odd[("Panther_office_Hannah", 3)]) and odd[("Robin_education_Celia", 11)] == math.inf


class _Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes per read, as a zip member or a socket may."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.position = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self.data[self.position : self.position + min(self.step, len(buffer))]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


def test_pieces_end_at_line_ends_and_lose_nothing() -> None:
    # Every byte comes back once, in order; each piece but the last ends with a line end, also for lines
    # longer than a piece, CRLF, a missing final line end, and streams that trickle a few bytes per read.
    rng = random.Random(20160101)
    for _ in range(300):
        lines = [
            "".join(rng.choice("0123456789.,") for _ in range(rng.randint(0, 40)))
            + rng.choice(["\n", "\r\n"])
            for _ in range(rng.randint(0, 30))
        ]
        data = "".join(lines).encode()
        if data and rng.random() < 0.3:
            data = data.rstrip(b"\r\n")  # no line end after the last line
        pieces = [
            piece.to_pybytes()
            for piece in meter_blocks.line_chunks(_Trickle(data, rng.randint(1, 50)), rng.randint(1, 64))
        ]
        assert b"".join(pieces) == data
        assert all(piece for piece in pieces)
        assert all(piece.endswith(b"\n") for piece in pieces[:-1])


def test_members_are_found_below_any_top_folder_or_none(tmp_path: Path) -> None:
    for options in ({"top_folder": "buds-lab-building-data-genome-project-2-0000000"}, {"top_folder": "x"}):
        path = make_zip(tmp_path, {ELECTRICITY: electricity_csv()}, **options)
        with Bdg2Archive(path) as archive:
            assert archive.available_meters() == ["electricity"]
            assert archive.top_folder == options["top_folder"]
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        archive.writestr(ELECTRICITY, electricity_csv())
    with Bdg2Archive(flat) as archive:
        assert archive.top_folder is None
        assert archive.available_meters() == ["electricity"]


def test_raw_is_selectable_and_cleaned_is_the_default(tmp_path: Path) -> None:
    raw = wide_csv(hourly(START, 2), {"Panther_office_Hannah": [1.0, 2.0]})
    cleaned = wide_csv(hourly(START, 2), {"Panther_office_Hannah": [1.0, None]})
    path = make_zip(tmp_path, {meter_member("gas", "raw"): raw, meter_member("gas"): cleaned})

    with Bdg2Archive(path) as archive:
        assert convert_meter(archive, "gas", tmp_path / "c.parquet").values == 1
        assert convert_meter(archive, "gas", tmp_path / "r.parquet", kind="raw").values == 2


def test_site_standard_time_shifts_each_site_by_its_standard_offset(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: electricity_csv()})
    with Bdg2Archive(path) as archive:
        convert_meter(
            archive,
            "electricity",
            tmp_path / "e.parquet",
            utc_offset_minutes={"Panther": -300, "Fox": -420, "Robin": 0},
        )
    table = pq.read_table(tmp_path / "e.parquet")
    first = {row["building_id"]: row["timestamp"] for row in table.to_pylist()[::-1]}

    assert first["Panther_office_Hannah"] == datetime(2016, 1, 1, 5, tzinfo=timezone.utc)
    assert first["Fox_education_Ollie"] == datetime(2016, 1, 1, 7, tzinfo=timezone.utc)
    assert first["Robin_education_Celia"] == datetime(2016, 1, 1, 0, tzinfo=timezone.utc)


def test_an_lfs_pointer_instead_of_a_csv_is_refused(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: lfs_pointer()})

    with Bdg2Archive(path) as archive, pytest.raises(LfsPointerError) as raised:
        convert_meter(archive, "electricity", tmp_path / "out" / "e.parquet")

    message = str(raised.value)
    assert "bdg2.zip:data/meters/cleaned/electricity_cleaned.csv is a Git LFS pointer file" in message
    assert "size 174239039" in message
    assert leftovers(tmp_path / "out") == []


def test_an_lfs_pointer_instead_of_the_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "building-data-genome-project-2-v1.0.zip"
    path.write_bytes(lfs_pointer(595_266_464))

    with pytest.raises(LfsPointerError, match="is a Git LFS pointer file"):
        Bdg2Archive(path)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bdg2.zip"
    path.write_bytes(b"<html>not a zip</html>" * 50)

    with pytest.raises(CorruptArchiveError, match="is not a readable zip"):
        Bdg2Archive(path)


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    whole = make_zip(tmp_path, {ELECTRICITY: electricity_csv()}).read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(whole[: len(whole) // 2])

    with pytest.raises(CorruptArchiveError, match="delete it from the download cache"):
        Bdg2Archive(truncated)


def test_a_member_with_corrupt_data_is_refused_and_publishes_nothing(tmp_path: Path) -> None:
    content = electricity_csv(hours=400)
    path = make_zip(tmp_path, {ELECTRICITY: content})
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"buds-lab-building-data-genome-project-2-3d0cbaf/{ELECTRICITY}")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))

    with Bdg2Archive(path) as archive, pytest.raises(CorruptArchiveError, match="electricity_cleaned.csv"):
        convert_meter(archive, "electricity", tmp_path / "out" / "e.parquet")
    assert leftovers(tmp_path / "out") == []


def test_a_missing_member_is_named(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {METADATA_MEMBER: metadata_csv(), meter_member("gas"): electricity_csv()})

    with Bdg2Archive(path) as archive, pytest.raises(MissingMemberError) as raised:
        convert_meter(archive, "electricity", tmp_path / "e.parquet")

    message = str(raised.value)
    assert "no member 'data/meters/cleaned/electricity_cleaned.csv'" in message
    assert "data/meters/cleaned/gas_cleaned.csv" in message


def _broken(lines_to_replace: dict[int, str], hours: int = HOURS) -> bytes:
    """The electricity file with some physical lines (1 = header) replaced."""
    lines = electricity_csv(hours).decode().split("\r\n")
    for number, text in lines_to_replace.items():
        lines[number - 1] = text
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("line", "text", "column", "problem"),
    [
        (5, "2016-01-01 03:00:00,1.0,,2.0", None, "ragged row: 4 fields where the header has 5"),
        (4, "2016-01-01 02:00:00,1.0,,abc,2.0", "Fox_education_Ollie", "value 'abc' is not a number"),
        (3, "01/01/2016 01:00,1.0,,2.0,3.0", "timestamp", "does not parse as YYYY-MM-DD HH:MM:SS"),
        (6, "2016-01-01 04:30:00,1.0,,2.0,3.0", "timestamp", "not on the hourly grid"),
        (7, "2016-01-01 04:00:00,1.0,,2.0,3.0", "timestamp", "repeats the line before"),
    ],
)
def test_bad_input_names_member_line_and_column_and_publishes_nothing(
    tmp_path: Path, line: int, text: str, column: str | None, problem: str
) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: _broken({line: text})})
    destination = tmp_path / "out" / "electricity.parquet"

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError) as raised:
        convert_meter(archive, "electricity", destination)

    error = raised.value
    assert error.member == "bdg2.zip:data/meters/cleaned/electricity_cleaned.csv"
    assert (error.line, error.column) == (line, column)
    assert problem in str(error)
    assert f"line {line}" in str(error)
    assert "Nothing from this member was published" in str(error)
    assert leftovers(destination.parent) == []


def test_bad_input_in_a_later_block_is_located_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter_blocks, "CHUNK_BYTES", 2048)
    path = make_zip(tmp_path, {ELECTRICITY: _broken({350: "2016-01-15 12:00:00,1.0,,x1,2.0"}, hours=400)})

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError) as raised:
        convert_meter(archive, "electricity", tmp_path / "out" / "e.parquet")

    assert (raised.value.line, raised.value.column) == (350, "Fox_education_Ollie")


def test_off_grid_in_a_later_block_names_the_right_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meter_blocks, "CHUNK_BYTES", 2048)
    path = make_zip(tmp_path, {ELECTRICITY: _broken({300: "2016-01-13 10:00:01,1.0,,3.0,2.0"}, hours=400)})

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError, match="not on the hourly grid") as raised:
        convert_meter(archive, "electricity", tmp_path / "out" / "e.parquet")

    assert raised.value.line == 300


@pytest.mark.parametrize(
    ("header", "column", "problem"),
    [
        ("time,Panther_office_Hannah", None, "the first column must be `timestamp`"),
        ("timestamp,Panther_office_Hannah,Panther_office_Hannah", "Panther_office_Hannah", "appears twice"),
        ("timestamp,Hannah", "Hannah", "not a BDG2 building id"),
    ],
)
def test_a_bad_header_is_named(tmp_path: Path, header: str, column: str | None, problem: str) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: f"{header}\r\n2016-01-01 00:00:00,1.0\r\n".encode()})

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError, match=problem) as raised:
        convert_meter(archive, "electricity", tmp_path / "e.parquet")

    assert (raised.value.line, raised.value.column) == (1, column)


def test_site_standard_time_needs_every_site_in_the_metadata(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: electricity_csv()})

    with (
        Bdg2Archive(path) as archive,
        pytest.raises(Bdg2CsvError, match="site 'Fox' has no time zone") as raised,
    ):
        convert_meter(archive, "electricity", tmp_path / "e.parquet", utc_offset_minutes={"Panther": -300})

    assert (raised.value.line, raised.value.column) == (1, "Fox_education_Ollie")


# ------------------------------------------------------------------- hostile input and file limits
def test_a_header_that_is_not_a_meter_header_is_not_quoted(tmp_path: Path) -> None:
    secret = "root:x:0:0:Secret Marker:/root:/bin/bash"
    path = make_zip(tmp_path, {ELECTRICITY: f"{secret}\n{secret}\n".encode()})

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError) as raised:
        convert_meter(archive, "electricity", tmp_path / "e.parquet")

    assert "the first column must be `timestamp` (not a BDG2 meter file?)" in str(raised.value)
    assert "Secret Marker" not in str(raised.value)


def test_a_field_the_csv_module_refuses_is_named_by_line(tmp_path: Path) -> None:
    unclosed_quote = '2016-01-01 02:00:00,"1.0,,2.0,3.0'  # the quoted field runs on over 4,000 lines
    path = make_zip(tmp_path, {ELECTRICITY: _broken({4: unclosed_quote}, hours=4000)})

    with Bdg2Archive(path) as archive, pytest.raises(Bdg2CsvError) as raised:
        convert_meter(archive, "electricity", tmp_path / "e.parquet")

    assert (raised.value.member, raised.value.line) == (
        "bdg2.zip:data/meters/cleaned/electricity_cleaned.csv",
        4,
    )
    assert "cannot be read as CSV from this line on (field larger than field limit (131072)" in str(
        raised.value
    )


def test_links_and_fifos_are_refused_as_archives_and_as_meter_files(tmp_path: Path) -> None:
    real = make_zip(tmp_path, {ELECTRICITY: electricity_csv()})
    link = tmp_path / "link.zip"
    link.symlink_to(real)
    with pytest.raises(NotARegularFileError, match="link.zip is a symbolic link"):
        Bdg2Archive(link)
    with (
        fifo_with_a_writer(tmp_path / "fifo.csv", electricity_csv()) as fifo,
        pytest.raises(NotARegularFileError, match="fifo.csv is a named pipe"),
    ):
        convert_meter_file(fifo, tmp_path / "e.parquet", meter="electricity")
    plain = tmp_path / "electricity.csv"
    plain.write_bytes(electricity_csv())
    plain_link = tmp_path / "plain_link.csv"
    plain_link.symlink_to(plain)
    with pytest.raises(NotARegularFileError, match="plain_link.csv is a symbolic link"):
        convert_meter_file(plain_link, tmp_path / "e.parquet", meter="electricity")
    assert convert_meter_file(plain, tmp_path / "e.parquet", meter="electricity").rows == HOURS
    assert leftovers(tmp_path / "out") == []


def test_an_archive_with_too_many_entries_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    path = make_zip(tmp_path, {ELECTRICITY: electricity_csv()})  # 5 entries: 4 folders and the file

    with pytest.raises(FileLimitError) as raised:
        Bdg2Archive(path, limits=FileLimits(max_zip_members=4))

    assert str(raised.value).startswith("bdg2.zip: the zip directory declares 5 entries")
    assert raised.value.setting == "ENERGY_ASSETS_MAX_ZIP_MEMBERS"


def test_a_long_line_is_refused_by_number_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meter_blocks, "CHUNK_BYTES", 2048)
    path = make_zip(tmp_path, {ELECTRICITY: _broken({300: "2016-01-13 10:00:00," + "1" * 9000}, hours=400)})
    destination = tmp_path / "out" / "e.parquet"

    with Bdg2Archive(path, limits=FileLimits(max_line_bytes=5000)) as archive:
        with pytest.raises(FileLimitError) as raised:
            convert_meter(archive, "electricity", destination)
        assert str(raised.value).startswith(
            "bdg2.zip:data/meters/cleaned/electricity_cleaned.csv, line 300: line longer than the limit of"
            " 5,000 bytes (ENERGY_ASSETS_MAX_LINE_BYTES)"
        )
    with Bdg2Archive(path, limits=FileLimits(max_line_bytes=50)) as archive:
        with pytest.raises(
            FileLimitError, match=r"electricity_cleaned.csv, line 1: line longer than the limit of 50 "
        ):
            convert_meter(archive, "electricity", destination)
    assert leftovers(destination.parent) == []


def test_the_zip_bomb_is_refused_fast_in_bounded_memory_naming_the_member(tmp_path: Path) -> None:
    bomb = bdg2_long_line_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 1 << 20
    snippet = f"""
        from energy_assets.sources.buildings.archive import Bdg2Archive
        from energy_assets.sources.buildings.readings import convert_meter
        with Bdg2Archive({str(bomb)!r}) as archive:
            convert_meter(archive, "solar", {str(tmp_path / "solar.parquet")!r})
    """
    result = run_measured(snippet)
    assert result["outcome"].startswith(
        "FileLimitError: bomb.zip:data/meters/cleaned/solar_cleaned.csv: compression ratio 1,029:1"
    ), result
    assert "ENERGY_ASSETS_MAX_COMPRESSION_RATIO" in result["outcome"]
    assert result["seconds"] < 5 and result["peak_rss_mb"] < 500, result
    # With the ratio limit out of the way, the 400 MiB line is refused once it passes the line limit.
    result = run_measured(snippet, {"ENERGY_ASSETS_MAX_COMPRESSION_RATIO": "100000"})
    assert result["outcome"].startswith(
        "FileLimitError: bomb.zip:data/meters/cleaned/solar_cleaned.csv, line 2: line longer than the limit"
        " of 1,048,576 bytes (ENERGY_ASSETS_MAX_LINE_BYTES)"
    ), result
    assert result["seconds"] < 5 and result["peak_rss_mb"] < 500, result
    assert not (tmp_path / "solar.parquet").exists()
