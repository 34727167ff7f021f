"""The file-source CSV reader on one fixture per real-world quirk and one with all of them, value by value
against the `csv` module (an independent reading) and hand-written expectations."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.sources.files.errors import FileFormatError
from energy_assets.sources.files.inference import InferenceError, infer_declaration
from energy_assets.sources.files.reader import read_declared

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "files"


def independent(name: str, skip: int = 0) -> list[dict[str, str]]:
    """The rows as the csv module reads them (BOM removed, NBSP and spaces trimmed), keyed by header position."""
    with open(FIXTURES / name, encoding="utf-8-sig", newline="") as handle:
        records = [r for r in csv.reader(handle) if r][skip:]
    return [{str(i): v.strip(" \u00a0") for i, v in enumerate(r)} for r in records[1:]]


def read(name: str, **options: object) -> tuple[FileSourceDeclaration, list[dict[str, object]]]:
    inferred = infer_declaration(FIXTURES / name, "quirks", **options)  # type: ignore[arg-type]
    table = read_declared(FIXTURES / name, inferred.declaration).table
    return inferred.declaration, table.to_pylist()


@pytest.mark.parametrize("name", ["bom.csv", "line_ends_lf.csv", "line_ends_crlf.csv", "line_ends_cr.csv"])
def test_bom_and_every_line_end_read_the_same_rows(name):
    declaration, rows = read(name)
    assert [c.header for c in declaration.columns] == ["id", "value"]
    assert rows == [{"id": 1, "value": 10}, {"id": 2, "value": 20}]
    assert [(str(r["id"]), str(r["value"])) for r in rows] == [(e["0"], e["1"]) for e in independent(name)]


def test_quoted_fields_with_commas_doubled_quotes_and_line_breaks():
    _, rows = read("quotes.csv")
    assert [r["note"] for r in rows] == ["Smith, John", 'said "hi"', "two\nlines", "plain"]
    assert [r["note"] for r in rows] == [e["1"] for e in independent("quotes.csv")]


def test_an_empty_header_cell_is_named_by_its_position_and_keeps_its_data():
    declaration, rows = read("empty_header.csv")
    assert [c.name for c in declaration.columns] == ["id", "column_2", "value"]
    assert [r["column_2"] for r in rows] == ["x", "y"] == [e["1"] for e in independent("empty_header.csv")]


def test_a_duplicated_header_is_suffixed():
    declaration, rows = read("duplicate_header.csv")
    assert [(c.name, c.header, c.occurrence) for c in declaration.columns] == [
        ("id", "id", 1),
        ("reading", "reading", 1),
        ("reading_2", "reading", 2),
    ]
    assert [(r["reading"], r["reading_2"]) for r in rows] == [(10, 11), (20, 21)]


def test_trailing_empty_columns_are_declared_and_must_stay_empty(tmp_path):
    declaration, rows = read("trailing_empty.csv")
    assert declaration.trailing_empty_columns == 2
    assert rows == [{"id": 1, "value": 10}, {"id": 2, "value": 20}]
    filled = tmp_path / "filled.csv"
    filled.write_text("id,value,,\n1,10,,\n2,20,,oops\n")
    with pytest.raises(FileFormatError) as refused:
        read_declared(filled, declaration)
    assert (refused.value.line, refused.value.column) == (3, "column_4")


def test_no_break_spaces_around_values_are_trimmed():
    _, rows = read("nbsp.csv")
    assert [r["value"] for r in rows] == [10.5, 20.0]


def test_identifiers_with_letters_in_some_rows_stay_text():
    declaration, rows = read("ids.csv")
    assert declaration.columns[0].type == "text"
    assert (
        [r["meter"] for r in rows]
        == ["604735", "604736", "604735H"]
        == [e["0"] for e in independent("ids.csv")]
    )


def test_day_first_and_month_first_are_decided_from_the_values():
    declaration, rows = read("day_first.csv")
    assert (declaration.columns[0].type, declaration.columns[0].format) == ("date", "%d/%m/%Y")
    assert [r["day"] for r in rows] == [date(2018, 9, 6), date(2018, 9, 13)]
    declaration, rows = read("month_first.csv", timezone="UTC")
    assert (declaration.columns[0].type, declaration.columns[0].format) == ("timestamp", "%m/%d/%Y %H:%M")
    assert [r["read_at"] for r in rows] == [
        datetime(2022, 9, 4, 8, 33, tzinfo=UTC),
        datetime(2022, 12, 31, 23, 5, tzinfo=UTC),
    ]


def test_dates_that_fit_both_orders_stay_text_and_the_inference_says_so():
    inferred = infer_declaration(FIXTURES / "ambiguous_dates.csv", "quirks")
    assert inferred.declaration.columns[0].type == "text"
    assert any("day-first (%d/%m/%Y)" in note and "month-first (%m/%d/%Y)" in note for note in inferred.notes)


def test_a_date_and_a_time_column_combine_into_one_utc_instant():
    declaration, rows = read("date_time.csv", time="Start Date+Start Time", timezone="Europe/London")
    assert declaration.combined_times[0].format == "%d/%m/%Y %H:%M"
    assert [r["recorded_at"] for r in rows] == [
        datetime(2018, 9, 6, 7, 33, tzinfo=UTC),
        datetime(2018, 9, 13, 22, 5, tzinfo=UTC),
    ]
    assert [(r["start_date"], r["start_time"]) for r in rows] == [
        (date(2018, 9, 6), "08:33"),
        (date(2018, 9, 13), "23:05"),
    ]


def test_offsets_written_three_ways():
    declaration, rows = read("offsets.csv")
    assert declaration.columns[1].type == "timestamptz"
    assert [r["at"] for r in rows] == [
        datetime(2018, 9, 6, 9, tzinfo=UTC),
        datetime(2018, 9, 6, 9, tzinfo=UTC),
        datetime(2018, 9, 6, 10, tzinfo=UTC),
    ]


def test_a_preamble_is_refused_with_a_hint_unless_skip_rows_is_given():
    with pytest.raises(InferenceError, match=r"preamble before the header\? Declare skip_rows: 2"):
        infer_declaration(FIXTURES / "preamble.csv", "quirks")
    declaration, rows = read("preamble.csv", skip_rows=2)
    assert [r["station"] for r in rows] == ["A", "B"] == [e["1"] for e in independent("preamble.csv", skip=2)]


def test_negative_and_empty_values():
    declaration, rows = read("negatives.csv")
    assert [(c.name, c.type) for c in declaration.columns] == [
        ("id", "integer"),
        ("net_kwh", "float"),
        ("count", "integer"),
    ]
    assert [(r["net_kwh"], r["count"]) for r in rows] == [(-1.5, -3), (None, None), (2.25, 4)]


def test_one_file_with_every_quirk():
    declaration, rows = read(
        "all_quirks.csv",
        skip_rows=1,
        time="Start Date+Start Time",
        timezone="Europe/London",
        key=["Session ID"],
    )
    assert declaration.skip_rows == 1 and declaration.trailing_empty_columns == 1
    assert [c.name for c in declaration.columns] == [
        "session_id",
        "start_date",
        "start_time",
        "energy_kwh",
        "column_5",
        "note",
        "note_2",
        "meter",
    ]
    expected = independent("all_quirks.csv", skip=1)
    assert [r["session_id"] for r in rows] == [e["0"] for e in expected] == ["S1", "S2", "S3"]
    assert [r["energy_kwh"] for r in rows] == [12.5, None, -3.25]
    assert (
        [r["note"] for r in rows]
        == ["Smith, John", 'said "hi"', "two\r\nlines"]
        == [e["5"] for e in expected]
    )
    assert [r["note_2"] for r in rows] == ["a", "b", "c"]
    assert [r["meter"] for r in rows] == ["604735", "604735H", "604736"]
    assert [r["column_5"] for r in rows] == ["x", "y", "z"]
    assert [r["recorded_at"] for r in rows] == [
        datetime(2018, 9, 6, 7, 33, tzinfo=UTC),
        datetime(2018, 9, 13, 22, 5, tzinfo=UTC),
        datetime(2022, 10, 29, 23, 15, tzinfo=UTC),
    ]


def test_errors_name_file_line_and_column(tmp_path):
    declaration = infer_declaration(FIXTURES / "day_first.csv", "quirks").declaration
    lines = ["day,value"] + [f"{1 + i % 28:02d}/01/2020,{i}" for i in range(7_100)]
    lines[6_999] = "31/02/2020,5"  # line 7,000
    bad = tmp_path / "bad_date.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(FileFormatError) as refused:
        read_declared(bad, declaration)
    assert (refused.value.file, refused.value.line, refused.value.column) == ("bad_date.csv", 7000, "day")
    assert "'31/02/2020' is not a date/time in format '%d/%m/%Y'" in str(refused.value)
    typed = tmp_path / "type.csv"
    typed.write_text('day,value\n01/01/2020,1\n"02/01/2020",x2\n')
    with pytest.raises(FileFormatError) as refused:
        read_declared(typed, declaration)
    assert (refused.value.line, refused.value.column) == (3, "value")
    missing = tmp_path / "missing.csv"
    missing.write_text("value\n1\n")
    with pytest.raises(FileFormatError, match="required column 'day'") as refused:
        read_declared(missing, declaration)
    assert refused.value.line == 1


def test_samples_that_cannot_be_inferred_get_one_line(tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02garbage")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("xq\nzz\nrr\n")
    for path, reason in ((binary, "binary"), (empty, "empty"), (garbage, "1 column")):
        with pytest.raises(InferenceError, match=reason) as refused:
            infer_declaration(path, "quirks")
        assert "\n" not in str(refused.value)
