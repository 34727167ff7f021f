"""The NEM12 reader: every real-world file shape reads, every malformed one is refused at the right line,
and the readings equal those of the reference parser `nemreader`, value by value."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from nemreader import NEMFile

from energy_assets.archive_limits import FileLimits
from energy_assets.sources.meters.errors import Nem12Error, Nem13NotSupportedError
from energy_assets.sources.meters.nem12 import iter_records, read_nem12_batches, read_nem12_table
from energy_assets.sources.meters.nem12_records import (
    B2BDetails,
    EndOfData,
    HeaderRecord,
    IntervalData,
    IntervalEvent,
    NmiDataDetails,
)
from energy_assets.sources.meters.tables import METER_READINGS
from energy_assets_tests.hostile_files import (
    NEM12_MEMBER,
    fifo_with_a_writer,
    nem12_blank_lines_bomb,
    run_measured,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nem12"
GOOD_FILES = sorted(FIXTURES.glob("nem12_*"))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def nem12_text(*records: str) -> io.BytesIO:
    return io.BytesIO(("\n".join(records) + "\n").encode())


def day_300(day: str, values: list[str], quality: str = "A", reason: str = "") -> str:
    return f"300,{day},{','.join(values)},{quality},{reason},,20050310121004,20050310182204"


HEADER = "100,NEM12,200506081149,UNITEDDP,NEMMCO"
CHANNEL_30 = "200,NEM1201009,E1E2,1,E1,N1,01009,kWh,30,20050610"
VALUES_48 = [f"{i / 100:.2f}" for i in range(48)]


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


# ---------------------------------------------------------------------------------------- shapes
def test_intervals_are_numbered_by_their_end_in_nem_time() -> None:
    table = read_nem12_table(nem12_text(HEADER, CHANNEL_30, day_300("20050301", VALUES_48), "900"))

    assert table.schema == METER_READINGS.arrow_schema
    assert table.num_rows == 48
    first, last = rows(table)[0], rows(table)[-1]
    # 2005-03-01 00:00 NEM time is 2005-02-28 14:00 UTC; interval 1 ends at 00:30 NEM.
    assert first["interval_start"] == utc(2005, 2, 28, 14, 0)
    assert first["interval_end"] == utc(2005, 2, 28, 14, 30)
    assert last["interval_end"] == utc(2005, 3, 1, 14, 0)  # 00:00 NEM on the next day
    assert first == {
        "nmi": "NEM1201009",
        "nmi_suffix": "E1",
        "register_id": "001",
        "uom": "kWh",
        "interval_start": utc(2005, 2, 28, 14, 0),
        "interval_end": utc(2005, 2, 28, 14, 30),
        "value": 0.0,
        "quality": "A",
        "method": None,
        "reason": None,
        "source_file": "<stream>",
    }
    assert last["value"] == 0.47


def test_400_records_set_quality_method_and_reason_for_their_ranges() -> None:
    table = read_nem12_table(
        nem12_text(
            HEADER,
            CHANNEL_30,
            day_300("20050301", VALUES_48, quality="V"),
            "400,1,20,F14,76,",
            "400,21,24,A,,",
            "400,25,48,S14,1,",
            "900",
        ),
        source_file="x.csv",
    )
    flags = [(r["quality"], r["method"], r["reason"]) for r in rows(table)]
    assert flags[:20] == [("F", 14, 76)] * 20
    assert flags[20:24] == [("A", None, None)] * 4
    assert flags[24:] == [("S", 14, 1)] * 24
    assert set(table.column("source_file").to_pylist()) == {"x.csv"}


def test_30_minute_file_with_several_nmis_suffixes_and_qualities() -> None:
    table = read_nem12_table(FIXTURES / "nem12_30min_multiple_quality.csv")
    assert table.num_rows == 6 * 48
    channels = sorted({(r["nmi"], r["nmi_suffix"], r["register_id"], r["uom"]) for r in rows(table)})
    assert channels == [
        ("CCCC123456", "E1", "001", "kWh"),
        ("VBCD000022", "E1", "001", "kWh"),
        ("VBCD000022", "Q1", "002", "kVArh"),
    ]
    counts = dict(zip(*table.column("quality").value_counts().flatten(), strict=True))
    assert {k.as_py(): v.as_py() for k, v in counts.items()} == {"A": 147, "E": 48, "F": 68, "S": 25}
    q1_day2 = [r for r in rows(table) if r["nmi_suffix"] == "Q1" and r["interval_end"] > utc(2003, 8, 1, 14)]
    assert (q1_day2[10]["quality"], q1_day2[10]["method"], q1_day2[10]["reason"]) == ("S", 53, 9)


def test_15_minute_upper_case_units_crlf_and_500_after_every_300() -> None:
    table = read_nem12_table(FIXTURES / "nem12_15min_upper_case_units.csv")
    assert table.num_rows == 2 * 3 * 96
    assert sorted(set(table.column("uom").to_pylist())) == ["kVArh", "kWh"]
    ends = sorted(r["interval_end"] for r in rows(table) if r["nmi_suffix"] == "E1")
    assert ends[1] - ends[0] == timedelta(minutes=15)
    assert ends[0] == utc(2004, 2, 29, 14, 15)


def test_5_minute_channels_with_wh_and_varh_and_no_newline_after_900() -> None:
    table = read_nem12_table(FIXTURES / "nem12_5min_solar.csv")
    assert table.num_rows == 4 * 288
    assert sorted(set(table.column("uom").to_pylist())) == ["VArh", "Wh", "kWh"]
    export = [r for r in rows(table) if r["nmi_suffix"] == "B1"]
    assert export[0]["interval_end"] - export[0]["interval_start"] == timedelta(minutes=5)
    assert export[0]["value"] == 0.0 and export[100]["value"] > 0


def test_mixed_interval_lengths_alphanumeric_nmis_empty_register_and_suffix() -> None:
    table = read_nem12_table(FIXTURES / "nem12_mixed_intervals.csv")
    by_channel: dict[tuple, int] = {}
    for r in rows(table):
        key = (r["nmi"], r["nmi_suffix"], r["register_id"])
        by_channel[key] = by_channel.get(key, 0) + 1
    assert by_channel == {
        ("QB12345678", "E1", "E1"): 48,
        ("QB12345678", "B1", "B1"): 288,
        ("6305ABC123", "E1", None): 96,
        ("6305ABC123", "", None): 96,
    }


def test_excel_padding_register_without_zeros_and_values_without_leading_zero() -> None:
    table = read_nem12_table(FIXTURES / "nem12_excel_padding.csv")
    assert table.num_rows == 3 * 48
    assert sorted(set(table.column("register_id").to_pylist())) == ["001", "002"]
    raw_first_value = (FIXTURES / "nem12_excel_padding.csv").read_text().splitlines()[2].split(",")[2]
    assert raw_first_value.startswith(".")
    assert rows(table)[0]["value"] == float(raw_first_value)


def test_same_channel_in_several_blocks_with_dates_out_of_order() -> None:
    table = read_nem12_table(FIXTURES / "nem12_blocks_out_of_order.csv")
    days = [r["interval_end"] for r in rows(table)][::48]
    assert days == [utc(2018, 1, 2, 14, 30), utc(2017, 12, 31, 14, 30), utc(2018, 1, 1, 14, 30)]


def test_zip_reads_like_the_file_inside() -> None:
    zipped = read_nem12_table(FIXTURES / "nem12_zipped.zip")
    plain = read_nem12_table(FIXTURES / "nem12_30min_multiple_quality.csv")
    assert zipped.drop_columns(["source_file"]).equals(plain.drop_columns(["source_file"]))
    assert zipped.column("source_file")[0].as_py() == "nem12_zipped.zip"


def test_text_and_binary_streams_read_like_paths() -> None:
    path = FIXTURES / "nem12_15min_upper_case_units.csv"
    from_path = read_nem12_table(path)
    with open(path, encoding="utf-8", newline="") as text:
        assert read_nem12_table(text, source_file=path.name).equals(from_path)
    assert read_nem12_table(io.BytesIO(path.read_bytes()), source_file=path.name).equals(from_path)


def test_blank_first_line_and_byte_order_mark_are_accepted() -> None:
    text = "\ufeff\r\n" + "\r\n".join([HEADER, CHANNEL_30, day_300("20050301", VALUES_48), "900"])
    assert read_nem12_table(io.BytesIO(text.encode())).num_rows == 48


def test_batches_are_bounded_and_never_split_a_300_from_its_400s() -> None:
    records = [HEADER, CHANNEL_30]
    for day in range(1, 29):
        records.append(day_300(f"200502{day:02d}", VALUES_48, quality="V"))
        records += ["400,1,10,E52,,", "400,11,48,A,,"]
    records.append("900")
    batches = list(read_nem12_batches(nem12_text(*records), batch_rows=100))
    assert [batch.num_rows for batch in batches] == [144] * 9 + [48]
    table = pa.Table.from_batches(batches)
    assert table.column("quality").to_pylist().count("E") == 28 * 10


def test_record_model_yields_each_record_type() -> None:
    records = list(
        iter_records(
            nem12_text(
                HEADER,
                CHANNEL_30,
                day_300("20050301", VALUES_48, quality="V"),
                "400,1,48,E52,,",
                "500,O,S01009,20050310121004,",
                "900",
            )
        )
    )
    assert [type(record) for record in records] == [
        HeaderRecord,
        NmiDataDetails,
        IntervalData,
        IntervalEvent,
        B2BDetails,
        EndOfData,
    ]
    header, details, interval, event, b2b, end = records
    assert header.created_at == datetime(2005, 6, 8, 11, 49) and header.from_participant == "UNITEDDP"
    assert details.interval_length_minutes == 30 and details.next_scheduled_read_date == date(2005, 6, 10)
    assert (
        interval.interval_date == date(2005, 3, 1) and interval.values[47] == 0.47 and interval.quality == "V"
    )
    assert (event.start_interval, event.end_interval, event.quality, event.method) == (1, 48, "E", 52)
    assert b2b.read_datetime == datetime(2005, 3, 10, 12, 10, 4)
    assert end.line == 6


def test_200_record_with_nine_fields_has_no_next_read_date() -> None:
    records = list(iter_records(FIXTURES / "nem12_blocks_out_of_order.csv"))
    details = [r for r in records if isinstance(r, NmiDataDetails)]
    assert [d.next_scheduled_read_date for d in details] == [None, None]


# ------------------------------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    ("name", "line", "reason"),
    [
        ("invalid_no_header.csv", 1, "does not start with a 100 header"),
        (
            "invalid_value_count.csv",
            4,
            "47 interval values; IntervalLength 30 of the 200 record on line 2 needs 48",
        ),
        ("invalid_bad_date.csv", 6, "bad IntervalDate '20050231'"),
        ("invalid_non_numeric.csv", 4, "interval value 19 is not a number: '1.2x'"),
        ("invalid_missing_900.csv", 6, "without a 900 end-of-data record"),
        ("invalid_wrapped_record.csv", 4, "no QualityMethod after its interval values"),
        ("invalid_v_not_covered.csv", 3, "quality V but its 400 records leave interval 41"),
        ("invalid_900_glued.csv", 6, "bad MSATSLoadDateTime '20050310182204900'"),
        ("invalid_truncated.zip", 0, "truncated or corrupt zip archive"),
    ],
)
def test_malformed_files_are_refused_at_the_right_line(name: str, line: int, reason: str) -> None:
    for read in (read_nem12_table, lambda path: list(iter_records(path))):
        with pytest.raises(Nem12Error) as caught:
            read(FIXTURES / name)
        assert caught.value.file == name
        assert caught.value.line == line
        assert reason in caught.value.reason
        assert f"{name}, line {line}" in str(caught.value) or line == 0


def test_nem13_file_is_recognised_and_refused() -> None:
    with pytest.raises(Nem13NotSupportedError, match="NEM13 file .* not supported") as caught:
        read_nem12_table(FIXTURES / "nem13_accumulated.csv")
    assert caught.value.line == 1


@pytest.mark.parametrize(
    ("records", "line", "reason"),
    [
        ([HEADER, HEADER, "900"], 2, "second 100 header"),
        ([HEADER, day_300("20050301", VALUES_48), "900"], 2, "300 record before any 200"),
        ([HEADER, CHANNEL_30, "400,1,2,A,,", "900"], 3, "400 record without a preceding 300"),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48), "400,40,60,A,,", "900"], 4, "not within 1..48"),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48), "900", "900"], 5, "record after the 900"),
        (
            [HEADER, CHANNEL_30, day_300("20050301", VALUES_48[:47] + ["nan"]), "900"],
            3,
            "value 48 is not a number",
        ),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48[:47] + [""]), "900"], 3, "value 48 is empty"),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48, quality="X9"), "900"], 3, "no QualityMethod"),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48, quality="E5"), "900"], 3, "no QualityMethod"),
        ([HEADER, CHANNEL_30, day_300("20050301", VALUES_48, reason="x"), "900"], 3, "bad ReasonCode"),
        ([HEADER, CHANNEL_30.replace(",30,", ",10,"), "900"], 2, "bad IntervalLength '10'"),
        ([HEADER, CHANNEL_30.replace(",kWh,", ",kWhx,"), "900"], 2, "unknown unit of measure 'kWhx'"),
        ([HEADER, "200,NEM1201009,E1E2,1,E1", "900"], 2, "200 record has 5 fields"),
        ([HEADER, CHANNEL_30, "1.5,2.5,A,,,", "900"], 3, "does not start with a NEM12 record indicator"),
        ([HEADER, CHANNEL_30, day_300("", VALUES_48), "900"], 3, "bad IntervalDate ''"),
        ([], 0, "file is empty"),
    ],
)
def test_malformed_records_name_line_and_reason(records: list[str], line: int, reason: str) -> None:
    for read in (read_nem12_table, lambda source: list(iter_records(source))):
        with pytest.raises(Nem12Error) as caught:
            read(nem12_text(*records))
        assert (caught.value.line, reason in caught.value.reason) == (line, True), caught.value


def test_error_record_is_truncated() -> None:
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(FIXTURES / "invalid_value_count.csv")
    assert caught.value.record.startswith("300,20050302,")
    assert caught.value.record.endswith("chars)") and len(caught.value.record) < 230
    assert caught.value.to_report() == {
        "line": 4,
        "record": caught.value.record,
        "reason": caught.value.reason,
    }


def test_protected_mode_keeps_nmis_out_of_errors() -> None:
    source = [HEADER, CHANNEL_30.replace(",30,", ",10,"), "900"]
    with pytest.raises(Nem12Error) as plain:
        read_nem12_table(nem12_text(*source))
    assert "NEM1201009" in str(plain.value)
    with pytest.raises(Nem12Error) as protected:
        read_nem12_table(nem12_text(*source), source_file="NEM12#NEM1201009#MDP#RET.csv", protect_nmi=True)
    assert "NEM1201009" not in str(protected.value) and "[NMI]" in protected.value.record
    assert protected.value.file == "NEM12#[NMI]#MDP#RET.csv"


def test_zip_with_two_files_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "100,NEM12,200506081149,A,B\n900\n")
        archive.writestr("b.csv", "100,NEM12,200506081149,A,B\n900\n")
    buffer.seek(0)
    with pytest.raises(Nem12Error, match="holds 2 files"):
        read_nem12_table(buffer, source_file="two.zip")


# ------------------------------------------------------------------------------- against nemreader
def _nemreader_readings(path: Path) -> list[tuple]:
    data = NEMFile(str(path), strict=True).nem_data()
    return sorted(
        (nmi, suffix, reading.t_end, reading.read_value, reading.quality_method)
        for nmi, channels in data.readings.items()
        for suffix, readings in channels.items()
        for reading in readings
    )


def _our_readings(path: Path) -> list[tuple]:
    nem_offset = timedelta(hours=10)
    return sorted(
        (
            r["nmi"],
            r["nmi_suffix"],
            (r["interval_end"] + nem_offset).replace(tzinfo=None),
            r["value"],
            r["quality"] + (f"{r['method']:02d}" if r["method"] is not None else ""),
        )
        for r in rows(read_nem12_table(path))
    )


@pytest.mark.parametrize("path", GOOD_FILES, ids=[path.name for path in GOOD_FILES])
def test_readings_equal_nemreader_value_by_value(path: Path) -> None:
    theirs = _nemreader_readings(path)
    ours = _our_readings(path)
    assert len(ours) == len(theirs) > 0
    assert ours == theirs


def test_the_first_bad_record_is_reported_even_when_a_later_one_is_bad_too() -> None:
    records = [
        HEADER,
        CHANNEL_30,
        day_300("20050301", VALUES_48[:47]),
        CHANNEL_30.replace(",30,", ",7,"),
        "900",
    ]
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(nem12_text(*records))
    assert caught.value.line == 3 and "47 interval values" in caught.value.reason


def test_an_oddly_written_300_record_is_not_lost() -> None:
    records = [
        HEADER,
        CHANNEL_30,
        " " + day_300("20050301", VALUES_48),
        day_300("20050302", VALUES_48),
        "900",
    ]
    table = read_nem12_table(nem12_text(*records))
    assert table.num_rows == 96
    assert len([r for r in iter_records(nem12_text(*records)) if isinstance(r, IntervalData)]) == 2


def test_negative_values_are_read_and_left_to_the_audit() -> None:
    table = read_nem12_table(
        nem12_text(HEADER, CHANNEL_30, day_300("20050301", ["-1.5", *VALUES_48[1:]]), "900")
    )
    assert table.column("value")[0].as_py() == -1.5


def test_zip_from_macos_with_a_resource_fork_reads_the_one_real_file() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("meter/", "")
        archive.writestr("meter/data.csv", (FIXTURES / "nem12_blocks_out_of_order.csv").read_bytes())
        archive.writestr("__MACOSX/meter/._data.csv", b"\x00\x05\x16\x07")
    buffer.seek(0)
    assert read_nem12_table(buffer, source_file="mac.zip").num_rows == 144


# ------------------------------------------------------------------- hostile input and file limits
SECRET = "root:x:0:0:Secret Marker:/root:/bin/bash"


def test_a_symbolic_link_is_refused_and_its_target_never_read(tmp_path: Path) -> None:
    target = tmp_path / "passwd"
    target.write_text(SECRET + "\n")
    link = tmp_path / "x.csv"
    link.symlink_to(target)
    for read in (read_nem12_table, lambda path: list(iter_records(path))):
        with pytest.raises(Nem12Error) as caught:
            read(link)
        assert (caught.value.file, caught.value.line, caught.value.record) == ("x.csv", 0, "")
        assert "is a symbolic link, not a regular file, and was not read" in caught.value.reason
        assert "Secret Marker" not in str(caught.value)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    with (
        fifo_with_a_writer(tmp_path / "meter.csv", SECRET.encode()) as fifo,
        pytest.raises(Nem12Error) as caught,
    ):
        read_nem12_table(fifo)
    assert "is a named pipe (fifo), not a regular file, and was not read" in caught.value.reason
    assert "Secret Marker" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (SECRET + "\n", "file does not start with a 100 header record"),
        (f"100,{SECRET}\n900\n", "bad VersionHeader in the 100 record (expected NEM12)"),
        (f"250,{SECRET}\n", "NEM13 file"),
    ],
)
def test_no_line_is_quoted_before_the_100_header_is_recognised(text: str, reason: str) -> None:
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(io.BytesIO(text.encode()), source_file="x.csv")
    assert (caught.value.line, caught.value.record) == (1, "")
    assert reason in caught.value.reason
    assert "Secret Marker" not in str(caught.value) + json.dumps(caught.value.to_report())


def test_a_line_after_the_header_is_quoted_as_before() -> None:
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(nem12_text(HEADER, SECRET, "900"))
    assert (caught.value.line, caught.value.record) == (2, SECRET)


@pytest.mark.parametrize(
    "records",
    [
        [HEADER, "900"],
        [HEADER, "", "", "900"],
        [HEADER, CHANNEL_30, "900"],
    ],
)
def test_a_file_without_interval_data_is_refused(records: list[str]) -> None:
    for read in (read_nem12_table, lambda source: list(iter_records(source))):
        with pytest.raises(Nem12Error) as caught:
            read(nem12_text(*records))
        assert caught.value.line == len(records)
        assert "file holds no interval data (no 300 record between its 100 and 900)" in caught.value.reason


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_megabytes_of_empty_lines_are_counted_without_splitting_them(newline: str) -> None:
    blanks = 3_000_000
    text = f"{HEADER}\n" + newline * blanks + f"{CHANNEL_30}\n{day_300('20050301', VALUES_48)}\nbad\n900\n"
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(io.BytesIO(text.encode()))
    assert caught.value.line == blanks + 4 and caught.value.record == "bad"
    table = read_nem12_table(io.BytesIO(text.replace("bad\n", "").encode()))
    assert table.num_rows == 48


def test_only_empty_lines_is_an_empty_file() -> None:
    with pytest.raises(Nem12Error, match="file is empty"):
        read_nem12_table(io.BytesIO(b"\r\n" * 2_000_000))


def test_a_line_over_the_limit_is_refused_by_number_without_quoting_it() -> None:
    limits = FileLimits(max_line_bytes=4000)
    long_300 = day_300("20050301", VALUES_48).replace(",A,", "," + "9" * 4000 + ",A,")
    for text in (
        f"{HEADER}\n{CHANNEL_30}\n{long_300}\n900\n",
        f"{HEADER}\n{CHANNEL_30}\n{long_300}",  # the last line, without a line end
        "1" * (3 << 20),  # one line over several blocks
    ):
        with pytest.raises(Nem12Error) as caught:
            read_nem12_table(io.BytesIO(text.encode()), source_file="long.csv", limits=limits)
        assert caught.value.line == (1 if text.startswith("11") else 3)
        assert caught.value.record == ""
        assert (
            "line longer than the limit of 4,000 bytes (ENERGY_ASSETS_MAX_LINE_BYTES)" in caught.value.reason
        )
    read_nem12_table(nem12_text(HEADER, CHANNEL_30, day_300("20050301", VALUES_48), "900"), limits=limits)


def _zip_of(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_a_highly_compressed_member_is_refused_before_it_is_inflated() -> None:
    bomb = _zip_of({"inner.csv": (HEADER + "\n" * (20 << 20) + "900\n").encode()})
    with pytest.raises(Nem12Error) as caught:
        read_nem12_table(bomb, source_file="bomb.zip")
    assert (caught.value.file, caught.value.line, caught.value.record) == ("bomb.zip", 0, "")
    assert caught.value.reason.startswith("zip member 'inner.csv': compression ratio ")
    assert "over the limit of 200:1 (ENERGY_ASSETS_MAX_COMPRESSION_RATIO)" in caught.value.reason
    assert str(caught.value).startswith("bomb.zip: zip member 'inner.csv': compression ratio ")


def test_size_and_member_count_limits_apply_to_zips_plain_files_and_streams(tmp_path: Path) -> None:
    good = (FIXTURES / "nem12_30min_multiple_quality.csv").read_bytes()
    limits = FileLimits(max_uncompressed_bytes=len(good) - 1, max_zip_members=2)
    with pytest.raises(Nem12Error, match=r"zip member 'a.csv': uncompressed size .* \(declared in the zip"):
        read_nem12_table(_zip_of({"a.csv": good}), limits=limits)
    path = tmp_path / "a.csv"
    path.write_bytes(good)
    with pytest.raises(Nem12Error, match=r"uncompressed size .* \(from the file system\)"):
        read_nem12_table(path, limits=limits)
    with pytest.raises(Nem12Error, match="counted while reading"):
        read_nem12_table(io.BytesIO(good), limits=limits)
    with pytest.raises(Nem12Error, match="declares 3 entries, more than the limit of 2"):
        read_nem12_table(_zip_of({"a.csv": good, "b.csv": good, "c.csv": good}), limits=limits)
    assert read_nem12_table(path).num_rows == read_nem12_table(io.BytesIO(good)).num_rows > 0


def test_the_zip_bomb_is_refused_fast_in_bounded_memory_naming_the_member(tmp_path: Path) -> None:
    bomb = nem12_blank_lines_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 1 << 20
    snippet = f"""
        from energy_assets.sources.meters.nem12 import read_nem12_table
        read_nem12_table({str(bomb)!r})
    """
    result = run_measured(snippet)
    assert result["outcome"].startswith(
        f"Nem12Error: bomb.zip: zip member '{NEM12_MEMBER}': compression ratio 1,029:1"
    ), result
    assert "ENERGY_ASSETS_MAX_COMPRESSION_RATIO" in result["outcome"]
    assert result["seconds"] < 5 and result["peak_rss_mb"] < 500, result
    # With the ratio limit out of the way, the 400 MiB of empty lines are still read fast, and refused.
    result = run_measured(snippet, {"ENERGY_ASSETS_MAX_COMPRESSION_RATIO": "100000"})
    assert "file holds no interval data" in result["outcome"], result
    assert result["seconds"] < 20 and result["peak_rss_mb"] < 500, result
