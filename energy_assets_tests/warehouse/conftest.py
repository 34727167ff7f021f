"""Warehouse test fixtures: a schema of its own per test on the session's managed cluster, a loader.

`pg_settings` comes from `energy_assets_tests/conftest.py` (verify-full TLS, superuser role).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.warehouse import TableName, WarehouseLoader


@pytest.fixture
def warehouse_schema(pg_settings: PostgresSettings) -> Iterator[str]:
    """A fresh schema for one test, dropped (with everything in it) afterwards."""
    name = f"wh_test_{uuid.uuid4().hex[:10]}"
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def loader(pg_settings: PostgresSettings) -> WarehouseLoader:
    return WarehouseLoader(pg_settings)


Query = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def query(pg_settings: PostgresSettings) -> Query:
    """Run one statement on a fresh connection and return all rows."""

    def run(statement: sql.Composable | str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        with connect(pg_settings) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    return run


@pytest.fixture
def table_rows(query: Query) -> Callable[[TableName, str], list[tuple[Any, ...]]]:
    """All rows of a table, ordered by one column."""

    def rows(table: TableName, order_by: str) -> list[tuple[Any, ...]]:
        return query(sql.SQL("SELECT * FROM {} ORDER BY {}").format(table.sql(), sql.Identifier(order_by)))

    return rows
