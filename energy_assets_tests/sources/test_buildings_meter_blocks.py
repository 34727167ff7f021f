"""The two ways a chunk of a wide meter file is parsed (numpy tokenizer, pyarrow's CSV reader) agree."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from energy_assets.sources.buildings.meter_blocks import BlockParser, LongBlock
from energy_assets.sources.buildings.readings import _FILE_SCHEMA

BUILDINGS = (
    "Panther_office_Hannah",
    "Panther_parking_Lorriane",
    "Fox_education_Ollie",
    "Robin_lodging_Celia",
)
SITE_INDEX = np.array([1, 1, 0, 2], dtype=np.int32)
DICTIONARIES = {
    "building_id": pa.array(BUILDINGS),
    "site_id": pa.array(["Fox", "Panther", "Robin"]),
    "meter": pa.array(["electricity"]),
    "unit": pa.array(["kWh"]),
}
PLAIN_CELLS = ["", "", "0", "12.5", "14763.098999999998", "-3.25", "1e3", "7", ".5", "5.", "-0", "1.5E-7"]
ODD_CELLS = ["NaN", "nan", "inf", "-inf", "+2.5", " 4.5", "4.5 ", '"3.5"', '""', "1,5", "x", "\r", "1\r2"]


def _parser(offsets_us: np.ndarray | None = None) -> BlockParser:
    return BlockParser(BUILDINGS, SITE_INDEX, offsets_us, _FILE_SCHEMA, DICTIONARIES)


def _parse_both(
    chunk: bytes, offsets_us: np.ndarray | None = None
) -> tuple[LongBlock | None, LongBlock | pa.ArrowInvalid | None]:
    """(tokenizer's block or None, CSV reader's block or the exception it raised)."""
    buffer = pa.py_buffer(chunk)
    tokenized = _parser(offsets_us)._tokenized(buffer)
    try:
        read: LongBlock | pa.ArrowInvalid | None = _parser(offsets_us)._read_csv(buffer)
    except pa.ArrowInvalid as error:
        read = error
    return tokenized, read


def _same(left: LongBlock, right: LongBlock) -> bool:
    assert left.table is not None and right.table is not None
    assert left.per_building is not None and right.per_building is not None
    left_readings, right_readings = (block.table.column("reading").to_numpy() for block in (left, right))  # type: ignore[union-attr]
    return (
        np.array_equal(left.seconds, right.seconds)
        and left.empty_timestamp_line == right.empty_timestamp_line
        and left.table.drop_columns(["reading"]).equals(right.table.drop_columns(["reading"]))
        and np.array_equal(
            left_readings, right_readings, equal_nan=True
        )  # NaN is a reading: equal to NaN here
        and np.array_equal(left.per_building, right.per_building)
    )


def _lines(rng: random.Random, count: int, cells: list[str], *, crlf: bool) -> bytes:
    end = "\r\n" if crlf else "\n"
    start = rng.randrange(0, 10_000) * 3600 + 1_451_606_400
    lines = []
    for hour in range(count):
        stamp = np.datetime64(start + hour * 3600, "s").astype(str).replace("T", " ")
        lines.append(",".join([stamp, *(rng.choice(cells) for _ in BUILDINGS)]) + end)
    return "".join(lines).encode()


def test_the_tokenizer_takes_plain_lines_and_gives_what_the_csv_reader_gives() -> None:
    rng = random.Random(20160101)
    for _ in range(200):
        chunk = _lines(rng, rng.randint(1, 40), PLAIN_CELLS, crlf=rng.random() < 0.7)
        tokenized, read = _parse_both(chunk)
        assert isinstance(tokenized, LongBlock), chunk  # plain lines are the tokenizer's
        assert isinstance(read, LongBlock) and _same(tokenized, read), chunk


def test_odd_chunks_go_to_the_csv_reader_or_agree_with_it() -> None:
    # Whatever the tokenizer takes, it parses exactly as the CSV reader does; the rest it leaves to the reader
    # (quotes, blanks, a missing final line end, empty lines, ragged rows, bare CR, values that do not parse).
    rng = random.Random(42)
    taken = left = 0
    for _ in range(400):
        cells = PLAIN_CELLS + ODD_CELLS if rng.random() < 0.5 else PLAIN_CELLS
        chunk = _lines(rng, rng.randint(1, 12), cells, crlf=rng.random() < 0.5)
        mutation = rng.random()
        if mutation < 0.1:
            chunk = chunk.rstrip(b"\r\n")
        elif mutation < 0.2:
            chunk = chunk.replace(b"\n", b"\n\r\n", 1)
        elif mutation < 0.3:
            chunk = chunk.replace(b",", b"", 1)
        tokenized, read = _parse_both(chunk)
        if tokenized is None:
            left += 1
            continue
        taken += 1
        assert isinstance(read, LongBlock) and _same(tokenized, read), chunk
    assert taken > 20 and left > 100


def test_spelled_out_nan_and_infinity_are_readings_on_the_tokenizer_too() -> None:
    chunk = b"2016-01-01 00:00:00,NaN,,inf,-inf\r\n2016-01-01 01:00:00,,1.5,,nan\r\n"
    tokenized, read = _parse_both(chunk)
    assert isinstance(tokenized, LongBlock) and tokenized.table is not None
    assert isinstance(read, LongBlock) and _same(tokenized, read)
    readings = tokenized.table.column("reading").to_pylist()
    assert [str(value) for value in readings] == ["nan", "inf", "-inf", "1.5", "nan"]
    assert tokenized.table.column("building_id").to_pylist() == [
        "Panther_office_Hannah",
        "Fox_education_Ollie",
        "Robin_lodging_Celia",
        "Panther_parking_Lorriane",
        "Robin_lodging_Celia",
    ]
    assert tokenized.per_building.tolist() == [1, 1, 1, 2]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "chunk",
    [
        b"2016-01-01 00:00:00,1,2,3,4\r\n,1,2,3,4\r\n",  # an empty timestamp
        b"2016-01-01 00:00:00,1,2,3,4\r\n2016-01-01 01:00,1,2,3,4\r\n",  # another format
        b"2016-13-01 00:00:00,1,2,3,4\n",  # month 13
        b"2016-01-01\r00:00:00,1,2,3,4\n",  # a bare CR, which strptime would take for the space
        b"2016-01-01 00:\r00:00,1,2,3,4\r\n",
    ],
)
def test_a_timestamp_the_tokenizer_cannot_parse_goes_to_the_csv_reader(chunk: bytes) -> None:
    tokenized, read = _parse_both(chunk)
    assert tokenized is None
    assert isinstance(read, (LongBlock, pa.ArrowInvalid))


def test_clock_offsets_apply_per_building_on_both_ways() -> None:
    offsets = np.array([-5, -5, -7, 0], dtype=np.int64) * 3_600_000_000
    chunk = b"2016-01-01 00:00:00,1,2,3,4\r\n2016-01-01 01:00:00,,2,,4\r\n"
    tokenized, read = _parse_both(chunk, offsets)
    assert isinstance(tokenized, LongBlock) and isinstance(read, LongBlock) and _same(tokenized, read)
    assert tokenized.table is not None
    hours = [stamp.hour for stamp in tokenized.table.column("timestamp").to_pylist()]
    assert hours == [5, 5, 7, 0, 6, 1]
