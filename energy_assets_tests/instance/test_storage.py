"""The pooled Dagster instance storage (`energy_assets.instance.storage`) on the session's managed cluster.

A real instance over verify-full TLS: a run and its events go through the pooled storages; writing 200 events
opens a bounded number of server sessions where dagster-postgres' own storage opens about one per event; and
the pool survives what long-lived processes meet: a `fork()` and a server that dropped an idle connection.
"""

import hashlib
import importlib
import importlib.metadata
import inspect
import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.event
import yaml
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable

from energy_assets.instance.home import dagster_environment, write_dagster_yaml
from energy_assets.instance.storage import (
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
    PoolSettings,
    with_storage,
)
from energy_assets.postgres.admin import create_database, drop_database
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.settings import DataHome

DATABASE = "dagster_pool_test"
EVENTS = 200


@pytest.fixture
def instance_database(managed_cluster: ManagedCluster) -> Iterator[PostgresSettings]:
    """A fresh database for the instance, dropped afterwards."""
    with connect(managed_cluster.settings("postgres"), autocommit=True) as conn:
        drop_database(conn, DATABASE, force=True)
        create_database(conn, DATABASE)
    yield managed_cluster.settings(DATABASE)
    with connect(managed_cluster.settings("postgres"), autocommit=True) as conn:
        drop_database(conn, DATABASE, force=True)


@contextmanager
def instance_on(
    settings: PostgresSettings,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    pooled: bool,
    storage_settings: Mapping[str, Any] | None = None,
) -> Iterator[dg.DagsterInstance]:
    """An instance from the bundled dagster.yaml, its storage switched to the pooled or the stock class."""
    bundled = yaml.safe_load(write_dagster_yaml(home).read_text())
    config = with_storage(bundled, pooled=pooled, settings=storage_settings)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for key, value in dagster_environment(settings, home).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def server_sessions(settings: PostgresSettings) -> int:
    """Sessions PostgreSQL has counted for the database (pg_stat_database.sessions, PostgreSQL 14+)."""
    with connect(settings.with_database("postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (settings.dbname,)
        ).fetchone()
    return int(row[0])


def settled_sessions(settings: PostgresSettings, timeout_s: float = 10.0) -> int:
    """The session count once it stops moving (backends report their statistics within about a second)."""
    deadline = time.monotonic() + timeout_s
    previous = server_sessions(settings)
    while time.monotonic() < deadline:
        time.sleep(1.1)
        current = server_sessions(settings)
        if current == previous:
            return current
        previous = current
    return previous


def write_events(instance: dg.DagsterInstance, run_id: str, count: int) -> None:
    """Engine events of a run and, every third, a runless asset materialization (two storage writes)."""
    for index in range(count):
        if index % 3 == 0:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key="pool_test_asset", metadata={"index": index})
            )
        else:
            instance.report_engine_event(f"event {index}", job_name="pool_test", run_id=run_id)


@dg.asset
def pool_test_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


def test_pooled_storage_runs_a_job_and_reads_its_events(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = data_home.root / "dagster-pooled-run"
    with instance_on(instance_database, home, monkeypatch, pooled=True) as instance:
        assert isinstance(instance.run_storage, PooledPostgresRunStorage)
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PooledPostgresScheduleStorage)
        # As the bundled dagster.yaml says: two connections kept, commits not waiting for the WAL flush.
        assert instance.event_log_storage.pool_settings == PoolSettings(size=2, synchronous_commit="off")
        with instance.event_log_storage.index_connection() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
            assert conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").scalar()

        result = dg.materialize([pool_test_asset], instance=instance)

        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.is_success
        materialization = instance.get_latest_materialization_event(dg.AssetKey("pool_test_asset"))
        assert materialization is not None and materialization.run_id == result.run_id
        assert materialization.asset_materialization.metadata["dagster/row_count"].value == 3
        kinds = {entry.dagster_event_type for entry in instance.all_logs(result.run_id)}
        assert {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION} <= kinds
    with connect(instance_database) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


daily = dg.DailyPartitionsDefinition(start_date="2023-12-01")


@dg.asset(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
def pool_test_daily(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"days": len(context.partition_keys)})


