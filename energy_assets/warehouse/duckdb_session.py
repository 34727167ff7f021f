"""DuckDB sessions for the marts and the SQL files that define them. No Dagster here.

Every mart is DuckDB SQL in a source's `sql/<name>.sql`, run in a `deterministic_session`: one thread (sums
run in input order, so identical inputs give identical bytes; parallel aggregation changed the last digits
of energy sums and correlations between runs), the UTC time zone (Arrow results carry the session's zone,
and UTC keeps them comparable with `interval_start`), and insertion order kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TypeAlias

import duckdb
import pyarrow as pa

# An input relation: an Arrow table, or Parquet file(s) read as a view.
Relation: TypeAlias = pa.Table | str | Path | Sequence[str | Path]


def package_sql(package: str, name: str) -> str:
    """The text of `sql/<name>.sql` shipped in `package` (e.g. `energy_assets.sources.meters`)."""
    return resources.files(package).joinpath("sql", f"{name}.sql").read_text("utf-8")


@contextmanager
def deterministic_session(
    relations: Mapping[str, Relation] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh in-memory session with `relations` registered under their names; closed on exit."""
    connection = duckdb.connect()
    try:
        connection.execute("SET threads = 1")
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET preserve_insertion_order = true")
        for name, relation in (relations or {}).items():
            register(connection, name, relation)
        yield connection
    finally:
        connection.close()


def register(connection: duckdb.DuckDBPyConnection, name: str, relation: Relation) -> None:
    """Register an Arrow table, or create a view over Parquet file(s) (read in path order)."""
    if isinstance(relation, pa.Table):
        connection.register(name, relation)
        return
    paths = [str(relation)] if isinstance(relation, str | Path) else [str(path) for path in relation]
    connection.read_parquet(sorted(paths)).create_view(name, replace=True)
