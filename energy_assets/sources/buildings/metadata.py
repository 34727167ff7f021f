"""`data/metadata/metadata.csv` -> the `buildings.metadata` Arrow table.

The file has 1,636 rows x 32 columns, many sparse; meter flags are `Yes` or empty. Every cell is read as text first
and then converted column by column, so a bad value is reported with its line and column rather than as a pyarrow
cast error. Flags become booleans `has_<meter>`; integer columns accept `1953` and `1953.0`.
"""

from __future__ import annotations

from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from energy_assets.sources.buildings.archive import METADATA_MEMBER, Bdg2Archive
from energy_assets.sources.buildings.errors import Bdg2CsvError
from energy_assets.sources.buildings.tables import METADATA, METER_FLAG_COLUMNS

SOURCE_COLUMNS: tuple[str, ...] = (
    "building_id",
    "site_id",
    "building_id_kaggle",
    "site_id_kaggle",
    "primaryspaceusage",
    "sub_primaryspaceusage",
    "sqm",
    "sqft",
    "lat",
    "lng",
    "timezone",
    "electricity",
    "hotwater",
    "chilledwater",
    "steam",
    "water",
    "irrigation",
    "solar",
    "gas",
    "industry",
    "subindustry",
    "heatingtype",
    "yearbuilt",
    "date_opened",
    "numberoffloors",
    "occupants",
    "energystarscore",
    "eui",
    "site_eui",
    "source_eui",
    "leed_level",
    "rating",
)
_FLAG_SOURCE = {flag: meter for meter, flag in METER_FLAG_COLUMNS.items()}


def metadata_table(archive: Bdg2Archive) -> pa.Table:
    """The archive's metadata as a table with the `METADATA` schema."""
    with archive.open(METADATA_MEMBER) as stream:
        return read_metadata_csv(stream, archive.describe(METADATA_MEMBER))


def read_metadata_csv(stream: IO[bytes], member: str) -> pa.Table:
    """Parse and convert a metadata CSV stream; errors name `member`, the line and the column."""
    try:
        raw = pacsv.read_csv(
            stream,
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(SOURCE_COLUMNS, pa.string()),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise Bdg2CsvError(member, f"cannot be parsed as CSV ({exc})") from None
    missing = [name for name in SOURCE_COLUMNS if name not in raw.column_names]
    if missing:
        raise Bdg2CsvError(member, f"columns {missing} are missing from the header", line=1)
    columns = []
    for spec in METADATA.columns:
        source = _FLAG_SOURCE.get(spec.name, spec.name)
        values = raw.column(source).combine_chunks()
        columns.append(_convert(values, spec.arrow_type, spec.nullable, member, source))
    return pa.Table.from_arrays(columns, schema=METADATA.arrow_schema)


def _convert(values: pa.Array, arrow_type: pa.DataType, nullable: bool, member: str, name: str) -> pa.Array:
    if not nullable and not pa.types.is_boolean(arrow_type) and values.null_count:
        row = values.is_null().to_pylist().index(True)
        raise Bdg2CsvError(member, "empty, but every building needs a value here", line=row + 2, column=name)
    values = pc.utf8_trim_whitespace(values)
    if pa.types.is_boolean(arrow_type):
        bad = pc.and_(values.is_valid(), pc.not_equal(values, "Yes"))
        if pc.any(bad).as_py():
            row = bad.to_pylist().index(True)
            raise Bdg2CsvError(
                member,
                f"meter flag {values[row].as_py()!r}: expected `Yes` or empty",
                line=row + 2,
                column=name,
            )
        return pc.fill_null(pc.equal(values, "Yes"), False)
    if pa.types.is_string(arrow_type):
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    try:
        numbers = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        row = _first_bad_number(values)
        raise Bdg2CsvError(
            member, f"{values[row].as_py()!r} is not a number", line=row + 2, column=name
        ) from None
    if pa.types.is_integer(arrow_type):
        fractional = pc.not_equal(numbers, pc.floor(numbers))
        if pc.any(fractional).as_py():
            row = fractional.to_pylist().index(True)
            raise Bdg2CsvError(
                member, f"{values[row].as_py()!r} is not a whole number", line=row + 2, column=name
            )
        return pc.cast(numbers, arrow_type)
    return numbers


def _first_bad_number(values: pa.Array) -> int:
    for row, value in enumerate(values.to_pylist()):
        if value is None:
            continue
        try:
            float(value)
        except ValueError:
            return row
    return 0
