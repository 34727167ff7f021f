"""File-source benchmark: a 2,000,000-row CSV ingested end to end, against pandas on the same file.

Run from the repository root (not part of the test suite; a few minutes on two cores), preferably with `nice`:

    ENERGY_ASSETS_HOME=/tmp/bench_file_source nice python -m benchmarks.file_source
    ENERGY_ASSETS_HOME=/tmp/bench_file_source nice python -m benchmarks.file_source --rows 200000   # quicker

The generated file has 12 columns: a unique session id, a sensitive customer id (50,000 people), a station,
a day-first date and an `HH:MM` time in Europe/London across the spring DST change (times in the missing
hour included: the declaration says `ambiguous_times: later`), quoted addresses with commas, floats with
empty values, integers. Each side runs in a fresh child process, so `peak_rss_mb` is that process's own
high-water mark (`ru_maxrss`, interpreter and pyarrow included), in a database created for the run in the
managed cluster of ENERGY_ASSETS_HOME (verified TLS):

- ours: `sources.files.ingest.ingest_file` (read the file streamed, convert types and local times, pseudonymize,
  check the declaration's rules with lines, stage monthly Parquet partitions, audit them with DuckDB, merge into
  PostgreSQL with history, move the file to processed/);
- pandas: `read_csv`, `to_datetime(dayfirst=True)` of date + time, `tz_localize("Europe/London")`,
  `to_sql` in chunks of 10,000 rows (SQLAlchemy + psycopg2, same TLS parameters), no pseudonyms, no audit.

Ours also runs on a quarter of the file, to show whether peak memory grows with the file. The last line is one
JSON object: `rows`, `rows_per_s`, `pandas_rows_per_s`, `ratio_vs_pandas`, `peak_rss_mb`, plus details.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from energy_assets.postgres.admin import create_database, drop_database
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome

DEFAULT_WORKDIR = Path("/tmp/file_source_bench")
DATABASE = "file_source_bench"
SOURCE = "bench_sessions"
HEADER = [
    "Session ID",
    "Customer ID",
    "Station",
    "Start Date",
    "Start Time",
    "Energy (kWh)",
    "Duration (min)",
    "Cost (EUR)",
    "Address",
    "Status",
    "Connector",
    "SoC (%)",
]


def declaration_yaml() -> dict[str, object]:
    columns = [
        {"name": "session_id", "header": "Session ID", "nullable": False},
        {"name": "customer_id", "header": "Customer ID", "sensitive": True},
        {"name": "station", "header": "Station"},
        {"name": "start_date", "header": "Start Date", "type": "date", "format": "%d/%m/%Y"},
        {"name": "start_time", "header": "Start Time"},
        {"name": "energy_kwh", "header": "Energy (kWh)", "type": "float", "minimum": 0},
        {"name": "duration_min", "header": "Duration (min)", "type": "integer"},
        {"name": "cost_eur", "header": "Cost (EUR)", "type": "float"},
        {"name": "address", "header": "Address"},
        {"name": "status", "header": "Status", "allowed": ["completed", "aborted"]},
        {"name": "connector", "header": "Connector", "type": "integer"},
        {"name": "soc_percent", "header": "SoC (%)", "type": "float", "minimum": 0, "maximum": 100},
    ]
    return {
        "name": SOURCE,
        "columns": columns,
        "combined_times": [
            {"name": "started_at", "date": "start_date", "time": "start_time", "format": "%d/%m/%Y %H:%M"}
        ],
        "key": ["session_id"],
        "time_column": "started_at",
        "partition": "month",
        "timezone": "Europe/London",
        "ambiguous_times": "later",
    }


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """The CSV, written with pyarrow in blocks (dates from 1 March to 30 April 2023: the DST change is 26 March)."""
    rng = np.random.default_rng(seed)
    block = 250_000
    with open(path, "wb") as handle:
        handle.write((",".join(HEADER) + "\n").encode())
        for start in range(0, rows, block):
            n = min(block, rows - start)
            index = np.arange(start, start + n)
            days = rng.integers(0, 61, n)
            dates = np.datetime64("2023-03-01") + days
            minutes = rng.integers(0, 24 * 60, n)
            energy = np.round(rng.gamma(2.0, 8.0, n), 3).astype(str)
            energy[rng.random(n) < 0.05] = ""
            soc = np.round(rng.uniform(5, 100, n), 1).astype(str)
            soc[rng.random(n) < 0.1] = ""
            date_text = np.datetime_as_string(dates, unit="D")
            table = pa.table(
                {
                    "Session ID": np.char.add("S", index.astype(str)),
                    "Customer ID": np.char.add("C", rng.integers(0, 50_000, n).astype(str)),
                    "Station": np.char.add("ST-", rng.integers(0, 400, n).astype(str)),
                    "Start Date": [f"{d[8:10]}/{d[5:7]}/{d[0:4]}" for d in date_text],
                    "Start Time": [f"{m // 60:02d}:{m % 60:02d}" for m in minutes.tolist()],
                    "Energy (kWh)": energy,
                    "Duration (min)": rng.integers(5, 600, n),
                    "Cost (EUR)": np.round(rng.uniform(0, 80, n), 2),
                    "Address": np.char.add(
                        np.char.add("Street ", rng.integers(1, 200, n).astype(str)), ", Town"
                    ),
                    "Status": np.where(rng.random(n) < 0.97, "completed", "aborted"),
                    "Connector": rng.integers(1, 4, n),
                    "SoC (%)": soc,
                }
            )
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            handle.write(buffer.getvalue().to_pybytes())


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _settings() -> PostgresSettings:
    return ManagedCluster(DataHome.from_env()).ensure_running(DATABASE)


def child_ours(path: Path, workdir: Path) -> dict[str, float]:
    from energy_assets.sources.files.declaration import FileSourceDeclaration
    from energy_assets.sources.files.ingest import SourceInbox, ingest_file
    from energy_assets.sources.meters.identifiers import NmiProtector, generate_keys
    from energy_assets.sources.meters.inbox import sha256_of_file
    from energy_assets.warehouse.parquet_store import ParquetStore
    from energy_assets.warehouse.publish import Publisher

    settings = _settings()
    declaration = FileSourceDeclaration.model_validate(declaration_yaml())
    layout = SourceInbox(workdir / "inbox" / SOURCE)
    layout.ensure()
    inbox_file = layout.inbox / path.name
    shutil.copyfile(path, inbox_file)
    publisher = Publisher(settings, ParquetStore(workdir / "lake"), workdir / "rejected")
    protector = NmiProtector.from_text(*generate_keys())
    started = time.perf_counter()
    ingested = ingest_file(
        inbox_file,
        sha256_of_file(inbox_file),
        declaration=declaration,
        settings=settings,
        layout=layout,
        protector=protector,
        publish=publisher.publish_all,
    )
    seconds = time.perf_counter() - started
    return {"rows": ingested.rows, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def child_pandas(path: Path) -> dict[str, float]:
    import pandas as pd
    from sqlalchemy import create_engine

    settings = _settings()
    engine = create_engine("postgresql+psycopg2://", connect_args=settings.params())
    try:
        started = time.perf_counter()
        frame = pd.read_csv(path)
        local = pd.to_datetime(frame["Start Date"] + " " + frame["Start Time"], dayfirst=True)
        frame["started_at"] = local.dt.tz_localize(
            "Europe/London", ambiguous="NaT", nonexistent="shift_forward"
        ).dt.tz_convert("UTC")
        frame.to_sql(
            "pandas_sessions", engine, schema="public", if_exists="replace", index=False, chunksize=10_000
        )
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"rows": len(frame), "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def run_child(kind: str, path: Path, workdir: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.file_source",
            "--child",
            kind,
            str(path),
            "--workdir",
            str(workdir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_database() -> None:
    cluster = ManagedCluster(DataHome.from_env())
    admin = cluster.ensure_running("postgres")
    with connect(admin, autocommit=True) as conn:
        drop_database(conn, DATABASE, force=True)
        create_database(conn, DATABASE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, path = args.child
        result = child_ours(Path(path), args.workdir) if kind == "ours" else child_pandas(Path(path))
        print(json.dumps(result))
        return 0
    workdir: Path = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    sizes = sorted({max(1, args.rows // 4), args.rows})
    files = {}
    for rows in sizes:
        path = workdir / f"sessions_{rows}.csv"
        started = time.perf_counter()
        generate(path, rows)
        files[rows] = path
        print(
            f"file {path.name}: {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    ours = {}
    for rows in sizes:
        fresh_database()
        run_dir = workdir / f"run_{rows}"
        ours[rows] = run_child("ours", files[rows], run_dir)
        print(
            f"ours {rows:,} rows: {ours[rows]['seconds']:.1f}s, peak RSS {ours[rows]['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    largest = sizes[-1]
    fresh_database()
    theirs = run_child("pandas", files[largest], workdir)
    print(
        f"pandas {largest:,} rows: {theirs['seconds']:.1f}s, peak RSS {theirs['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    rows_per_s = largest / ours[largest]["seconds"]
    pandas_rows_per_s = largest / theirs["seconds"]
    summary = {
        "rows": largest,
        "rows_per_s": round(rows_per_s),
        "pandas_rows_per_s": round(pandas_rows_per_s),
        "ratio_vs_pandas": round(rows_per_s / pandas_rows_per_s, 2),
        "peak_rss_mb": round(ours[largest]["peak_rss_mb"], 1),
        "peak_rss_mb_by_rows": {str(rows): round(ours[rows]["peak_rss_mb"], 1) for rows in sizes},
        "seconds": round(ours[largest]["seconds"], 2),
        "pandas_seconds": round(theirs["seconds"], 2),
        "pandas_peak_rss_mb": round(theirs["peak_rss_mb"], 1),
    }
    os.environ.pop("PYTHONWARNINGS", None)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
