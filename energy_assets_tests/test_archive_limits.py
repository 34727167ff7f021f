"""File and zip limits: settings, the zip directory read before `ZipFile`, declared sizes, counted reads."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from energy_assets.archive_limits import (
    ENV_MAX_COMPRESSION_RATIO,
    ENV_MAX_LINE_BYTES,
    ENV_MAX_UNCOMPRESSED_BYTES,
    ENV_MAX_ZIP_MEMBERS,
    FileLimitError,
    FileLimits,
)
from energy_assets.errors import ConfigurationError


def test_defaults_fit_the_real_data_with_room_to_spare() -> None:
    limits = FileLimits.from_env({})
    assert limits == FileLimits(10_000, 4 << 30, 200.0, 1 << 20)
    # electricity.csv is about 1 GB uncompressed with lines of about 40 kB; NEM12 files are at most tens of MB.
    assert limits.max_uncompressed_bytes >= 4 * 10**9 and limits.max_line_bytes >= 20 * 40_000


def test_settings_are_read_from_the_environment() -> None:
    limits = FileLimits.from_env(
        {
            ENV_MAX_ZIP_MEMBERS: "50",
            ENV_MAX_UNCOMPRESSED_BYTES: "1_000_000",
            ENV_MAX_COMPRESSION_RATIO: "12.5",
            ENV_MAX_LINE_BYTES: " 4096 ",
        }
    )
    assert limits == FileLimits(50, 1_000_000, 12.5, 4096)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            ENV_MAX_LINE_BYTES,
            "1MiB",
            "ENERGY_ASSETS_MAX_LINE_BYTES='1MiB' is not a whole number of at least 1",
        ),
        (ENV_MAX_ZIP_MEMBERS, "0", "ENERGY_ASSETS_MAX_ZIP_MEMBERS='0' is not a whole number of at least 1"),
        (ENV_MAX_UNCOMPRESSED_BYTES, "1.5", "'1.5' is not a whole number"),
        (ENV_MAX_COMPRESSION_RATIO, "nan", "ENERGY_ASSETS_MAX_COMPRESSION_RATIO='nan' is not a number of at"),
        (ENV_MAX_COMPRESSION_RATIO, "-3", "unset it for the default (200)"),
        (ENV_MAX_UNCOMPRESSED_BYTES, "-1", "unset it for the default (4,294,967,296)"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        FileLimits.from_env({name: value})
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def _zip(entries: int) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(entries):
            archive.writestr(f"f{index}.csv", b"")
    buffer.seek(0)
    return buffer


def test_the_entry_count_is_read_from_the_end_record_before_zipfile_lists_the_entries() -> None:
    limits = FileLimits(max_zip_members=4)
    limits.check_zip_entries(_zip(4), "four.zip")
    five = _zip(5)
    five.seek(3)
    with pytest.raises(FileLimitError) as raised:
        limits.check_zip_entries(five, "five.zip")
    assert five.tell() == 3  # the caller's position is kept
    assert str(raised.value).startswith(
        "five.zip: the zip directory declares 5 entries, more than the limit of 4"
    )
    assert (raised.value.setting, raised.value.limit) == (ENV_MAX_ZIP_MEMBERS, 4)


def test_the_entry_count_of_a_zip64_directory_is_read_too() -> None:
    entries = 0x10000 + 5  # more than the 16-bit count of the classic end record
    with pytest.raises(FileLimitError, match=f"declares {entries:,} entries"):
        FileLimits(max_zip_members=0x10000).check_zip_entries(_zip(entries), "many.zip")


def test_a_file_without_an_end_record_is_left_to_zipfile() -> None:
    FileLimits(max_zip_members=1).check_zip_entries(io.BytesIO(b"<html>not a zip</html>"), "page.zip")


def _member(data: bytes) -> zipfile.ZipInfo:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("member.csv", data)
        return archive.getinfo("member.csv")


def test_declared_size_and_ratio_are_checked_from_the_directory() -> None:
    limits = FileLimits(max_uncompressed_bytes=3 << 20, max_compression_ratio=200)
    limits.check_member("small.zip", _member(b"\n" * 500_000))  # 1,000:1 but under 1 MiB: no bomb
    with pytest.raises(FileLimitError) as ratio:
        limits.check_member("bomb.zip", _member(b"\n" * (2 << 20)), member="data/member.csv")
    assert str(ratio.value).startswith("bomb.zip:data/member.csv: compression ratio ")
    assert "is over the limit of 200:1 (ENERGY_ASSETS_MAX_COMPRESSION_RATIO)" in str(ratio.value)
    with pytest.raises(FileLimitError) as size:
        limits.check_member("big.zip", _member(b"\n" * (4 << 20)))
    assert "big.zip:member.csv: uncompressed size 4,194,304 bytes (declared in the zip directory)" in str(
        size.value
    )
    assert size.value.setting == ENV_MAX_UNCOMPRESSED_BYTES


def test_reads_are_counted_and_stopped_past_the_limit() -> None:
    limits = FileLimits(max_uncompressed_bytes=100_000)
    exactly = limits.counted(io.BytesIO(b"x" * 100_000), "exact.csv")
    assert len(exactly.read()) == 100_000
    source = io.BytesIO(b"x" * 1_000_000)
    stream = limits.counted(source, "stdin", close_stream=False)
    assert len(stream.read(50_000)) == 50_000
    with pytest.raises(FileLimitError) as raised:
        stream.read()
    assert "stdin: more than 100,000 bytes read (counted while reading)" in str(raised.value)
    assert source.tell() <= 300_000  # stopped within a read or two of the limit, not at the end
    stream.close()
    assert not source.closed


def test_a_zip_member_is_counted_against_its_declared_size(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.csv", b"1,2,3\n" * 1000)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a.csv")
        with FileLimits().open_member(archive, "a.zip", info) as stream:
            assert stream.read() == b"1,2,3\n" * 1000
    assert FileLimits().line_too_long("a.zip", 7, member="a.csv").args == (
        "a.zip:a.csv, line 7: line longer than the limit of 1,048,576 bytes (ENERGY_ASSETS_MAX_LINE_BYTES);"
        " refused without reading the rest of it. If the file is genuine, raise ENERGY_ASSETS_MAX_LINE_BYTES.",
    )