@contextmanager
def counting_statements() -> Iterator[list[str]]:
    """Every statement Dagster's storages send through SQLAlchemy while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", record)


def backfill(instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize([pool_test_daily], instance=instance, tags=tags)


def test_a_longer_backfill_costs_the_instance_no_more_statements(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With Dagster's event batching on, a single-run backfill's planned and per-partition events are
    # written a batch at a time: 30 days cost the instance what 5 days do.
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    home = data_home.root / "dagster-batches"
    with instance_on(instance_database, home, monkeypatch, pooled=True) as instance:
        backfill(instance, "2023-12-31", "2023-12-31")  # the job's snapshot, the asset's first row
        with counting_statements() as five_days:
            short = backfill(instance, "2024-01-01", "2024-01-05")
        with counting_statements() as thirty_days:
            long = backfill(instance, "2024-02-01", "2024-03-01")

        assert short.success and long.success
        assert len(thirty_days) <= len(five_days), (len(five_days), len(thirty_days))
        key = dg.AssetKey("pool_test_daily")
        planned = instance.all_logs(long.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        assert sorted(
            entry.dagster_event.partition for entry in planned
        ) == daily.get_partition_keys_in_range(dg.PartitionKeyRange("2024-02-01", "2024-03-01"))
        assert len(instance.get_materialized_partitions(key)) == 1 + 5 + 30
        latest = instance.get_latest_materialization_event(key)
        assert latest is not None and latest.run_id == long.run_id
        assert latest.asset_materialization.partition == "2024-03-01"
        record = instance.get_asset_records([key])[0]
        assert record.asset_entry.last_run_id == long.run_id


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("rows_present", asset="pool_test_checked", blocking=True)],
)
def pool_test_checked(context: dg.AssetExecutionContext) -> Iterator[Any]:
    yield dg.MaterializeResult(metadata={"days": len(context.partition_keys)})
    yield dg.AssetCheckResult(check_name="rows_present", passed=True)  # one per run, as the audit checks


def check_rows(settings: PostgresSettings, run_id: str) -> list[tuple[Any, ...]]:
    with connect(settings) as conn:
        return conn.execute(
            "SELECT asset_key, check_name, partition, execution_status, evaluation_event IS NOT NULL,"
            " evaluation_event_storage_id IS NOT NULL, evaluation_event_timestamp IS NOT NULL"
            " FROM asset_check_executions WHERE run_id = %s ORDER BY partition",
            (run_id,),
        ).fetchall()


def test_planned_checks_of_a_backfill_are_stored_as_upstream_stores_them(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pooled storage writes the planned check rows of a range in one INSERT ... SELECT unnest(...):
    # the rows, and what Dagster reads back from them, are those of dagster-postgres' own storage.
    rows, history = {}, {}
    for pooled in (False, True):
        home = data_home.root / f"dagster-checks-{'pooled' if pooled else 'stock'}"
        with instance_on(instance_database, home, monkeypatch, pooled=pooled) as instance:
            tags = {
                "dagster/asset_partition_range_start": "2024-01-01",
                "dagster/asset_partition_range_end": "2024-01-05",
            }
            result = dg.materialize([pool_test_checked], instance=instance, tags=tags)
            rows[pooled] = check_rows(instance_database, result.run_id)
            check_key = dg.AssetCheckKey(dg.AssetKey("pool_test_checked"), "rows_present")
            history[pooled] = sorted(
                (str(record.partition), record.status.value)
                for record in instance.event_log_storage.get_asset_check_execution_history(
                    check_key, limit=50
                )
                if record.run_id == result.run_id
            )

    assert rows[True] == rows[False]
    # Upstream's shape: a planned row per partition, and the run's evaluation (one per run) beside them.
    assert [row[2:4] for row in rows[True]] == [
        *((f"2024-01-0{day}", "PLANNED") for day in range(1, 6)),
        (None, "SUCCEEDED"),
    ]
    assert all(row[4:] == (True, True, True) for row in rows[True])
    assert history[True] == history[False] and len(history[True]) == 6


def test_pooled_storage_opens_a_bounded_number_of_sessions(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = {}
    for pooled in (False, True):
        home = data_home.root / f"dagster-sessions-{'pooled' if pooled else 'stock'}"
        with instance_on(instance_database, home, monkeypatch, pooled=pooled) as instance:
            run_id = f"sessions{int(pooled)}" + "0" * 23
            write_events(instance, run_id, 1)  # tables, first connection, index caches
            before = settled_sessions(instance_database)
            write_events(instance, run_id, EVENTS)
            after = settled_sessions(instance_database)
            assert len(instance.all_logs(run_id)) == EVENTS - len(range(0, EVENTS, 3))
        opened[pooled] = after - before

    # dagster-postgres (NullPool): a connection per write, two for a materialization.
    assert opened[False] >= EVENTS, opened
    # Pooled: the connections already open are reused; at most the pool's size is ever opened.
    assert opened[True] <= PoolSettings().size, opened


def test_pool_is_not_shared_with_a_forked_child(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = data_home.root / "dagster-fork"
    with instance_on(instance_database, home, monkeypatch, pooled=True) as instance:
        write_events(instance, "forkparent" + "0" * 22, 2)  # the parent now holds a pooled connection

        def child() -> None:
            write_events(instance, "forkchild0" + "0" * 22, 5)
            os._exit(0)

        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        process.join(60)

        assert process.exitcode == 0
        write_events(instance, "forkparent" + "0" * 22, 2)  # the parent's connection still works
        assert len(instance.all_logs("forkchild0" + "0" * 22)) == 3
        assert len(instance.all_logs("forkparent" + "0" * 22)) == 2


def test_a_connection_the_server_dropped_is_replaced(
    instance_database: PostgresSettings, data_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = data_home.root / "dagster-dropped"
    pool = {"pool": {"ping_after_idle_seconds": 0}}
    with instance_on(instance_database, home, monkeypatch, pooled=True, storage_settings=pool) as instance:
        run_id = "dropped" + "0" * 25
        write_events(instance, run_id, 2)
        with connect(instance_database.with_database("postgres"), autocommit=True) as conn:
            ended = conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (DATABASE,),
            ).fetchone()[0]
        assert ended >= 1

        write_events(instance, run_id, 3)

        assert len(instance.all_logs(run_id)) == 3


# ---------------------------------------------------------------------------------------------------------
# Upgrade tripwire: `energy_assets/instance/storage.py` re-implements or wraps the upstream code below. A Dagster
# upgrade that changes any of it (a new column, an index write, a different engine) would otherwise be
# skipped silently: the pooled storage would keep writing the old way.

STORAGE_MODULE = "energy_assets/instance/storage.py"
UPSTREAM_CODE: dict[tuple[str, str], tuple[str, str]] = {
    # (module, qualified name): (sha256 of inspect.getsource at dagster 1.13.27 / dagster-postgres 0.29.27,
    #                            what to re-check in energy_assets/instance/storage.py)
    ("dagster_postgres.event_log.event_log", "PostgresEventLogStorage.store_event"): (
        "4a2e37e5871bf2c87789192abc185ecfefa37938a9e0c3d2f915c2348a77641e",
        "PooledPostgresEventLogStorage.store_event (the same writes, without the NOTIFY)",
    ),
    ("dagster_postgres.event_log.event_log", "PostgresEventLogStorage.store_event_batch"): (
        "ff147ed514ba9786aaa35d2a9855c3d5f630ea0333ad59c01fc2b4fb7b3cec6e",
        "PooledPostgresEventLogStorage.store_event_batch (one INSERT and one index transaction per batch)",
    ),
    ("dagster._core.storage.event_log.base", "EventLogStorage.store_event_batch"): (
        "d710189545dbace2e8481787c3711f9c9fb86ff9f32607c465d57ce7669a05a2",
        "PooledPostgresEventLogStorage.store_event_batch (mixed batches: what upstream writes event by event)",
    ),
    (
        "dagster._core.storage.event_log.sql_event_log",
        "SqlEventLogStorage._store_asset_check_evaluation_planned",
    ): (
        "bbecef7ab5ce9d01c1bcf3f46067c9067bfe855601181eb77a6910b8483b4674",
        "PooledPostgresEventLogStorage._store_asset_check_evaluation_planned (its `shared` columns)",
    ),
    ("dagster_postgres.event_log.event_log", "PostgresEventLogStorage.has_table"): (
        "78217fbd74d0e09dcdffe21a47aa3e46cf68871be6a3348427712ffa9799f676",
        "PooledPostgresEventLogStorage.has_table (remembers a table once it exists)",
    ),
    ("dagster_postgres.event_log.event_log", "PostgresEventLogStorage.__init__"): (
        "647dff00b58c122294a362d38fed84b5064aa0f4520a64e6febb167120f2b5b2",
        "_PooledEngineMixin._use_pool (replaces the NullPool `_engine` built here)",
    ),
    ("dagster_postgres.run_storage.run_storage", "PostgresRunStorage.__init__"): (
        "c20e1fcd1ee52b39579bdab98f9fefa3a94acda1abf015bce303d82c78c3072a",
        "_PooledEngineMixin._use_pool (replaces the NullPool `_engine` built here)",
    ),
    ("dagster_postgres.schedule_storage.schedule_storage", "PostgresScheduleStorage.__init__"): (
        "ac8f466b4e7680d54c4307b1b71fa5c73ff87d02a4ceb96f924f385948e1d225",
        "_PooledEngineMixin._use_pool (replaces the NullPool `_engine` built here)",
    ),
    ("dagster_postgres.event_log.event_log", "PostgresEventLogStorage.optimize_for_webserver"): (
        "c084cd79114d5e5e41d842d9be863b717114f79799ee0e2a3db16c4473297a24",
        "_PooledEngineMixin.optimize_for_webserver (guards and closes the engine built here)",
    ),
    ("dagster_postgres.run_storage.run_storage", "PostgresRunStorage.optimize_for_webserver"): (
        "c084cd79114d5e5e41d842d9be863b717114f79799ee0e2a3db16c4473297a24",
        "_PooledEngineMixin.optimize_for_webserver (guards and closes the engine built here)",
    ),
    (
        "dagster_postgres.schedule_storage.schedule_storage",
        "PostgresScheduleStorage.optimize_for_webserver",
    ): (
        "c084cd79114d5e5e41d842d9be863b717114f79799ee0e2a3db16c4473297a24",
        "_PooledEngineMixin.optimize_for_webserver (guards and closes the engine built here)",
    ),
    ("dagster_postgres.utils", "create_pg_engine"): (
        "8bb1e695cf5059945b8989f60128a0289d383df1ed22585e93d6ad1a566e9398",
        "create_pooled_engine (passes the pool settings through it)",
    ),
}

# Private upstream members the pooled event log calls, with the signatures it calls them by.
PRIVATE_MEMBERS_CALLED = {
    "_store_asset_event_tags": "(self, conn: sqlalchemy.engine.base.Connection, "
    "events: collections.abc.Sequence[dagster._core.events.log.EventLogEntry], "
    "event_ids: collections.abc.Sequence[int]) -> None",
    "_store_asset_event": "(self, conn: sqlalchemy.engine.base.Connection, "
    "event: dagster._core.events.log.EventLogEntry, event_id: int) -> None",
    "_event_insert_timestamp": "(self, event)",
}

# The columns `_store_asset_check_evaluation_planned` fills (id, materialization_event_storage_id and
# create_timestamp are left to the database, as upstream does).
ASSET_CHECK_EXECUTION_COLUMNS = [
    "id",
    "asset_key",
    "check_name",
    "partition",
    "run_id",
    "execution_status",
    "evaluation_event",
    "evaluation_event_timestamp",
    "evaluation_event_storage_id",
    "materialization_event_storage_id",
    "create_timestamp",
]


def _versions() -> str:
    return f"dagster {dg.__version__}, dagster-postgres {importlib.metadata.version('dagster-postgres')}"


@pytest.mark.parametrize("upstream", sorted(UPSTREAM_CODE), ids=lambda key: key[1])
def test_upstream_code_the_pooled_storage_re_implements_is_unchanged(upstream: tuple[str, str]) -> None:
    module, qualified_name = upstream
    target: Any = importlib.import_module(module)
    for part in qualified_name.split("."):
        target = getattr(target, part)
    digest = hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
    expected, ours = UPSTREAM_CODE[upstream]
    assert digest == expected, (
        f"{module}.{qualified_name} changed upstream ({_versions()}). Re-check {ours} in {STORAGE_MODULE} "
        f"against the new code (new columns, index writes, engine arguments), then set its sha256 in "
        f"energy_assets_tests/test_storage.py UPSTREAM_CODE to {digest}."
    )


def test_private_upstream_members_the_pooled_storage_calls_are_unchanged() -> None:
    for name, signature in PRIVATE_MEMBERS_CALLED.items():
        found = str(inspect.signature(getattr(PooledPostgresEventLogStorage, name)))
        assert found == signature, (
            f"SqlEventLogStorage.{name} changed its signature upstream ({_versions()}): {found}. Re-check "
            f"PooledPostgresEventLogStorage in {STORAGE_MODULE}, which calls it."
        )
    columns = [column.name for column in AssetCheckExecutionsTable.columns]
    assert columns == ASSET_CHECK_EXECUTION_COLUMNS, (
        f"AssetCheckExecutionsTable has columns {columns} ({_versions()}). Re-check the `shared` columns of "
        f"PooledPostgresEventLogStorage._store_asset_check_evaluation_planned in {STORAGE_MODULE}."
    )
