"""Local wall-clock times to UTC on both DST changes of Europe/London and America/Denver."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from energy_assets.sources.files.local_times import LocalTimeError, to_utc


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def convert(values: list[str], zone: str, **options: object) -> list[datetime]:
    local = pa.array([datetime.fromisoformat(v) for v in values], pa.timestamp("us"))
    return to_utc(local, zone, **options).to_pylist()  # type: ignore[arg-type]


# (zone, clear local time and its instant, ambiguous local time with earlier/later, nonexistent local time with earlier/later)
CASES = [
    (
        "Europe/London",
        "2022-06-01T12:00",
        utc(2022, 6, 1, 11),
        "2022-10-30T01:30",
        utc(2022, 10, 30, 0, 30),
        utc(2022, 10, 30, 1, 30),
        "2022-03-27T01:30",
        utc(2022, 3, 27, 0, 30),
        utc(2022, 3, 27, 1, 30),
    ),
    (
        "America/Denver",
        "2022-01-15T08:00",
        utc(2022, 1, 15, 15),
        "2022-11-06T01:30",
        utc(2022, 11, 6, 7, 30),
        utc(2022, 11, 6, 8, 30),
        "2022-03-13T02:30",
        utc(2022, 3, 13, 8, 30),
        utc(2022, 3, 13, 9, 30),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_both_dst_changes(case):
    zone, clear, clear_utc, ambiguous, amb_earlier, amb_later, gap, gap_earlier, gap_later = case
    assert convert([clear], zone) == [clear_utc]
    with pytest.raises(LocalTimeError) as refused:
        convert([clear, ambiguous, gap], zone)
    assert [(p.row, "twice" in p.reason) for p in refused.value.problems] == [(1, True), (2, False)]
    assert convert([ambiguous, gap], zone, policy="earlier") == [amb_earlier, gap_earlier]
    assert convert([ambiguous, gap], zone, policy="later") == [amb_later, gap_later]


def test_an_abbreviation_column_decides_and_must_agree_with_the_zone():
    abbreviations = pa.array(["BST", "GMT", "BST"])
    assert convert(
        ["2022-10-30T01:30", "2022-10-30T01:30", "2022-06-01T12:00"],
        "Europe/London",
        abbreviations=abbreviations,
    ) == [
        utc(2022, 10, 30, 0, 30),
        utc(2022, 10, 30, 1, 30),
        utc(2022, 6, 1, 11),
    ]
    with pytest.raises(LocalTimeError, match="'GMT' contradicts Europe/London on 2022-06-01 12:00"):
        convert(["2022-06-01T12:00"], "Europe/London", abbreviations=pa.array(["GMT"]))
