"""Merges (CDC upserts): counts, history, both diff strategies, bad keys."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from energy_assets.errors import DataValidationError
from energy_assets.warehouse import TableName, WarehouseLoader
from energy_assets.warehouse import merge as merge_module
from energy_assets.warehouse.keys import KeyPacker
from energy_assets.warehouse.pg_types import PgType
from energy_assets.warehouse.row_diff import diff_rows

START = dt.datetime(2025, 10, 26, tzinfo=dt.timezone.utc)


def readings(values: dict[tuple[int, int], float | None], quality: str = "A") -> pa.Table:
    keys = sorted(values)
    return pa.table(
        {
            "series_id": pa.array([k[0] for k in keys], pa.int32()),
            "interval_start": pa.array(
                [START + dt.timedelta(minutes=15 * k[1]) for k in keys], pa.timestamp("us", "UTC")
            ),
            "value": pa.array([values[k] for k in keys], pa.float64()),
            "quality": [quality] * len(keys),
        }
    )


KEY = ["series_id", "interval_start"]


@pytest.fixture
def target(loader: WarehouseLoader, warehouse_schema: str) -> TableName:
    table = TableName(warehouse_schema, "readings")
    result = loader.merge(
        table, readings({(s, i): float(s * 100 + i) for s in (1, 2) for i in range(4)}), key=KEY
    )
    assert (result.inserted, result.strategy) == (8, "initial-copy")
    return table


def changes() -> pa.Table:
    values = {(s, i): float(s * 100 + i) for s in (1, 2) for i in range(4)}
    values[(1, 0)] = 999.0  # changed
    values[(2, 3)] = None  # changed to NULL
    values[(3, 0)] = 300.0  # new
    del values[(2, 2)]  # absent: merges do not delete
    return readings(values)


@pytest.mark.parametrize("key_after_initial_copy", [False, True])
def test_a_table_created_by_a_merge_has_its_key(
    loader: WarehouseLoader, query, warehouse_schema: str, key_after_initial_copy: bool
) -> None:
    # With `key_after_initial_copy` the initial COPY goes into a table without its primary key, which is then
    # built in one sort in the same transaction: the committed table is the same either way.
    table = TableName(warehouse_schema, "keyed")
    values = {(s, i): float(s * 100 + i) for s in (1, 2) for i in range(4)}
    result = loader.merge(table, readings(values), key=KEY, key_after_initial_copy=key_after_initial_copy)
    assert (result.inserted, result.strategy) == (8, "initial-copy")
    assert ("primary key" in result.timings) is key_after_initial_copy
    (constraint,) = query(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
        (f"{warehouse_schema}.keyed",),
    )
    assert constraint == ("keyed_pkey", "PRIMARY KEY (series_id, interval_start)")
    with pytest.raises(DataValidationError):
        loader.append(table, readings({(1, 0): 1.0}))


@pytest.mark.parametrize("key_after_initial_copy", [False, True])
def test_a_repeated_key_in_the_first_load_is_refused_and_creates_no_table(
    loader: WarehouseLoader, query, warehouse_schema: str, key_after_initial_copy: bool
) -> None:
    # With the key built after the COPY, the input's key is checked while the rows are copied: a repeat
    # raises the same clear error and rolls the new table back.
    table = TableName(warehouse_schema, "repeated")
    data = pa.concat_tables([readings({(1, 0): 1.0, (1, 1): 2.0}), readings({(1, 1): 3.0})])
    with pytest.raises(DataValidationError, match="not unique"):
        loader.merge(table, data, key=KEY, key_after_initial_copy=key_after_initial_copy)
    assert query("SELECT to_regclass(%s)", (f"{warehouse_schema}.repeated",)) == [(None,)]


def test_merge_counts_and_history(loader: WarehouseLoader, target: TableName, query, tmp_path: Path) -> None:
    path = tmp_path / "changes.parquet"
    pq.write_table(changes(), path)
    result = loader.merge(target, path, key=KEY, keep_history=True)
    assert (result.rows_in, result.inserted, result.updated, result.unchanged) == (8, 1, 2, 5)
    assert result.strategy == "client-diff"
    rows = query(
        sql.SQL("SELECT series_id, value FROM {} ORDER BY series_id, interval_start").format(target.sql())
    )
    assert rows == [
        (1, 999.0),
        (1, 101.0),
        (1, 102.0),
        (1, 103.0),
        (2, 200.0),
        (2, 201.0),
        (2, 202.0),
        (2, None),
        (3, 300.0),
    ]
    history = query(
        sql.SQL(
            "SELECT series_id, value, load_id, superseded_at IS NOT NULL FROM {} ORDER BY series_id"
        ).format(target.with_suffix("__history").sql())
    )
    assert history == [(1, 100.0, result.load_id, True), (2, 203.0, result.load_id, True)]

    again = loader.merge(target, path, key=KEY, keep_history=True)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 8)
    assert query(sql.SQL("SELECT count(*) FROM {}").format(target.with_suffix("__history").sql())) == [(2,)]


def test_nan_null_and_char_padding_count_as_unchanged(
    loader: WarehouseLoader, warehouse_schema: str, query
) -> None:
    table = TableName(warehouse_schema, "flags")
    query(sql.SQL("CREATE TABLE {} (id int8 PRIMARY KEY, value float8, code char(3))").format(table.sql()))
    first = pa.table({"id": [1, 2, 3], "value": [float("nan"), None, 1.0], "code": ["a", "b", "c"]})
    assert loader.merge(table, first, key=["id"]).inserted == 3
    # char(3) pads what it stores, so the target's rows come back as 'a  ', not 'a'.
    stored = query(sql.SQL("SELECT code FROM {} ORDER BY id").format(table.sql()))
    assert stored == [("a  ",), ("b  ",), ("c  ",)]

    again = loader.merge(table, first, key=["id"])
    assert (again.inserted, again.updated, again.unchanged, again.strategy) == (0, 0, 3, "client-diff")
    # The client-side diff saw NaN = NaN, NULL = NULL and 'a' = 'a  ': nothing was even staged.
    assert "stage changed rows" not in again.timings

    changed = pa.table({"id": [1, 2, 3], "value": [None, float("nan"), 1.0], "code": ["a", "b", "c  "]})
    swapped = loader.merge(table, changed, key=["id"])
    assert (swapped.updated, swapped.unchanged) == (2, 1)
    assert "stage changed rows" in swapped.timings


def test_char_keys_match_whatever_their_padding(
    loader: WarehouseLoader, warehouse_schema: str, query
) -> None:
    """Text keys diff in DuckDB; a char(4) key 'ab' must find the stored 'ab  ' instead of inserting it again."""
    table = TableName(warehouse_schema, "meters")
    query(sql.SQL("CREATE TABLE {} (nmi char(4) PRIMARY KEY, kwh float8)").format(table.sql()))
    first = pa.table({"nmi": ["ab", "cd"], "kwh": [1.0, 2.0]})
    loader.merge(table, first, key=["nmi"])
    result = loader.merge(table, pa.table({"nmi": ["ab", "cd ", "ef"], "kwh": [1.0, 2.5, 3.0]}), key=["nmi"])
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (1, 1, 1, "client-diff")
    assert query(sql.SQL("SELECT nmi, kwh FROM {} ORDER BY nmi").format(table.sql())) == [
        ("ab  ", 1.0),
        ("cd  ", 2.5),
        ("ef  ", 3.0),
    ]


def test_server_side_diff_gives_the_same_counts(
    loader: WarehouseLoader, target: TableName, query, monkeypatch
) -> None:
    # The target counts as too large to fetch for a client-side diff.
    monkeypatch.setattr(merge_module, "MAX_FETCH_RATIO", 0.0)
    monkeypatch.setattr(merge_module, "FETCH_ALLOWANCE_ROWS", 0)
    result = loader.merge(target, changes(), key=KEY, keep_history=True)
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (1, 2, 5, "server-diff")
    assert query(sql.SQL("SELECT count(*) FROM {}").format(target.with_suffix("__history").sql())) == [(2,)]


def test_merge_diffs_on_the_server_when_the_arrow_reader_cannot_connect(
    loader: WarehouseLoader, target: TableName, query, monkeypatch, caplog
) -> None:
    """The ADBC reader really fails to log in (wrong password); the merge still completes, on the server."""
    import adbc_driver_postgresql.dbapi as adbc

    real_connect = adbc.connect
    attempts: list[str] = []

    def connect_with_a_wrong_password(uri: str, *args, **kwargs):
        parts = urlsplit(uri)
        wrong = parts._replace(netloc=f"{parts.username}:wrong-password@{parts.hostname}:{parts.port}")
        attempts.append(wrong.geturl())
        return real_connect(wrong.geturl(), *args, **kwargs)

    monkeypatch.setattr(adbc, "connect", connect_with_a_wrong_password)
    before = {
        (s, t): v
        for s, t, v in query(sql.SQL("SELECT series_id, interval_start, value FROM {}").format(target.sql()))
    }
    incoming = changes()
    with caplog.at_level(logging.WARNING, logger="energy_assets.warehouse.merge"):
        result = loader.merge(target, incoming, key=KEY, keep_history=True)
    assert len(attempts) == 1
    assert "No reader connection for the merge into" in caplog.text and "diffing on the server" in caplog.text
    assert "password authentication failed" in caplog.text
    arriving = dict(zip(_keys_of(incoming), incoming["value"].to_pylist(), strict=True))
    new = [k for k in arriving if k not in before]
    changed = [k for k in arriving if k in before and arriving[k] != before[k]]
    same = [k for k in arriving if k in before and arriving[k] == before[k]]
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (
        len(new),
        len(changed),
        len(same),
        "server-diff",
    )
    after = query(sql.SQL("SELECT series_id, interval_start, value FROM {}").format(target.sql()))
    assert {(s, t): v for s, t, v in after} == {**before, **arriving}
    history = query(
        sql.SQL("SELECT series_id, interval_start, value FROM {}").format(
            target.with_suffix("__history").sql()
        )
    )
    assert sorted(((s, t), v) for s, t, v in history) == sorted((k, before[k]) for k in changed)


def _keys_of(table: pa.Table) -> list[tuple]:
    return list(zip(*(table[c].to_pylist() for c in KEY), strict=True))


def test_chunked_client_diff(loader: WarehouseLoader, target: TableName, monkeypatch) -> None:
    monkeypatch.setattr(merge_module, "CHUNK_ROWS", 3)
    result = loader.merge(target, changes(), key=KEY)
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (1, 2, 5, "client-diff")


def test_merge_that_adds_a_column_diffs_on_the_server(
    loader: WarehouseLoader, target: TableName, query
) -> None:
    data = changes().append_column("unit", pa.array(["MW"] * 8))
    result = loader.merge(target, data, key=KEY)
    assert result.schema_changes == ['add column "unit" text']
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (1, 7, 0, "server-diff")
    assert query(sql.SQL("SELECT count(*) FROM {} WHERE unit = 'MW'").format(target.sql())) == [(8,)]


def test_text_keys_use_the_duckdb_diff(loader: WarehouseLoader, warehouse_schema: str) -> None:
    table = TableName(warehouse_schema, "meters")
    loader.merge(table, pa.table({"nmi": ["NMI1", "NMI2"], "kwh": [1.0, 2.0]}), key=["nmi"])
    result = loader.merge(
        table, pa.table({"nmi": ["NMI1", "NMI2", "NMI3"], "kwh": [1.0, 2.5, 3.0]}), key=["nmi"]
    )
    assert (result.inserted, result.updated, result.unchanged) == (1, 1, 1)


def test_duplicate_keys_are_named_and_nothing_changes(
    loader: WarehouseLoader, target: TableName, table_rows
) -> None:
    before = table_rows(target, "value")
    data = pa.concat_tables([changes(), changes().slice(2, 1)])
    with pytest.raises(DataValidationError) as error:
        loader.merge(target, data, key=KEY)
    assert "not unique" in str(error.value)
    assert "'series_id': 1" in str(error.value) and "2025, 10, 26, 0, 30" in str(error.value)
    assert table_rows(target, "value") == before


def test_null_key_is_refused(loader: WarehouseLoader, target: TableName) -> None:
    data = changes().set_column(0, "series_id", pa.array([1, None, 1, 1, 2, 2, 2, 3], pa.int32()))
    with pytest.raises(DataValidationError, match="column 'series_id'.*NULL at row 1"):
        loader.merge(target, data, key=KEY)


def test_chunks_along_a_date_key(loader: WarehouseLoader, warehouse_schema: str, monkeypatch) -> None:
    monkeypatch.setattr(merge_module, "CHUNK_ROWS", 2)
    table = TableName(warehouse_schema, "daily")
    days = [dt.date(2025, 10, d) for d in range(20, 27)]
    loader.merge(table, pa.table({"day": days, "energy_mwh": [float(d.day) for d in days]}), key=["day"])
    later = [*days, dt.date(2025, 10, 27)]
    values = [float(d.day) for d in later]
    values[3] = -1.0
    result = loader.merge(table, pa.table({"day": later, "energy_mwh": values}), key=["day"])
    assert (result.inserted, result.updated, result.unchanged, result.strategy) == (1, 1, 6, "client-diff")


def test_delete_missing_in_scope_removes_rows_the_source_dropped(
    loader: WarehouseLoader, target: TableName, query
) -> None:
    # Series 2 is re-fetched for its first three quarter hours; (2, 2) is gone from the source.
    # Series 1 is outside the scope: its rows stay although this input does not mention them.
    refetch = readings({(2, 0): 200.0, (2, 1): 250.0})
    scope = {"series_id": 2, "interval_start": (START, START + dt.timedelta(minutes=45))}
    result = loader.merge(target, refetch, key=KEY, keep_history=True, delete_missing_in=[scope])
    assert (result.inserted, result.updated, result.unchanged, result.deleted) == (0, 1, 1, 1)
    rows = query(
        sql.SQL("SELECT series_id, value FROM {} ORDER BY series_id, interval_start").format(target.sql())
    )
    assert rows == [(1, 100.0), (1, 101.0), (1, 102.0), (1, 103.0), (2, 200.0), (2, 250.0), (2, 203.0)]
    history = query(
        sql.SQL("SELECT series_id, value FROM {} ORDER BY value").format(
            target.with_suffix("__history").sql()
        )
    )
    assert history == [(2, 201.0), (2, 202.0)]
    # Run again: nothing left to change or delete.
    again = loader.merge(target, refetch, key=KEY, delete_missing_in=[scope])
    assert (again.updated, again.unchanged, again.deleted) == (0, 2, 0)


def test_delete_missing_rolls_back_with_a_failed_merge(
    loader: WarehouseLoader, target: TableName, query
) -> None:
    bad = readings({(2, 0): 1.0, (2, 1): 2.0})
    bad = pa.concat_tables([bad, bad])  # duplicate keys: the merge fails
    with pytest.raises(DataValidationError):
        loader.merge(target, bad, key=KEY, delete_missing_in=[{"series_id": 2}])
    assert query(sql.SQL("SELECT count(*) FROM {}").format(target.sql())) == [(8,)]


# -- the client-side diff on its own (no database) ------------------------------------------------------


def sorted_rows(table: pa.Table) -> list[tuple]:
    return sorted(zip(*(table[name].to_pylist() for name in table.column_names), strict=True))


INT_TYPES = {"series_id": PgType("int4"), "value": PgType("float8")}


@pytest.mark.parametrize(
    "current_ids",
    [[3, 1, 2], [1, 2, 3, 9], []],
    ids=["target rows in any order", "target key outside the input's range", "empty target"],
)
@pytest.mark.parametrize("packed", [True, False], ids=["packed keys", "duckdb join"])
def test_diff_rows_finds_changed_and_new_rows(current_ids: list[int], packed: bool) -> None:
    incoming = pa.table({"series_id": pa.array([1, 2, 3, 4], pa.int32()), "value": [1.0, 2.5, 3.0, 4.0]})
    stored = {1: 1.0, 2: 2.0, 3: 3.0, 9: 9.0}
    current = pa.table(
        {
            "series_id": pa.array(current_ids, pa.int32()),
            "value": pa.array([stored[i] for i in current_ids], pa.float64()),
        }
    )
    packer = KeyPacker.fit(incoming, ["series_id"]) if packed else None
    changed, new = diff_rows(incoming, current, ["series_id"], ["value"], INT_TYPES, packer)
    arriving = dict(zip(incoming["series_id"].to_pylist(), incoming["value"].to_pylist(), strict=True))
    present = {i: stored[i] for i in current_ids}
    assert sorted_rows(changed) == sorted(
        (i, v) for i, v in arriving.items() if i in present and present[i] != v
    )
    assert sorted_rows(new) == sorted((i, v) for i, v in arriving.items() if i not in present)
    assert changed.schema == new.schema == incoming.schema


def test_diff_rows_on_a_composite_text_key_with_odd_names() -> None:
    types = {'a"b': PgType("text"), "k2": PgType("varchar", (3,)), "v": PgType("float8")}
    incoming = pa.table({'a"b': ["x", "x", "y"], "k2": ["1", "2", "1"], "v": [1.0, 2.0, 3.0]})
    current = pa.table({'a"b': ["x", "x"], "k2": ["2", "1"], "v": [2.0, 9.0]})
    changed, new = diff_rows(incoming, current, ['a"b', "k2"], ["v"], types)
    assert sorted_rows(changed) == [("x", "1", 1.0)]
    assert sorted_rows(new) == [("y", "1", 3.0)]


def test_diff_rows_of_a_key_only_table_reports_only_new_keys() -> None:
    types = {"nmi": PgType("text")}
    incoming = pa.table({"nmi": ["NMI1", "NMI2"]})
    changed, new = diff_rows(incoming, pa.table({"nmi": ["NMI1"]}), ["nmi"], [], types)
    assert (changed.num_rows, new["nmi"].to_pylist()) == (0, ["NMI2"])
