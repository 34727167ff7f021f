"""The pooled Dagster instance storage (`energy_assets.dagster_storage`) on the session's managed cluster.

A real instance over verify-full TLS: a run and its events go through the pooled storages; writing 200 events
opens a bounded number of server sessions where dagster-postgres' own storage opens about one per event; and
the pool survives what long-lived processes meet: a `fork()` and a server that dropped an idle connection.
"""

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

from energy_assets.dagster_instance import dagster_environment, write_dagster_yaml
from energy_assets.dagster_storage import (
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
