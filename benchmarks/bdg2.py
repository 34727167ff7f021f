"""BDG2 benchmark: the wide -> long meter conversion against pandas, and the full path into PostgreSQL.

Run from the repository root (not part of the test suite):

    nice python -m benchmarks.bdg2                       # generates /tmp/bdg2_bench/electricity_wide.csv once
    nice python -m benchmarks.bdg2 --skip-full-path      # conversions only, no PostgreSQL
    ENERGY_ASSETS_HOME=/tmp/bdg2_bench/home nice python -m benchmarks.bdg2   # a private managed cluster

The input has the real dimensions of `electricity.csv`: 17,544 hourly rows x 1,578 building columns
(27,684,432 cells), about 30 % empty cells, CRLF line endings, values with representation noise
(`64.686000000000021`). It is generated once (seeded) and reused.

Each contender runs alone in a child process (so `peak_rss_mb` is its own peak, interpreter included), `--repeat`
times (default 3, in interleaved rounds); its median run by wall time is the one reported, because single runs
vary: pandas' run takes 3.8-4.6 s or 5.2-6.4 s from one process to the next on the same machine. Contenders:
- the project's conversion (`readings.convert_meter_file`: 2 MB pieces tokenized with numpy and parsed with
  Arrow's cast two at a time, appended to Parquet in order; non-empty cells only);
- `pandas.read_csv` + `melt` + `to_parquet` of the same file (the earlier pipeline's approach, which also keeps
  the empty cells as NaN rows);
- DuckDB `read_csv` + `UNPIVOT` -> Parquet (the alternative the issue asked to measure).
`values_per_s` counts cells of the wide file per second, the same numerator for every contender. Each
child imports its contender's modules before the clock starts (`IMPORTS`), so the conversions are timed, not
module loading.

The full path serves the file zipped in a BDG2-shaped archive from a loopback Zenodo-shaped server, downloads
it with `LiveZenodoClient` (streamed, size + md5 verified, atomically published), converts the member and
publishes the Parquet with `WarehouseLoader.merge` into a fresh table (key building_id, meter, timestamp) over
verify-full TLS. The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROWS = 17_544
BUILDINGS = 1_578
EMPTY_FRACTION = 0.30
SEED = 20160101
SITES = (
    "Bear Bobcat Bull Cockatoo Crow Eagle Fox Gator Hog Lamb Moose Mouse Panther Peacock Rat Robin Shrew Swan Wolf"
).split()
USES = ("office", "education", "lodging", "assembly", "public", "parking", "health", "retail")
DEFAULT_WORKDIR = Path("/tmp/bdg2_bench")
CSV_NAME = "electricity_wide.csv"


# ---------------------------------------------------------------------- data
def building_ids(count: int = BUILDINGS) -> list[str]:
    return [f"{SITES[i % len(SITES)]}_{USES[i % len(USES)]}_B{i:04d}" for i in range(count)]


def generate_wide_csv(path: Path, rows: int = ROWS, buildings: int = BUILDINGS, seed: int = SEED) -> Path:
    """A wide meter file of the real shape; reused when `<path>.json` records the same parameters."""
    params = {
        "rows": rows,
        "buildings": buildings,
        "empty_fraction": EMPTY_FRACTION,
        "seed": seed,
        "version": 1,
    }
    marker = path.with_name(path.name + ".json")
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == params:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = np.datetime64("2016-01-01T00:00:00")
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", newline="") as handle:
        handle.write(",".join(["timestamp", *building_ids(buildings)]) + "\r\n")
        for first in range(0, rows, 500):
            count = min(500, rows - first)
            values = np.round(rng.gamma(2.0, 60.0, (count, buildings)), 3)
            text = np.char.mod("%.10g", values).astype("U24")
            noisy = rng.random((count, buildings)) < 0.05
            text[noisy] = np.char.mod("%.17g", values[noisy] * 1.0000000000000002)
            text[rng.random((count, buildings)) < EMPTY_FRACTION] = ""
            for offset in range(count):
                stamp = str(start + np.timedelta64(first + offset, "h")).replace("T", " ")
                handle.write(stamp + "," + ",".join(text[offset].tolist()) + "\r\n")
    os.replace(temp, path)
    marker.write_text(json.dumps(params))
    return path


# ---------------------------------------------------------------------- contenders (run in child processes)
def convert_project(source: Path, destination: Path) -> dict:
    from energy_assets.sources.buildings.readings import convert_meter_file

    stats = convert_meter_file(source, destination, meter="electricity")
    return {"values_written": stats.values, "parquet_bytes": stats.parquet_bytes}


def convert_pandas(source: Path, destination: Path) -> dict:
    import pandas as pd

    frame = pd.read_csv(source)
    long = frame.melt(id_vars=["timestamp"], var_name="building_id", value_name="reading")
    long.to_parquet(destination)
    return {"values_written": len(long)}


def convert_duckdb(source: Path, destination: Path) -> dict:
    import duckdb

    with open(source, encoding="utf-8") as handle:
        names = handle.readline().rstrip("\r\n").split(",")[1:]
    columns = {"timestamp": "TIMESTAMP", **dict.fromkeys(names, "DOUBLE")}
    with duckdb.connect() as connection:
        relation = connection.read_csv(str(source), header=True, columns=columns, auto_detect=False)
        relation.create_view("wide")
        connection.execute(
            "COPY (UNPIVOT wide ON COLUMNS(* EXCLUDE (timestamp)) INTO NAME building_id VALUE reading)"
            " TO ? (FORMAT parquet, COMPRESSION zstd)",
            [str(destination)],
        )
        written = connection.execute("SELECT count(*) FROM read_parquet(?)", [str(destination)]).fetchone()[0]
    return {"values_written": int(written)}


CONTENDERS = {"project": convert_project, "pandas": convert_pandas, "duckdb": convert_duckdb}
# What each contender imports, loaded before its clock starts: the conversion is timed, not the
# interpreter loading modules (a Dagster worker has them loaded already). pandas' `to_parquet` needs
# pyarrow.parquet, imported lazily by pandas; pyarrow imports pandas (when installed) on its first
# `pa.array` of a Python list, which cost the project's conversion 0.17 s inside its clock.
IMPORTS = {
    "project": ("energy_assets.sources.buildings.readings", "pandas"),
    "pandas": ("pandas", "pyarrow.parquet"),
    "duckdb": ("duckdb",),
}


def child_main(kind: str, source: str, destination: str) -> int:
    for module in IMPORTS[kind]:
        importlib.import_module(module)
    started = time.perf_counter()
    cpu = time.process_time()
    result = CONTENDERS[kind](Path(source), Path(destination))
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def run_child(kind: str, source: Path, destination: Path) -> dict:
    command = [sys.executable, "-m", "benchmarks.bdg2", "--child", kind, str(source), str(destination)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- full path
def full_path(csv_path: Path, workdir: Path) -> dict:
    """Download from a loopback server, verify, convert and publish; seconds per step and rows/s."""
    from psycopg import sql

    from benchmarks.load import resolve_settings
    from energy_assets.postgres.connection import connect
    from energy_assets.sources.buildings.archive import Bdg2Archive, meter_member
    from energy_assets.sources.buildings.client import LiveZenodoClient, fetch_file
    from energy_assets.sources.buildings.readings import convert_meter
    from energy_assets.sources.buildings.sample_builder import TOP_FOLDER, ZIP_DATE_TIME
    from energy_assets.sources.buildings.settings import BDG2_FILE_KEY
    from energy_assets.sources.buildings.tables import METER_READINGS
    from energy_assets.warehouse.identifiers import TableName
    from energy_assets.warehouse.loader import WarehouseLoader
    from energy_assets_tests.sources.zenodo_server import ZenodoTestServer

    zip_path = workdir / (csv_path.stem + ".zip")
    if not zip_path.exists():
        with zipfile.ZipFile(zip_path.with_suffix(".tmp"), "w") as archive:
            info = zipfile.ZipInfo(f"{TOP_FOLDER}/{meter_member('electricity')}", ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member, open(csv_path, "rb") as source:
                shutil.copyfileobj(source, member, 4 << 20)
        os.replace(zip_path.with_suffix(".tmp"), zip_path)
    server = ZenodoTestServer().start()
    server.add_record(3887306, {BDG2_FILE_KEY: zip_path.read_bytes()})
    settings = resolve_settings(os.environ.get("ENERGY_PG_URL"))
    schema = "bdg2_bench"
    table = TableName(schema, "meter_readings")
    with connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    loader = WarehouseLoader(settings)
    cache_root = workdir / "cache"
    shutil.rmtree(cache_root, ignore_errors=True)
    client = LiveZenodoClient(server.base_url)
    steps: dict[str, float] = {}
    try:
        started = time.perf_counter()
        cached = fetch_file(client, 3887306, BDG2_FILE_KEY, client.cache_for(str(cache_root)))
        steps["download_and_verify_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        parquet = workdir / "full_path" / "meter=electricity" / "part-0.parquet"
        with Bdg2Archive(cached.path) as archive:
            stats = convert_meter(archive, "electricity", parquet)
        steps["convert_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        result = loader.merge(
            table,
            parquet,
            key=list(METER_READINGS.primary_key),
            schema=METER_READINGS.inferred_schema(),
            key_after_initial_copy=METER_READINGS.key_after_initial_copy,
        )
        steps["publish_s"] = time.perf_counter() - mark
        steps["total_s"] = time.perf_counter() - started
    finally:
        server.stop()
        client.close()
    with connect(settings, autocommit=True) as conn:
        loaded = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table.sql())).fetchone()[0]
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    assert loaded == stats.values == result.inserted, (loaded, stats.values, result.inserted)
    return {
        **{key: round(value, 2) for key, value in steps.items()},
        "zip_bytes": zip_path.stat().st_size,
        "rows": stats.values,
        "full_path_rows_per_s": round(stats.values / steps["total_s"]),
        "loader_rows_per_s": round(stats.values / steps["publish_s"]),
        "loader_strategy": result.strategy,
        "publish_steps_s": {step: round(seconds, 2) for step, seconds in result.timings.items()},
    }


# ---------------------------------------------------------------------- main
def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--skip-full-path", action="store_true", help="conversions only (no PostgreSQL)")
    parser.add_argument("--skip-duckdb", action="store_true")
    parser.add_argument("--rows", type=int, default=ROWS, help="hourly rows (default: the real 17,544)")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        metavar="N",
        help="runs per contender each in a new process; the median counts (the slower middle one of an even N)",
    )
    parser.add_argument("--child", nargs=3, metavar=("KIND", "SOURCE", "DESTINATION"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(*args.child)

    name = CSV_NAME if args.rows == ROWS else f"electricity_wide_{args.rows}.csv"
    csv_path = generate_wide_csv(args.workdir / name, rows=args.rows)
    cells = args.rows * BUILDINGS
    size_mb = csv_path.stat().st_size / 1e6
    print(f"input: {csv_path} ({size_mb:.1f} MB, {args.rows:,} rows x {BUILDINGS:,} buildings)")
    out = args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    kinds = ("project", "pandas", *(() if args.skip_duckdb else ("duckdb",)))
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for round_ in range(1, args.repeat + 1):  # rounds interleave the contenders: drift hits all alike
        for kind in kinds:
            destination = out / f"{kind}.parquet"
            # Every contender writes a new file (freeing the blocks of an old one would cost it time).
            destination.unlink(missing_ok=True)
            r = run_child(kind, csv_path, destination)
            r["cells"] = cells
            runs[kind].append(r)
            print(
                f"{kind:8s} #{round_}: {r['seconds']:6.2f} s wall, {r['cpu_seconds']:6.2f} s CPU,"
                f" {r['cells'] / r['seconds']:>12,.0f} cells/s, {r['values_written']:,} rows written,"
                f" peak RSS {r['peak_rss_mb']:,.0f} MB"
            )
    # Each contender's median run by wall time (the highest peak RSS of its runs).
    results = {
        kind: {
            **sorted(done, key=lambda run: run["seconds"])[len(done) // 2],
            "peak_rss_mb": max(run["peak_rss_mb"] for run in done),
        }
        for kind, done in runs.items()
    }
    for kind, r in results.items():
        print(
            f"{kind:8s} median: {r['seconds']:6.2f} s wall of {[round(run['seconds'], 2) for run in runs[kind]]}"
        )
    project, pandas_ = results["project"], results["pandas"]
    summary = {
        "values_per_s": round(project["cells"] / project["seconds"]),
        "pandas_melt_values_per_s": round(pandas_["cells"] / pandas_["seconds"]),
        "ratio_vs_pandas_melt": round(pandas_["seconds"] / project["seconds"], 2),
        "peak_rss_mb": round(project["peak_rss_mb"]),
        "pandas_peak_rss_mb": round(pandas_["peak_rss_mb"]),
    }
    if "duckdb" in results:
        summary["duckdb_unpivot_values_per_s"] = round(
            results["duckdb"]["cells"] / results["duckdb"]["seconds"]
        )
    if not args.skip_full_path:
        path = full_path(csv_path, args.workdir)
        print("full path: " + ", ".join(f"{key} {value}" for key, value in path.items()))
        summary.update(
            {
                "full_path_s": path["total_s"],
                "full_path_rows_per_s": path["full_path_rows_per_s"],
                "loader_rows_per_s": path["loader_rows_per_s"],
            }
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
