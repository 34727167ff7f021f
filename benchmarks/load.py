"""Load benchmark: the warehouse loader against the server's own COPY, pandas `to_sql`, and a merge.

Run from the repository root (not part of the test suite):

    python -m benchmarks.load                      # the managed cluster (started if needed)
    python -m benchmarks.load --pg-url 'postgresql://user@host:5432/energy?sslmode=verify-full&sslrootcert=ca.crt'

`--pg-url` (or `ENERGY_PG_URL`) points at another server; server-side `COPY FROM` a file then needs
that server on this machine, running as a user who can read a file under /tmp, and a role that is
superuser or has `pg_read_server_files`.

One run generates 2,000,000 rows (`interval_start timestamptz, series_id int4, value float8` with
NULLs, `quality char(1)`) into a Parquet file and measures, with the same table definition (logged
table, same indexes, a fresh table per run, CHECKPOINT before each timed step):
- the server reading the same rows from a binary COPY file (the physical limit), with and without
  the primary key (series_id, interval_start);
- `WarehouseLoader.append` from the Parquet file (connect, read, conform, binary COPY, commit);
- pandas `to_sql` (SQLAlchemy + psycopg2, same TLS parameters) on 200,000 rows;
- `WarehouseLoader.merge` of 2,000,000 input rows (10% changed, 1% new) into the 2,000,000-row table,
  wall time of the whole merge including its staging.
Medians of `--repeat` runs. The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import ENV_PG_URL
from energy_assets.warehouse.binary_copy import build_encoder
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.loader import WarehouseLoader
from energy_assets.warehouse.pg_types import PgType

SCHEMA = "energy_bench"
KEY = ["series_id", "interval_start"]
PG_TYPES = {
    "interval_start": PgType("timestamptz"),
    "series_id": PgType("int4"),
    "value": PgType("float8"),
    "quality": PgType("char", (1,)),
}
COLUMNS_DDL = "interval_start timestamptz NOT NULL, series_id int4 NOT NULL, value float8, quality char(1)"
SERIES = 200
QUARTER_HOUR_US = 900_000_000


# ---------------------------------------------------------------------- data
def make_rows(rows: int, seed: int = 7) -> pa.Table:
    """`rows` quarter-hour values of `SERIES` series, 2% NULL values, quality flags A-E."""
    rng = np.random.default_rng(seed)
    per_series = rows // SERIES
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    series = np.repeat(np.arange(1, SERIES + 1, dtype=np.int32), per_series)
    times = start + np.tile(np.arange(per_series, dtype=np.int64) * QUARTER_HOUR_US, SERIES)
    values = np.round(rng.normal(50.0, 20.0, size=series.size), 3)
    nulls = rng.random(series.size) < 0.02
    quality = np.array(list("ABCDE"))[rng.integers(0, 5, size=series.size)]
    return pa.table(
        {
            "interval_start": pa.array(times, pa.timestamp("us", tz="UTC")),
            "series_id": pa.array(series),
            "value": pa.array(values, mask=nulls),
            "quality": pa.array(quality, pa.string()),
        }
    )


def make_merge_input(base: pa.Table, seed: int = 11) -> tuple[pa.Table, int, int]:
    """Same size as `base`: 10% of rows changed, 1% replaced by new keys (later intervals)."""
    rng = np.random.default_rng(seed)
    n = base.num_rows
    new_count, changed_count = n // 100, n // 10
    picks = rng.permutation(n)
    new_rows, changed_rows = picks[:new_count], picks[new_count : new_count + changed_count]
    times = base["interval_start"].combine_chunks().cast(pa.int64()).to_numpy().copy()
    times[new_rows] += (n // SERIES) * QUARTER_HOUR_US  # beyond the last interval: new keys
    values = base["value"].combine_chunks()
    mask = np.zeros(n, dtype=bool)
    mask[changed_rows] = True
    filled = pc.fill_null(values, 0.0).to_numpy(zero_copy_only=False)
    changed_values = pa.array(
        np.where(mask, filled + 1.0, filled), mask=~mask & values.is_null().to_numpy(False)
    )
    table = base.set_column(0, "interval_start", pa.array(times, pa.timestamp("us", tz="UTC")))
    table = table.set_column(2, "value", changed_values)
    return table, changed_count, new_count


# ---------------------------------------------------------------------- settings
def resolve_settings(pg_url: str | None) -> PostgresSettings:
    if pg_url:
        from energy_assets.postgres.settings_from_env import external_settings

        return external_settings(pg_url)
    from energy_assets.postgres.cluster import ManagedCluster
    from energy_assets.settings import DataHome

    return ManagedCluster.from_data_home(DataHome.from_env()).ensure_running()


# ---------------------------------------------------------------------- timing helpers
class Bench:
    def __init__(self, settings: PostgresSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.loader = WarehouseLoader(settings)
        with connect(settings, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))

    def execute(self, statement: sql.Composable | str) -> None:
        with connect(self.settings, autocommit=True) as conn:
            conn.execute(statement)

    def fresh_table(self, name: str, primary_key: bool) -> TableName:
        table = TableName(SCHEMA, name)
        pk = sql.SQL(", PRIMARY KEY (series_id, interval_start)") if primary_key else sql.SQL("")
        self.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table.sql()))
        self.execute(sql.SQL("CREATE TABLE {} (" + COLUMNS_DDL + "{})").format(table.sql(), pk))
        self.checkpoint()
        return table

    def checkpoint(self) -> None:
        try:
            self.execute("CHECKPOINT")
        except Exception as exc:  # needs superuser or pg_checkpoint; the figures are noisier without
            print(f"(CHECKPOINT not allowed: {exc})", file=sys.stderr)

    def server_copy(self, path: Path, table: TableName) -> float:
        """A complete load by the server itself: connect, COPY FROM the file, commit."""
        started = time.perf_counter()
        with connect(self.settings) as conn:
            conn.execute(
                sql.SQL("COPY {} FROM {} (FORMAT binary)").format(table.sql(), sql.Literal(str(path)))
            )
            conn.commit()
        return time.perf_counter() - started

    def count(self, table: TableName) -> int:
        with connect(self.settings) as conn:
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table.sql())).fetchone()[0]


def write_binary_copy_file(table: pa.Table, path: Path) -> None:
    """The rows as a PostgreSQL binary COPY file the server process can read."""
    encoder = build_encoder(table.schema, PG_TYPES)
    with open(path, "wb") as handle:
        handle.write(encoder.write_header())
        for batch in table.to_batches(max_chunksize=131_072):
            handle.write(encoder.write_batch(batch))
        handle.write(encoder.finish())
    os.chmod(path, 0o644)


def to_sql_seconds(settings: PostgresSettings, frame, table: TableName) -> float:
    from sqlalchemy import create_engine

    engine = create_engine("postgresql+psycopg2://", connect_args=settings.params())
    try:
        started = time.perf_counter()
        frame.to_sql(table.name, engine, schema=table.schema, if_exists="append", index=False)
        return time.perf_counter() - started
    finally:
        engine.dispose()


def median(values: list[float]) -> float:
    return statistics.median(values)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pg-url", default=os.environ.get(ENV_PG_URL), help="libpq URI (default: managed cluster)"
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--to-sql-rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    settings = resolve_settings(args.pg_url)
    print(f"server: {settings.describe()}")
    workdir = Path(tempfile.mkdtemp(prefix="energy_bench_", dir="/tmp"))
    os.chmod(workdir, 0o755)  # the server process (OS user postgres) reads the COPY file here
    try:
        return run(settings, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(settings: PostgresSettings, workdir: Path, args: argparse.Namespace) -> int:
    rows = make_rows(args.rows)
    parquet_path = workdir / "rows.parquet"
    pq.write_table(rows, parquet_path, compression="zstd")
    copy_path = workdir / "rows.pgcopy"
    write_binary_copy_file(rows, copy_path)
    merge_input, changed, new = make_merge_input(rows)
    merge_path = workdir / "merge.parquet"
    pq.write_table(merge_input, merge_path, compression="zstd")
    n = rows.num_rows
    print(
        f"{n:,} rows; Parquet {parquet_path.stat().st_size / 1e6:.1f} MB, COPY file {copy_path.stat().st_size / 1e6:.1f} MB"
    )

    bench = Bench(settings, workdir)
    bench.loader.append(TableName(SCHEMA, "warmup"), rows.slice(0, 1000))  # meta tables, imports, caches

    times: dict[str, list[float]] = {k: [] for k in ("server", "loader", "server_pk", "loader_pk")}
    steps: dict[str, list[dict[str, float]]] = {"loader": [], "loader_pk": []}

    def run_server(pk: bool) -> None:
        table = bench.fresh_table("server_copy", pk)
        times["server_pk" if pk else "server"].append(bench.server_copy(copy_path, table))
        assert bench.count(table) == n

    def run_loader(pk: bool) -> None:
        table = bench.fresh_table("loader", pk)
        started = time.perf_counter()
        result = bench.loader.append(table, parquet_path)
        times["loader_pk" if pk else "loader"].append(time.perf_counter() - started)
        steps["loader_pk" if pk else "loader"].append(result.timings)
        assert bench.count(table) == n

    for rep in range(args.repeat):
        for pk in (False, True):
            # Alternate who goes first, so drift within a pair does not favour either.
            for step in (run_server, run_loader) if rep % 2 == 0 else (run_loader, run_server):
                step(pk)
        print(f"run {rep + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))

    for name, runs in steps.items():
        print(
            f"{name} steps (median s): "
            + ", ".join(f"{k} {median([r.get(k, 0.0) for r in runs]):.3f}" for k in runs[0])
        )

    frame = rows.slice(0, args.to_sql_rows).to_pandas()
    to_sql = {}
    for pk in (False, True):
        table = bench.fresh_table("to_sql", pk)
        to_sql[pk] = to_sql_seconds(settings, frame, table)
        assert bench.count(table) == args.to_sql_rows

    merge_times = []
    for rep in range(args.repeat):
        table = TableName(SCHEMA, "merge_target")
        bench.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table.sql()))
        bench.loader.merge(table, parquet_path, key=KEY)
        bench.execute(sql.SQL("VACUUM ANALYZE {}").format(table.sql()))
        bench.checkpoint()
        started = time.perf_counter()
        result = bench.loader.merge(table, merge_path, key=KEY)
        merge_times.append(time.perf_counter() - started)
        assert (result.inserted, result.updated) == (new, changed), result
        print(f"merge run {rep + 1}: {merge_times[-1]:.3f}s ({result.summary()}, strategy {result.strategy})")
        print("  steps: " + ", ".join(f"{k} {v:.3f}" for k, v in result.timings.items()))

    rate = {k: n / median(v) for k, v in times.items()}
    to_sql_rate = {pk: args.to_sql_rows / s for pk, s in to_sql.items()}
    merge_rate = n / median(merge_times)
    print()
    print(f"server COPY FROM file (binary), no key : {rate['server']:>12,.0f} rows/s")
    print(f"warehouse loader (binary COPY), no key : {rate['loader']:>12,.0f} rows/s")
    print(f"server COPY FROM file (binary), key    : {rate['server_pk']:>12,.0f} rows/s")
    print(f"warehouse loader (binary COPY), key    : {rate['loader_pk']:>12,.0f} rows/s")
    print(f"pandas to_sql, no key ({args.to_sql_rows:,} rows)  : {to_sql_rate[False]:>12,.0f} rows/s")
    print(f"pandas to_sql, key ({args.to_sql_rows:,} rows)     : {to_sql_rate[True]:>12,.0f} rows/s")
    print(f"merge, {changed:,} changed + {new:,} new : {merge_rate:>12,.0f} input rows/s")
    print(
        f"loader / server COPY: {rate['loader'] / rate['server']:.3f} (no key), "
        f"{rate['loader_pk'] / rate['server_pk']:.3f} (key); loader / to_sql: "
        f"{rate['loader'] / to_sql_rate[False]:.1f} (no key), {rate['loader_pk'] / to_sql_rate[True]:.1f} (key)"
    )
    summary = {
        "loader_rows_per_s": round(rate["loader"]),
        "server_copy_rows_per_s": round(rate["server"]),
        "to_sql_rows_per_s": round(to_sql_rate[False]),
        "ratio_vs_server_copy": round(rate["loader"] / rate["server"], 3),
        "ratio_vs_server_copy_pk": round(rate["loader_pk"] / rate["server_pk"], 3),
        "ratio_vs_to_sql": round(rate["loader"] / to_sql_rate[False], 1),
        "merge_rows_per_s": round(merge_rate),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
