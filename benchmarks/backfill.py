"""Backfill benchmark: a year of Energy-Charts through Dagster in one run, against the bare warehouse loader.

Run from the repository root (not part of the test suite), preferably with `nice` on a shared machine:

    python -m benchmarks.backfill                      # storage as in the bundled dagster.yaml
    python -m benchmarks.backfill --storage stock      # dagster-postgres' own storage (NullPool), to compare
    python -m benchmarks.backfill --first 2024-01-01 --last 2024-02-09   # a shorter range
    python -m benchmarks.backfill --storage-events 500 # only: N events written by the stock and pooled storage

One run:
1. starts the managed cluster (ENERGY_ASSETS_HOME) and creates two fresh databases in it, one for the
   Dagster instance (runs, events) and one for the data, so nothing of the user's is touched;
2. points a Dagster instance at the instance database with the bundled `dagster.yaml` (verify-full TLS;
   `--storage stock|pooled` swaps only its storage class);
3. replays a synthetic year (366 local days of 2024: DE public power, 21 series at 15 minutes, and hourly
   DE-LU prices, see `energy_charts_replay`) from a local HTTP server on loopback, with no rate limit;
4. loads installed power first (untimed setup, so the capacity factors of the marts are real), then runs
   `energy_charts_daily_job` over the whole range as one run (a single-run backfill), timed, while a
   sampling profiler (5 ms, wall clock, the run's thread) records where the time goes;
5. merges the same public-power rows with the bare `WarehouseLoader` into an empty table, timed;
6. prints the time per step (from the run's step events), the instance's events, connections and
   statements, the profile's top lines, and as the last line one JSON object: `backfill_wall_s`, `rows`
   (public-power rows), `rows_per_s`, `bare_merge_s`, `ratio_vs_bare_merge` (= bare_merge_s / backfill_wall_s).

The benchmark relies only on the job name, the resource names of `energy_assets.defs.build` (`postgres`,
`lake`, `energy_charts`) and the Dagster instance, so the asset code can change underneath it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import sqlalchemy.pool
import yaml
from psycopg import sql
from sqlalchemy import event

from benchmarks.energy_charts_replay import MW_SERIES, ReplayServer, SyntheticYear
from energy_assets.instance.home import dagster_environment, write_dagster_yaml
from energy_assets.instance.storage import with_storage
from energy_assets.postgres.admin import create_database, drop_database
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.loader import WarehouseLoader

DAILY_JOB = "energy_charts_daily_job"
INSTALLED_POWER_JOB = "energy_charts_installed_power_job"
DATA_DATABASE = "energy_backfill_bench"
INSTANCE_DATABASE = "dagster_backfill_bench"
BARE_TABLE = TableName("bench_bare", "public_power")
PUBLIC_POWER_KEY = ["country", "production_type", "interval_start"]
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


# ---------------------------------------------------------------------- counting what the instance does
@dataclass
class SqlAlchemyCounters:
    """New DBAPI connections and statements through SQLAlchemy (only Dagster's storages use it here)."""

    connections: int = 0
    statements: int = 0

    def install(self) -> None:
        event.listen(sqlalchemy.pool.Pool, "connect", self._on_connect)
        event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", self._on_statement)

    def _on_connect(self, *args: object) -> None:
        self.connections += 1

    def _on_statement(self, *args: object) -> None:
        self.statements += 1

    def snapshot(self) -> tuple[int, int]:
        return self.connections, self.statements


COUNTERS = SqlAlchemyCounters()


def server_sessions(settings: PostgresSettings, database: str) -> int:
    """Sessions the server has counted for `database` (pg_stat_database.sessions, PostgreSQL 14+)."""
    with connect(settings.with_database("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------- a sampling profiler
CATEGORIES: tuple[tuple[str, Any], ...] = (
    (
        "Dagster instance: opening connections (psycopg2: TCP, TLS, SCRAM)",
        lambda f, n: "/psycopg2/" in f and n == "connect",
    ),
    (
        "Dagster instance: storing and reading events, runs (statements)",
        lambda f, n: "/dagster_postgres/" in f or "/dagster/_core/storage/" in f or "/sqlalchemy/" in f,
    ),
    ("project: opening PostgreSQL connections (psycopg 3)", lambda f, n: "/psycopg/" in f and n == "connect"),
    (
        "project: PostgreSQL statements and COPY (psycopg 3, ADBC)",
        lambda f, n: "/psycopg/" in f or "adbc" in f,
    ),
    ("project: HTTP requests to the replay", lambda f, n: "/requests/" in f or "/urllib3/" in f),
    (
        "project: Parquet and file writes",
        lambda f, n: "/pyarrow/parquet" in f or f.endswith("energy_assets/files.py"),
    ),
    ("project: other (parse, normalize, aggregate, check)", lambda f, n: "/energy_assets/" in f),
)


@dataclass
class SamplingProfiler:
    """Samples one thread's Python stack every `interval_s` (wall clock, so waiting on I/O counts)."""

    interval_s: float = 0.005
    stacks: Counter = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @contextmanager
    def sampling(self) -> Iterator[None]:
        target = threading.get_ident()
        self._thread = threading.Thread(target=self._run, args=(target,), name="sampler", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()

    def _run(self, target: int) -> None:
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(target)
            stack = []
            while frame is not None:
                stack.append((frame.f_code.co_filename, frame.f_code.co_name, frame.f_code.co_firstlineno))
                frame = frame.f_back
            self.stacks[tuple(reversed(stack))] += 1

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    def categories(self) -> list[tuple[str, int]]:
        """Samples per category: the first rule (in `CATEGORIES` order) that matches any frame of the stack."""
        counts: Counter = Counter()
        for stack, count in self.stacks.items():
            for name, rule in CATEGORIES:
                if any(rule(filename, function) for filename, function, _ in stack):
                    counts[name] += count
                    break
            else:
                counts["Dagster orchestration and everything else"] += count
        return [(name, counts[name]) for name, _ in CATEGORIES] + [
            ("Dagster orchestration and everything else", counts["Dagster orchestration and everything else"])
        ]

    def top_functions(self, limit: int, where: tuple[str, ...]) -> list[tuple[str, int]]:
        """Functions in files matching `where` by inclusive samples (each counted once per stack)."""
        counts: Counter = Counter()
        for stack, count in self.stacks.items():
            seen = {
                f"{_short(filename)}:{function}"
                for filename, function, _ in stack
                if any(part in filename for part in where)
            }
            for name in seen:
                counts[name] += count
        return counts.most_common(limit)


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


# ---------------------------------------------------------------------- the instance
def instance_yaml(storage: str) -> str:
    """The bundled dagster.yaml, with its storage class swapped for `stock` or `pooled` (else unchanged)."""
    with tempfile.TemporaryDirectory() as folder:
        config = yaml.safe_load(write_dagster_yaml(Path(folder)).read_text())
    if storage != "bundled":
        config = with_storage(config, pooled=storage == "pooled")
    return yaml.safe_dump(config, sort_keys=False)


def storage_class(config_text: str) -> str:
    section = yaml.safe_load(config_text)["storage"]
    return "dagster_postgres (NullPool)" if "postgres" in section else section["custom"]["class"]


@contextmanager
def dagster_instance(
    settings: PostgresSettings, home: Path, config_text: str
) -> Iterator[dg.DagsterInstance]:
    """An instance whose storage is `settings`' database, configured by `config_text` (dagster.yaml)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(config_text)
    os.environ.update(dagster_environment(settings, home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def fresh_database(settings: PostgresSettings, name: str) -> PostgresSettings:
    with connect(settings.with_database("postgres"), autocommit=True) as conn:
        drop_database(conn, name, force=True)
        create_database(conn, name)
    return settings.with_database(name)


# ---------------------------------------------------------------------- storage micro-benchmark
def store_events(instance: dg.DagsterInstance, count: int) -> float:
    """Seconds to store `count` events of a run: two engine events for every asset materialization."""
    from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData, StepMaterializationData
    from dagster._core.events.log import EventLogEntry

    run_id = os.urandom(16).hex()

    def entry(index: int) -> EventLogEntry:
        if index % 3 == 0:
            materialization = dg.AssetMaterialization(
                asset_key=f"bench_{index % 5}", metadata={"rows": index}
            )
            dagster_event = DagsterEvent(
                event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                job_name="storage_bench",
                event_specific_data=StepMaterializationData(materialization),
            )
        else:
            dagster_event = DagsterEvent(
                event_type_value=DagsterEventType.ENGINE_EVENT.value,
                job_name="storage_bench",
                message=f"event {index}",
                event_specific_data=EngineEventData(),
            )
        return EventLogEntry(
            error_info=None,
            level=20,
            user_message="",
            run_id=run_id,
            timestamp=time.time(),
            step_key="bench",
            job_name="storage_bench",
            dagster_event=dagster_event,
        )

    instance.store_event(entry(1))  # warm: first connection, secondary-index cache
    started = time.perf_counter()
    for index in range(count):
        instance.store_event(entry(index))
    elapsed = time.perf_counter() - started
    assert len(instance.all_logs(run_id)) == count + 1
    return elapsed


STORAGE_VARIANTS: dict[str, tuple[bool, dict[str, Any]]] = {
    "stock": (False, {}),
    "pooled": (True, {"synchronous_commit": "on"}),
    "pooled_async_commit": (True, {"synchronous_commit": "off"}),
}


def storage_events_benchmark(cluster: ManagedCluster, workdir: Path, count: int) -> int:
    """Events/s of dagster-postgres' storage, the pooled one, and the pooled one without WAL-flush waits."""
    settings = fresh_database(cluster.settings(), INSTANCE_DATABASE)
    with tempfile.TemporaryDirectory() as folder:
        bundled = yaml.safe_load(write_dagster_yaml(Path(folder)).read_text())
    figures: dict[str, float] = {}
    for round_number in range(2):  # best of two, alternating, so drift favours none
        for name, (pooled, storage_settings) in STORAGE_VARIANTS.items():
            config_text = yaml.safe_dump(with_storage(bundled, pooled=pooled, settings=storage_settings))
            with dagster_instance(
                settings, workdir / f"dagster_{name}_{round_number}", config_text
            ) as instance:
                before = COUNTERS.snapshot()
                seconds = store_events(instance, count)
                after = COUNTERS.snapshot()
            rate = count / seconds
            figures[name] = max(figures.get(name, 0.0), rate)
            print(
                f"{name:>20}: {count} events in {seconds:.2f} s = {rate:,.0f} events/s; "
                f"{after[0] - before[0]} new connections, {after[1] - before[1]} statements"
            )
    summary = {"events": count, **{f"{name}_events_per_s": round(rate) for name, rate in figures.items()}}
    print(json.dumps(summary))
    return 0


# ---------------------------------------------------------------------- the backfill
def public_power_rows(year: SyntheticYear, country: str = "de") -> pa.Table:
    """The MW rows of the replayed year in the long shape of `energy_charts.public_power`."""
    quarter_hours = len(year.quarter_hours)
    times = np.tile(year.quarter_hours * 1_000_000, len(MW_SERIES))
    minutes = np.full(len(times), 15, dtype=np.int32)
    names = np.repeat(np.array(MW_SERIES, dtype=object), quarter_hours)
    values = np.concatenate([year.power[name] for name in MW_SERIES])
    return pa.table(
        {
            "country": pa.array([country] * len(times), pa.string()),
            "interval_start": pa.array(times, pa.timestamp("us", tz="UTC")),
            "interval_minutes": pa.array(minutes),
            "production_type": pa.array(names, pa.string()),
            "value_mw": pa.array(values, pa.float64()),
        }
    )


def step_times(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, float, str]]:
    """(step key, seconds, outcome) per step, from the run's STEP_START / STEP_SUCCESS / STEP_FAILURE events."""
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    started: dict[str, float] = {}
    steps = []
    for entry in instance.all_logs(run_id, of_type=kinds):
        step = entry.step_key or "?"
        if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
            started[step] = entry.timestamp
        else:
            outcome = "ok" if entry.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS else "FAILED"
            steps.append((step, entry.timestamp - started.get(step, entry.timestamp), outcome))
    return steps


def count_rows(settings: PostgresSettings, qualified_table: str) -> int | None:
    schema, name = qualified_table.split(".", 1)
    try:
        with connect(settings, autocommit=True) as conn:
            return conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
            ).fetchone()[0]
    except Exception:  # the asset refactor may rename the table; the figure is only a cross-check
        return None


def backfill_benchmark(cluster: ManagedCluster, workdir: Path, args: argparse.Namespace) -> int:
    from energy_assets.defs.build import build_defs
    from energy_assets.defs.energy_charts.resources import EnergyChartsResource
    from energy_assets.defs.resources import LakeResource, PostgresResource

    timings: dict[str, float] = {}
    started = time.perf_counter()
    year = SyntheticYear(args.first, args.last)
    rows = public_power_rows(year)
    timings["generate synthetic year"] = time.perf_counter() - started
    print(
        f"replay: {year.days} local days {args.first}..{args.last}, {len(year.quarter_hours):,} quarter hours x "
        f"{len(MW_SERIES)} MW series = {rows.num_rows:,} public-power rows, {len(year.prices):,} hourly prices"
    )

    started = time.perf_counter()
    data_settings = fresh_database(cluster.settings(), DATA_DATABASE)
    instance_settings = fresh_database(cluster.settings(), INSTANCE_DATABASE)
    config_text = instance_yaml(args.storage)
    timings["fresh databases"] = time.perf_counter() - started
    print(f"instance storage: {storage_class(config_text)} in database {INSTANCE_DATABASE}, verify-full TLS")

    started = time.perf_counter()
    with (
        ReplayServer(year) as server,
        dagster_instance(instance_settings, workdir / "dagster", config_text) as instance,
    ):
        timings["instance (create tables)"] = time.perf_counter() - started
        resources = {
            "postgres": PostgresResource(database=DATA_DATABASE, data_home=str(cluster.home.root)),
            "lake": LakeResource(path=str(workdir / "lake")),
            "energy_charts": EnergyChartsResource(
                source="live", base_url=server.base_url, min_seconds_between_requests=0.0
            ),
        }
        defs = build_defs(resource_overrides=resources)
        try:
            installed_job = defs.resolve_job_def(INSTALLED_POWER_JOB)
        except Exception:  # a renamed setup job only costs the marts their capacity factors
            installed_job = None
        if installed_job is not None:
            started = time.perf_counter()
            installed_job.execute_in_process(instance=instance, run_config=QUIET_CONSOLE)
            timings["setup: installed power run"] = time.perf_counter() - started

        daily_job = defs.resolve_job_def(DAILY_JOB)
        profiler = SamplingProfiler()
        sessions_before = server_sessions(cluster.settings(), DATA_DATABASE)
        connections_before, statements_before = COUNTERS.snapshot()
        started = time.perf_counter()
        range_tags = {
            "dagster/asset_partition_range_start": args.first.isoformat(),
            "dagster/asset_partition_range_end": args.last.isoformat(),
        }
        if args.executor == "multiprocess":
            # As a run launched by the daemon executes: one process per step, steps in parallel.
            os.environ[_ENV_REPLAY_URL] = server.base_url
            os.environ[_ENV_LAKE] = str(workdir / "lake")
            with dg.execute_job(
                dg.reconstructable(daily_job_for_child_processes),
                instance=instance,
                run_config=QUIET_CONSOLE,
                tags=range_tags,
            ) as result:
                assert result.success, "the backfill run failed"
        else:
            with profiler.sampling() if args.profile else nullcontext():
                result = daily_job.execute_in_process(
                    instance=instance, run_config=QUIET_CONSOLE, tags=range_tags
                )
        backfill_wall_s = time.perf_counter() - started
        connections_after, statements_after = COUNTERS.snapshot()
        connections = connections_after - connections_before
        statements = statements_after - statements_before
        timings["backfill run (timed)"] = backfill_wall_s
        run_id = result.run_id
        logs = instance.all_logs(run_id)
        events = len(logs)
        event_kinds = Counter(
            entry.dagster_event_type.value if entry.dagster_event_type else "log" for entry in logs
        )
        steps = step_times(instance, run_id)
        time.sleep(1.5)  # the server flushes session statistics at most once a second
        data_sessions = server_sessions(cluster.settings(), DATA_DATABASE) - sessions_before
        requests = len(server.requests)

    loaded = count_rows(data_settings, "energy_charts.public_power")
    with connect(data_settings, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(BARE_TABLE.schema)))
    loader = WarehouseLoader(data_settings)
    started = time.perf_counter()
    merge = loader.merge(BARE_TABLE, rows, key=PUBLIC_POWER_KEY)
    bare_merge_s = time.perf_counter() - started
    timings["bare WarehouseLoader.merge (timed)"] = bare_merge_s
    assert merge.inserted == rows.num_rows, merge.summary()

    print()
    print("benchmark steps:")
    for name, seconds in timings.items():
        print(f"  {name:<40} {seconds:8.2f} s")
    print(f"run {run_id}: {'success' if result.success else 'FAILED'}, {len(steps)} steps")
    for step, seconds, outcome in sorted(steps, key=lambda item: -item[1]):
        print(f"  {step:<40} {seconds:8.2f} s  {outcome}")
    print(
        f"instance: {events:,} events stored, {connections:,} new connections and {statements:,} statements "
        f"through SQLAlchemy during the run ({statements / max(events, 1):.1f} per event)"
    )
    print("  by type: " + ", ".join(f"{kind} {count:,}" for kind, count in event_kinds.most_common()))
    print(
        f"project: {data_sessions:,} sessions in the data database; {requests} requests to the replay server"
    )
    print(
        f"public_power: {loaded if loaded is not None else 'n/a'} rows loaded by the run, {rows.num_rows:,} "
        f"by the bare merge ({merge.summary()})"
    )
    if args.profile:
        print_profile(profiler, backfill_wall_s)

    summary = {
        "backfill_wall_s": round(backfill_wall_s, 2),
        "rows": rows.num_rows,
        "rows_per_s": round(rows.num_rows / backfill_wall_s),
        "bare_merge_s": round(bare_merge_s, 3),
        "ratio_vs_bare_merge": round(bare_merge_s / backfill_wall_s, 4),
    }
    print(json.dumps(summary))
    return 0 if result.success else 1


def print_profile(profiler: SamplingProfiler, wall_s: float) -> None:
    total = max(profiler.samples, 1)
    print()
    print(f"profile of the run ({profiler.samples:,} wall-clock samples of the run's thread, every 5 ms):")
    for name, count in profiler.categories():
        print(f"  {name:<66} {count / total * wall_s:8.1f} s  {count / total:6.1%}")
    print("top functions by inclusive time (project, dagster-postgres, psycopg2.connect):")
    where = ("/energy_assets/", "/dagster_postgres/", "/psycopg2/")
    for name, count in profiler.top_functions(15, where):
        print(f"  {name:<80} {count / total * wall_s:8.1f} s  {count / total:6.1%}")


# ---------------------------------------------------------------------- main
_ENV_REPLAY_URL = "ENERGY_BENCH_REPLAY_URL"
_ENV_LAKE = "ENERGY_BENCH_LAKE"


def daily_job_for_child_processes() -> dg.JobDefinition:
    """The daily job with the benchmark's resources, rebuilt in each step process (multiprocess executor)."""
    from energy_assets.defs.build import build_defs
    from energy_assets.defs.energy_charts.resources import EnergyChartsResource
    from energy_assets.defs.resources import LakeResource, PostgresResource

    resources = {
        "postgres": PostgresResource(database=DATA_DATABASE, data_home=os.environ["ENERGY_ASSETS_HOME"]),
        "lake": LakeResource(path=os.environ[_ENV_LAKE]),
        "energy_charts": EnergyChartsResource(
            source="live", base_url=os.environ[_ENV_REPLAY_URL], min_seconds_between_requests=0.0
        ),
    }
    job = build_defs(resource_overrides=resources).resolve_job_def(DAILY_JOB)
    assert isinstance(job, dg.JobDefinition)
    return job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", type=date.fromisoformat, default=date(2024, 1, 1), help="first local day")
    parser.add_argument("--last", type=date.fromisoformat, default=date(2024, 12, 31), help="last local day")
    parser.add_argument(
        "--storage",
        choices=("bundled", "stock", "pooled"),
        default="bundled",
        help="instance storage: as in the bundled dagster.yaml, dagster-postgres' own, or the pooled one",
    )
    parser.add_argument(
        "--no-profile", dest="profile", action="store_false", help="skip the sampling profiler"
    )
    parser.add_argument(
        "--storage-events", type=int, default=0, metavar="N", help="only write N events with each storage"
    )
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases and lake")
    parser.add_argument(
        "--executor",
        choices=("multiprocess", "in_process"),
        default="in_process",
        help="run the backfill as the daemon would (one process per step, in parallel) or in this process",
    )
    args = parser.parse_args(argv)

    COUNTERS.install()
    started = time.perf_counter()
    cluster = ManagedCluster(DataHome.from_env())
    cluster.ensure_running()
    print(f"managed cluster: {cluster.status().describe()} ({time.perf_counter() - started:.1f} s)")
    workdir = Path(tempfile.mkdtemp(prefix="energy_backfill_bench_", dir="/tmp"))
    try:
        if args.storage_events:
            return storage_events_benchmark(cluster, workdir, args.storage_events)
        return backfill_benchmark(cluster, workdir, args)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            with connect(cluster.settings("postgres"), autocommit=True) as conn:
                for name in (DATA_DATABASE, INSTANCE_DATABASE):
                    drop_database(conn, name, force=True)


if __name__ == "__main__":
    sys.exit(main())
