"""NEM12 benchmark: parse throughput and peak memory against `nemreader`, and a file end to end.

Run from the repository root (not part of the test suite; it takes several minutes and ~6 GB of RAM,
most of it for nemreader, which keeps every reading as a Python object):

    nice python -m benchmarks.nem12                          # 1,000 NMIs x 365 days x 48 intervals
    nice python -m benchmarks.nem12 --nmis 200 --skip-e2e    # quicker

Files are generated under `--workdir` (default /tmp/nem12_bench): one 30-minute channel per NMI, 365 days,
400 records (a `V` day split into E52/A/S14 ranges) on every tenth day, a 500 record after every 300,
values with and without a leading zero. Two sizes (`--nmis` and a quarter of it) show that peak memory
does not grow with the file. Each parse runs in a fresh child process, so `peak_rss_mb` is that process's
own high-water mark (`ru_maxrss`, interpreter and pyarrow included):

- ours: `read_nem12_batches` over the whole file, batches dropped as they come (what a loader does);
- nemreader: `NEMFile(path).nem_data()` on the same file in the same run (memory capped at
  `--nemreader-max-gb`; if it runs out, the smaller file's figure is used and said so).

End to end (`--skip-e2e` to leave out): the managed PostgreSQL cluster in a private data home under the
workdir (or `--pg-url`), then parse -> Parquet (streamed, batch by batch) -> `WarehouseLoader.merge` into
a fresh `meters_bench.meter_readings` with the table's key, timed as a whole and beside the loader's own
rows/s (`LoadResult.seconds`), on the file of `--e2e-nmis` NMIs; then the same file merged again into
the full table (every key matches: the diff path a revision file takes).

The last line printed is one JSON object with `values_per_s`, `nemreader_values_per_s`,
`ratio_vs_nemreader` and `peak_rss_mb` (largest file), plus the details.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path("/tmp/nem12_bench")
INTERVALS = 48


# ------------------------------------------------------------------------------------------- data
def generate(path: Path, nmis: int, days: int, seed: int = 12) -> int:
    """Write a NEM12 file of `nmis` x `days` x 48 values; returns the number of interval values."""
    if path.exists():
        return nmis * days * INTERVALS
    rng = random.Random(seed)
    pool = [f"{rng.uniform(0, 3):.3f}".removeprefix("0") for _ in range(20_000)]
    start = date(2024, 1, 1)
    day_labels = [(start + timedelta(days=d)).strftime("%Y%m%d") for d in range(days)]
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", newline="") as out:
        out.write("100,NEM12,202501010000,MDPBENCH,RETBENCH\r\n")
        for n in range(nmis):
            out.write(f"200,B{n:09d},E1,E1,E1,N1,MTR{n},kWh,30,\r\n")
            for d, label in enumerate(day_labels):
                k = rng.randrange(len(pool) - INTERVALS)
                values = ",".join(pool[k : k + INTERVALS])
                if (n + d) % 10 == 0:
                    out.write(f"300,{label},{values},V,,,{label}235900,{label}235959\r\n")
                    out.write("400,1,20,E52,,\r\n400,21,30,A,,\r\n400,31,48,S14,1,\r\n")
                else:
                    out.write(f"300,{label},{values},A,,,{label}235900,{label}235959\r\n")
                out.write(f"500,N,,{label}235900,\r\n")
        out.write("900")
    temp.rename(path)
    return nmis * days * INTERVALS


# ---------------------------------------------------------------------------------- child parses
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child_ours(path: Path) -> dict[str, Any]:
    from energy_assets.sources.meters.nem12 import read_nem12_batches

    started = time.perf_counter()
    values = 0
    for batch in read_nem12_batches(path):
        values += batch.num_rows
    seconds = time.perf_counter() - started
    return {"values": values, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def child_nemreader(path: Path, max_gb: float) -> dict[str, Any]:
    limit = int(max_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from nemreader import NEMFile

    started = time.perf_counter()
    data = NEMFile(str(path)).nem_data()
    seconds = time.perf_counter() - started
    values = sum(len(readings) for channels in data.readings.values() for readings in channels.values())
    return {"values": values, "seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def run_child(kind: str, path: Path, max_gb: float) -> dict[str, Any] | None:
    command = [
        sys.executable,
        "-m",
        "benchmarks.nem12",
        "--child",
        kind,
        str(path),
        "--nemreader-max-gb",
        str(max_gb),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  {kind} on {path.name} failed: {done.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- end to end
def end_to_end(path: Path, workdir: Path, pg_url: str | None) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from energy_assets.postgres.connection import connect
    from energy_assets.sources.meters.nem12 import read_nem12_batches
    from energy_assets.sources.meters.tables import METER_READINGS
    from energy_assets.warehouse.identifiers import TableName
    from energy_assets.warehouse.loader import WarehouseLoader

    cluster = None
    if pg_url:
        from energy_assets.postgres.settings_from_env import external_settings

        settings = external_settings(pg_url)
    else:
        from energy_assets.postgres.cluster import ManagedCluster
        from energy_assets.settings import DataHome

        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o711)
        os.chmod(home, 0o711)
        cluster = ManagedCluster(DataHome(home))
        settings = cluster.ensure_running()
    try:
        table = TableName("meters_bench", "meter_readings")
        with connect(settings, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS meters_bench")
            conn.execute("DROP TABLE IF EXISTS meters_bench.meter_readings")
        parquet_path = workdir / f"{path.stem}.parquet"
        started = time.perf_counter()
        rows = 0
        with pq.ParquetWriter(parquet_path, METER_READINGS.arrow_schema, compression="zstd") as writer:
            for batch in read_nem12_batches(path):
                writer.write_batch(batch)
                rows += batch.num_rows
        parse_write_s = time.perf_counter() - started
        result = WarehouseLoader(settings).merge(
            table, parquet_path, key=list(METER_READINGS.primary_key), schema=METER_READINGS.inferred_schema()
        )
        total_s = time.perf_counter() - started
        # The same file again into the now full table: every key matches, nothing changes (the diff path).
        again = WarehouseLoader(settings).merge(
            table, parquet_path, key=list(METER_READINGS.primary_key), schema=METER_READINGS.inferred_schema()
        )
        with connect(settings) as conn:
            (published,) = conn.execute("SELECT count(*) FROM meters_bench.meter_readings").fetchall()[0]
        with connect(settings, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS meters_bench.meter_readings")
        parquet_path.unlink()
        return {
            "file": path.name,
            "rows": rows,
            "published_rows": int(published),
            "parse_and_parquet_s": round(parse_write_s, 2),
            "merge_s": round(result.seconds, 2),
            "end_to_end_s": round(total_s, 2),
            "end_to_end_rows_per_s": round(rows / total_s),
            "loader_rows_per_s": round(result.rows_in / result.seconds),
            "merge_strategy": result.strategy,
            "remerge_unchanged_s": round(again.seconds, 2),
            "remerge_rows_per_s": round(again.rows_in / again.seconds),
            "remerge_strategy": again.strategy,
        }
    finally:
        if cluster is not None:
            cluster.stop()


# ------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nmis", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--nemreader-max-gb", type=float, default=10.0)
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the PostgreSQL end-to-end run")
    parser.add_argument(
        "--e2e-nmis", type=int, default=None, help="file for the end-to-end run (default --nmis)"
    )
    parser.add_argument("--pg-url", default=None, help="libpq URI instead of a private managed cluster")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, path = args.child
        result = (
            child_ours(Path(path)) if kind == "ours" else child_nemreader(Path(path), args.nemreader_max_gb)
        )
        print(json.dumps(result))
        return 0

    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = sorted({max(1, args.nmis // 4), args.nmis})
    files = {}
    for nmis in sizes:
        path = workdir / f"bench_{nmis}nmi_{args.days}d.csv"
        started = time.perf_counter()
        values = generate(path, nmis, args.days)
        files[nmis] = path
        print(
            f"file {path.name}: {values:,} values, {path.stat().st_size / 1e6:.0f} MB"
            f" (ready in {time.perf_counter() - started:.1f}s)",
            flush=True,
        )

    ours: dict[int, dict[str, Any]] = {}
    for nmis in sizes:
        parsed = run_child("ours", files[nmis], args.nemreader_max_gb)
        if parsed is None:
            return 1
        ours[nmis] = parsed
        print(
            f"ours      {nmis:>5} NMIs: {parsed['values'] / parsed['seconds']:>12,.0f} values/s,"
            f" {parsed['seconds']:.1f}s, peak RSS {parsed['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    theirs: dict[int, dict[str, Any]] = {}
    for nmis in sorted(sizes, reverse=True):
        compared_result = run_child("nemreader", files[nmis], args.nemreader_max_gb)
        if compared_result is None:
            continue
        theirs[nmis] = result = compared_result
        print(
            f"nemreader {nmis:>5} NMIs: {result['values'] / result['seconds']:>12,.0f} values/s,"
            f" {result['seconds']:.1f}s, peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        if result["values"] != ours[nmis]["values"]:
            print(f"  value counts differ: ours {ours[nmis]['values']}, nemreader {result['values']}")

    largest = sizes[-1]
    compared = largest if largest in theirs else max(theirs) if theirs else None
    values_per_s = ours[largest]["values"] / ours[largest]["seconds"]
    summary: dict[str, Any] = {
        "values_per_s": round(values_per_s),
        "nemreader_values_per_s": None,
        "ratio_vs_nemreader": None,
        "peak_rss_mb": round(ours[largest]["peak_rss_mb"], 1),
        "peak_rss_mb_by_nmis": {str(n): round(ours[n]["peak_rss_mb"], 1) for n in sizes},
        "values_per_s_by_nmis": {str(n): round(ours[n]["values"] / ours[n]["seconds"]) for n in sizes},
        "values": ours[largest]["values"],
        "nemreader_compared_on_nmis": compared,
    }
    if compared is not None:
        ours_compared = ours[compared]["values"] / ours[compared]["seconds"]
        nemreader_values_per_s = theirs[compared]["values"] / theirs[compared]["seconds"]
        summary["nemreader_values_per_s"] = round(nemreader_values_per_s)
        summary["ratio_vs_nemreader"] = round(ours_compared / nemreader_values_per_s, 1)
        summary["nemreader_peak_rss_mb"] = round(theirs[compared]["peak_rss_mb"], 1)

    if not args.skip_e2e:
        e2e_nmis = args.e2e_nmis or largest
        path = files.get(e2e_nmis) or workdir / f"bench_{e2e_nmis}nmi_{args.days}d.csv"
        generate(path, e2e_nmis, args.days)
        e2e = end_to_end(path, workdir, args.pg_url)
        print(
            f"end to end {e2e['rows']:,} rows: parse+Parquet {e2e['parse_and_parquet_s']}s, merge"
            f" {e2e['merge_s']}s, total {e2e['end_to_end_s']}s = {e2e['end_to_end_rows_per_s']:,} rows/s"
            f" (loader alone {e2e['loader_rows_per_s']:,} rows/s, {e2e['merge_strategy']}); same file again:"
            f" {e2e['remerge_unchanged_s']}s = {e2e['remerge_rows_per_s']:,} rows/s ({e2e['remerge_strategy']})",
            flush=True,
        )
        summary["end_to_end"] = e2e
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
