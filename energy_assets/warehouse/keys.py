"""Natural keys: uniqueness checks, and packing integer / date / time keys into one sortable int64.

A key made of integer and temporal columns whose value ranges multiply to less than 2**62 packs into
a single int64 that sorts like the key (`KeyPacker`); the merge's client-side diff then works on one
numpy array instead of hashing several columns. Uniqueness checks go further (`row_key_codes`): text
key columns join as indices into their distinct values, so a key like (building_id, meter, timestamp)
is checked by sorting one int64 per row. Other keys take the general (hash-based) path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.errors import DataValidationError

_PACK_LIMIT = 1 << 62


def int64_values(array: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Integer, date or timestamp values as int64 numpy (days, or the timestamp's unit); None otherwise."""
    t = array.type
    if array.null_count:
        return None
    if pa.types.is_date32(t):
        array = pc.cast(array, pa.int32())
    elif not (pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date64(t)):
        return None
    if pa.types.is_uint64(t):
        return None
    values = pc.cast(array, pa.int64())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.to_numpy(zero_copy_only=False)


def scalar_from_int64(value: int, arrow_type: pa.DataType) -> pa.Scalar:
    """The inverse of `int64_values` for one value."""
    if pa.types.is_date32(arrow_type):
        return pa.scalar(int(value), pa.int32()).cast(arrow_type)
    return pa.scalar(int(value), pa.int64()).cast(arrow_type)


@dataclass(frozen=True)
class KeyPacker:
    """Packs key columns into one int64 that orders rows like the key (within the fitted ranges)."""

    key: tuple[str, ...]
    minimums: tuple[int, ...]
    multipliers: tuple[int, ...]
    maximums: tuple[int, ...]

    @classmethod
    def fit(cls, table: pa.Table, key: Sequence[str]) -> KeyPacker | None:
        """A packer for the value ranges of `table`'s key columns, or None if they don't fit."""
        if table.num_rows == 0:
            return None
        lows, highs = [], []
        for name in key:
            values = int64_values(table[name])
            if values is None:
                return None
            lows.append(int(values.min()))
            highs.append(int(values.max()))
        multipliers = _radixes(list(zip(lows, highs, strict=True)))
        if multipliers is None:
            return None
        return cls(tuple(key), tuple(lows), tuple(multipliers), tuple(highs))

    def pack(self, table: pa.Table) -> np.ndarray | None:
        """The packed key of every row, or None if a value lies outside the fitted ranges."""
        columns = []
        for name, low, high in zip(self.key, self.minimums, self.maximums, strict=True):
            values = int64_values(table[name])
            if values is None or (len(values) and (values.min() < low or values.max() > high)):
                return None
            columns.append(values)
        return _combine(columns, self.minimums, self.multipliers, table.num_rows)


def _radixes(ranges: Sequence[tuple[int, int]]) -> list[int] | None:
    """Multipliers that combine values in the inclusive `ranges` into one int64 ordered like the tuple (the
    last column varies fastest); None when the combined range reaches 2**62."""
    multipliers = []
    span = 1
    for low, high in reversed(ranges):
        multipliers.append(span)
        span *= high - low + 1
    return None if span >= _PACK_LIMIT else multipliers[::-1]


def _combine(
    columns: Sequence[np.ndarray], lows: Sequence[int], multipliers: Sequence[int], rows: int
) -> np.ndarray:
    """`sum((column - low) * multiplier)` over the columns, one int64 per row."""
    packed = np.zeros(rows, dtype=np.int64)
    for values, low, multiplier in zip(columns, lows, multipliers, strict=True):
        packed += (values - low) * multiplier if multiplier > 1 else values - low
    return packed


def is_strictly_increasing(values: np.ndarray) -> bool:
    return bool(len(values) < 2 or (values[1:] > values[:-1]).all())


def row_key_codes(table: pa.Table, key: Sequence[str]) -> np.ndarray | None:
    """One int64 per row, equal for two rows exactly when their keys are; None when it does not apply.

    Integer and temporal key columns contribute their values, text and binary columns each row's index
    into the column's distinct values (`dictionary_encode`: one hash pass), combined with the value
    ranges as radixes. Unlike `KeyPacker`, the codes need not sort like the key: they serve equality
    only. None for NULLs, other types, or ranges that do not fit in 62 bits.
    """
    if table.num_rows == 0:
        return None
    columns: list[np.ndarray] = []
    ranges: list[tuple[int, int]] = []
    for name in key:
        column = table[name]
        if column.null_count:
            return None
        values = int64_values(column)
        if values is not None:
            columns.append(values)
            ranges.append((int(values.min()), int(values.max())))
        elif (
            pa.types.is_string(column.type)
            or pa.types.is_large_string(column.type)
            or pa.types.is_binary(column.type)
            or pa.types.is_large_binary(column.type)
        ):
            encoded = pc.dictionary_encode(column).unify_dictionaries()  # a table's column is chunked
            columns.append(
                np.concatenate([chunk.indices.to_numpy() for chunk in encoded.chunks]).astype(np.int64)
            )
            ranges.append((0, max(len(encoded.chunk(0).dictionary) - 1, 0)))
        else:
            return None
    multipliers = _radixes(ranges)
    if multipliers is None:
        return None
    return _combine(columns, [low for low, _ in ranges], multipliers, table.num_rows)


def duplicate_keys(table: pa.Table, key: Sequence[str], limit: int = 5) -> list[dict[str, Any]]:
    """Up to `limit` key values that occur more than once."""
    codes = row_key_codes(table, key)
    if codes is not None and (is_strictly_increasing(codes) or is_strictly_increasing(np.sort(codes))):
        return []  # sorting one int64 per row is several times cheaper than hashing the key columns
    # Single-threaded: Arrow's threaded hash aggregation costs more CPU than it saves here.
    counts = table.select(list(key)).group_by(list(key), use_threads=False).aggregate([([], "count_all")])
    duplicated = counts.filter(pc.greater(counts["count_all"], 1))
    return duplicated.slice(0, limit).select(list(key)).to_pylist()


def check_primary_key(table: pa.Table, key: Sequence[str], *, source: str) -> None:
    """Raise `DataValidationError` if a key column is missing, holds NULLs, or key values repeat."""
    for name in key:
        if name not in table.column_names:
            raise DataValidationError(
                f"{source}: key column {name!r} is not in the data ({table.column_names})."
            )
        nulls = table[name].null_count
        if nulls:
            row = pc.index(pc.is_null(table[name]), True).as_py()
            raise DataValidationError(
                f"{source}: key column {name!r} is NULL in {nulls} rows (first at row {row})."
            )
    duplicates = duplicate_keys(table, key)
    if duplicates:
        raise DataValidationError(
            f"{source}: key {list(key)} is not unique; repeated values include {duplicates}. "
            "Deduplicate the input or choose a longer key."
        )
