"""Client-side diff for merges: which incoming rows are new, which differ from the target's rows.

Comparison follows PostgreSQL's `IS DISTINCT FROM`: NULL equals NULL, NaN equals NaN, char(n)
ignores trailing spaces. Keys that pack into one int64 (`keys.KeyPacker`) are matched with a sorted
search in numpy, and values compared column by column with Arrow kernels; other keys are joined in
DuckDB. Either way the result only pre-selects rows: the server's UPDATE re-checks each one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.warehouse.keys import KeyPacker, is_strictly_increasing
from energy_assets.warehouse.pg_types import PgType

NEW_FLAG = "__energy_is_new"


def diff_rows(
    incoming: pa.Table,
    current: pa.Table,
    key: Sequence[str],
    values: Sequence[str],
    pg_types: Mapping[str, PgType],
    packer: KeyPacker | None = None,
) -> tuple[pa.Table, pa.Table]:
    """(changed rows, new rows) of `incoming`; `current` holds the target's rows (same column types)."""
    if packer is not None:
        incoming_keys, current_keys = packer.pack(incoming), packer.pack(current)
        if incoming_keys is not None and current_keys is not None:
            return _packed_diff(incoming, current, incoming_keys, current_keys, values, pg_types)
    return _duckdb_diff(incoming, current, list(key), list(values), pg_types)


def distinct_mask(new: pa.ChunkedArray, old: pa.ChunkedArray, pg_type: PgType) -> np.ndarray:
    """Row-wise `new IS DISTINCT FROM old` as a numpy bool array."""
    if pg_type.base == "char":
        new, old = pc.utf8_rtrim(new, characters=" "), pc.utf8_rtrim(old, characters=" ")
    same = pc.or_(pc.fill_null(pc.equal(new, old), False), pc.and_(pc.is_null(new), pc.is_null(old)))
    if pa.types.is_floating(new.type):
        both_nan = pc.and_(pc.fill_null(pc.is_nan(new), False), pc.fill_null(pc.is_nan(old), False))
        same = pc.or_(same, both_nan)
    if isinstance(same, pa.ChunkedArray):
        same = same.combine_chunks()
    return ~same.to_numpy(zero_copy_only=False)


def _packed_diff(
    incoming: pa.Table,
    current: pa.Table,
    incoming_keys: np.ndarray,
    current_keys: np.ndarray,
    values: Sequence[str],
    pg_types: Mapping[str, PgType],
) -> tuple[pa.Table, pa.Table]:
    if not is_strictly_increasing(current_keys):
        order = np.argsort(current_keys, kind="stable")
        current_keys, current = current_keys[order], current.take(order)
    if len(current_keys):
        positions = np.minimum(np.searchsorted(current_keys, incoming_keys), len(current_keys) - 1)
        matched = current_keys[positions] == incoming_keys
    else:
        positions = np.zeros(len(incoming_keys), dtype=np.int64)
        matched = np.zeros(len(incoming_keys), dtype=bool)
    new = incoming.filter(pa.array(~matched))
    existing = incoming.filter(pa.array(matched))
    before = current.select(list(values)).take(positions[matched])
    changed_mask = np.zeros(existing.num_rows, dtype=bool)
    for name in values:
        changed_mask |= distinct_mask(existing[name], before[name], pg_types[name])
    return existing.filter(pa.array(changed_mask)), new


def _duck(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_diff(
    incoming: pa.Table, current: pa.Table, key: list[str], values: list[str], pg_types: Mapping[str, PgType]
) -> tuple[pa.Table, pa.Table]:
    import duckdb

    def expr(alias: str, name: str) -> str:
        ref = f"{alias}.{_duck(name)}"
        return f"rtrim({ref}, ' ')" if pg_types[name].base == "char" else ref

    on = " AND ".join(f"{expr('i', k)} = {expr('c', k)}" for k in key)
    absent = f"c.{_duck(key[0])} IS NULL"
    differs = " OR ".join(f"{expr('i', v)} IS DISTINCT FROM {expr('c', v)}" for v in values) or "false"
    query = (
        f"SELECT i.*, {absent} AS {_duck(NEW_FLAG)} FROM incoming AS i LEFT JOIN current_rows AS c ON {on} "
        f"WHERE {absent} OR {differs}"
    )
    con = duckdb.connect()
    try:
        con.execute("SET preserve_insertion_order = false")
        con.register("incoming", incoming)
        con.register("current_rows", current)
        result = con.sql(query).to_arrow_table()
    finally:
        con.close()
    is_new = result[NEW_FLAG]
    result = result.drop_columns([NEW_FLAG]).cast(incoming.schema)
    changed = result.filter(pc.invert(is_new))
    # In key order the server's index lookups walk the index (and a clustered heap) forwards.
    changed = changed.take(pc.sort_indices(changed, [(k, "ascending") for k in key]))
    return changed, result.filter(is_new)
