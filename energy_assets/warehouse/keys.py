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
        multipliers = []
        span = 1
        for low, high in zip(reversed(lows), reversed(highs), strict=True):
            multipliers.append(span)
            span *= high - low + 1
        if span >= _PACK_LIMIT:
            return None
        return cls(tuple(key), tuple(lows), tuple(reversed(multipliers)), tuple(highs))

    def pack(self, table: pa.Table) -> np.ndarray | None:
        """The packed key of every row, or None if a value lies outside the fitted ranges."""
        packed = np.zeros(table.num_rows, dtype=np.int64)
        for name, low, high, multiplier in zip(
            self.key, self.minimums, self.maximums, self.multipliers, strict=True
        ):
            values = int64_values(table[name])
            if values is None or (len(values) and (values.min() < low or values.max() > high)):
                return None
            packed += (values - low) * multiplier
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
    parts: list[tuple[np.ndarray, int, int]] = []
    for name in key:
        column = table[name]
        if column.null_count:
            return None
        values = int64_values(column)
        if values is not None:
            parts.append((values, int(values.min()), int(values.max())))
            continue
        if not any(
            test(column.type)
            for test in (
                pa.types.is_string,
                pa.types.is_large_string,
                pa.types.is_binary,
                pa.types.is_large_binary,
            )
        ):
            return None
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.unify_dictionaries()
            distinct = len(encoded.chunk(0).dictionary) if encoded.num_chunks else 0
            indices = [chunk.indices.to_numpy() for chunk in encoded.chunks]
            values = np.concatenate(indices).astype(np.int64) if indices else np.empty(0, np.int64)
        else:
            distinct = len(encoded.dictionary)
            values = encoded.indices.to_numpy().astype(np.int64)
        parts.append((values, 0, max(distinct - 1, 0)))
    codes = np.zeros(table.num_rows, dtype=np.int64)
    span = 1
    for values, low, high in reversed(parts):
        if span * (high - low + 1) >= _PACK_LIMIT:
            return None
        codes += (values - low) * span if span > 1 else values - low
        span *= high - low + 1
    return codes


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
