"""Dagster instance storage on PostgreSQL that keeps a few connections open instead of one per call.

dagster-postgres builds its run, event-log and schedule engines with SQLAlchemy's `NullPool` (it
switches to a pooled engine only inside the webserver, `optimize_for_webserver`). In a run worker every
storage call therefore opens a new connection: a TCP connect, a TLS handshake and SCRAM authentication,
about 8 ms on loopback, two or three per Dagster event. A one-year single-run backfill stores about 6,000
events and spent most of its time connecting.

The classes here are the dagster-postgres storages with these differences:

- each keeps a small `QueuePool` (by default 2 connections, LIFO; more are opened when threads need them
  at once and closed on return, as before). TLS is unchanged: the same URL, `sslmode=verify-full`;
- `synchronous_commit` can be set for the storage's sessions (libpq `options`, no extra round trip).
  "off" lets a commit return before its WAL record is flushed to disk: on this project's disks that
  flush is most of the cost of an event. An OS crash may then lose the last fraction of a second of run
  history; nothing is corrupted, and the energy data (other sessions) keeps synchronous commits;
- the event log skips dagster-postgres' `NOTIFY` after every insert (kept upstream only for older
  webservers that still LISTEN; the Dagster family is pinned to one release here) and remembers which of
  its optional tables exist instead of asking the catalog before every asset event;
- a planned check of a partitioned asset writes upstream's row per partition in one `INSERT ... SELECT`
  with the event serialized once, not once per row (a year's backfill plans 42 checks x 366 partitions:
  1.8 s upstream).

The pool is safe where Dagster uses it:

- forked processes: a child never uses or closes a connection its parent opened (pools are emptied
  after `fork()`, and a connection checked out in another process id is discarded);
- spawned step processes rebuild the instance from its ref, so each process has its own pool;
- idle connections: one idle for `ping_after_idle_seconds` is pinged (`SELECT 1`) before reuse and
  replaced if the server has gone; connections older than `recycle_seconds` are replaced;
- a connection goes back to the pool in autocommit mode with no transaction open (`reset_on_return`);
- in the webserver, Dagster's own `optimize_for_webserver` settings (statement timeout, recycle,
  overflow) replace the pool as they would for the stock storages.

Configure it in `dagster.yaml` instead of `storage: postgres:` (the same `postgres_url` or `postgres_db`):

    storage:
      custom:
        module: energy_assets.instance.storage
        class: PooledPostgresStorage
        config:
          postgres_url: {env: DAGSTER_PG_URL}
          pool: {size: 2, max_overflow: -1, recycle_seconds: 1800, ping_after_idle_seconds: 10}
          synchronous_commit: "off"

The three storages can also be named one by one (`run_storage`, `event_log_storage`, `schedule_storage`
with `PooledPostgresRunStorage`, `PooledPostgresEventLogStorage`, `PooledPostgresScheduleStorage`).
This module is instance plumbing only: no asset logic, and nothing here reads project settings.

Upgrading Dagster: the write paths above re-implement upstream code, and the pool replaces the engine that
dagster-postgres' constructors build (no public hook exists). `energy_assets_tests/test_storage.py`
pins a sha256 of each upstream method involved and the columns of `AssetCheckExecutionsTable`; when it fails,
re-check the method it names here against the new upstream code before updating the pin.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy
import sqlalchemy.event
import sqlalchemy.exc
import sqlalchemy.pool
from dagster import Field, IntSource, Shape, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import pg_config
from dagster._core.storage.event_log import EventLogStorage, SqlEventLogStorageTable
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.runs import RunStorage
from dagster._core.storage.schedules import ScheduleStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config
from sqlalchemy.dialects.postgresql import ARRAY

MODULE = "energy_assets.instance.storage"

# Event kinds a batch may hold to be written in one INSERT by `PooledPostgresEventLogStorage`.
_BATCHED_IN_ONE_STATEMENT = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_OBSERVATION,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
    DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
}


SYNCHRONOUS_COMMIT_VALUES: tuple[str, ...] = ("on", "off", "local", "remote_write", "remote_apply")
POOLED_ONLY_KEYS: tuple[str, ...] = ("pool", "synchronous_commit")


@dataclass(frozen=True)
class PoolSettings:
    """How many connections a storage keeps, when it checks or replaces them, and how its sessions commit."""

    size: int = 2
    # -1: no limit. Connections beyond `size` are opened when threads need them at once (daemon, webserver)
    # and closed on return, as dagster-postgres does for all of them; a limit would make threads wait.
    max_overflow: int = -1
    timeout_seconds: int = 30
    recycle_seconds: int = 1800
    ping_after_idle_seconds: int = 10
    # None: the server's setting (on). "off" lets a commit return before its WAL is flushed (see module doc).
    synchronous_commit: str | None = None

    def __post_init__(self) -> None:
        for name in ("timeout_seconds", "recycle_seconds", "ping_after_idle_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"dagster.yaml storage pool.{name} must be >= 0, got {getattr(self, name)}")
        if self.size < 1:
            raise ValueError(f"dagster.yaml storage pool.size must be at least 1, got {self.size}")
        if self.max_overflow < -1:
            raise ValueError(
                f"dagster.yaml storage pool.max_overflow must be -1 (no limit) or more, got {self.max_overflow}"
            )
        if self.synchronous_commit is not None and self.synchronous_commit not in SYNCHRONOUS_COMMIT_VALUES:
            raise ValueError(
                f"dagster.yaml storage synchronous_commit must be one of {SYNCHRONOUS_COMMIT_VALUES}, "
                f'got {self.synchronous_commit!r} (quote "off" and "on": YAML reads them as booleans)'
            )

    @classmethod
    def from_config(cls, config_value: Mapping[str, Any]) -> PoolSettings:
        """From a storage config: its `pool` block (missing keys take the defaults) and `synchronous_commit`."""
        pool = {
            key: int(value) for key, value in (config_value.get("pool") or {}).items() if value is not None
        }
        return cls(**pool, synchronous_commit=config_value.get("synchronous_commit"))

    def session_options(self) -> str:
        """libpq `options` (server settings sent with the startup packet: no extra round trip)."""
        return f"-c synchronous_commit={self.synchronous_commit}" if self.synchronous_commit else ""


def pooled_pg_config() -> UserConfigSchema:
    """dagster-postgres' config schema plus an optional `pool` block."""
    defaults = PoolSettings()
    base: dict[str, Any] = dict(pg_config())  # type: ignore[arg-type]  # a Mapping in practice
    return {
        **base,
        "pool": Field(
            Shape(
                {
                    "size": Field(IntSource, is_required=False, default_value=defaults.size),
                    "max_overflow": Field(IntSource, is_required=False, default_value=defaults.max_overflow),
                    "timeout_seconds": Field(
                        IntSource, is_required=False, default_value=defaults.timeout_seconds
                    ),
                    "recycle_seconds": Field(
                        IntSource, is_required=False, default_value=defaults.recycle_seconds
                    ),
                    "ping_after_idle_seconds": Field(
                        IntSource, is_required=False, default_value=defaults.ping_after_idle_seconds
                    ),
                }
            ),
            is_required=False,
            description="Connections each storage keeps open (QueuePool) and when they are checked.",
        ),
        "synchronous_commit": Field(
            StringSource,
            is_required=False,
            description="synchronous_commit of the storage's sessions; empty: the server's setting.",
        ),
    }


def with_storage(
    instance_config: Mapping[str, Any], *, pooled: bool, settings: Mapping[str, Any] | None = None
) -> dict:
    """A dagster.yaml (as a dict) whose `storage` is the pooled storage or dagster-postgres' own, same database.

    Accepts either form (`storage: postgres:` or `storage: custom:` naming this module). `settings` (`pool`,
    `synchronous_commit`) are added for the pooled form; the stock form drops them. Benchmarks and tests use
    it to compare the two.
    """
    section = instance_config["storage"]
    current = dict(section["postgres"] if "postgres" in section else section["custom"]["config"])
    if not pooled:
        stock = {key: value for key, value in current.items() if key not in POOLED_ONLY_KEYS}
        return {**instance_config, "storage": {"postgres": stock}}
    storage = {
        "module": MODULE,
        "class": PooledPostgresStorage.__name__,
        "config": {**current, **(settings or {})},
    }
    return {**instance_config, "storage": {"custom": storage}}


# ---------------------------------------------------------------------------------------------------------
# Engines

# Every pooled engine of this process, so a forked child can drop the connections it inherited.
_POOLED_ENGINES: weakref.WeakSet[sqlalchemy.engine.Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_POOLED_ENGINES):
        # close=False: the sockets belong to the parent; closing them here would end its sessions.
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def guard_pool(engine: sqlalchemy.engine.Engine, ping_after_idle_seconds: float) -> None:
    """Make a pooled engine safe across `fork()` and against connections the server dropped while idle."""

    @sqlalchemy.event.listens_for(engine, "connect")
    def _remember_owner(dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @sqlalchemy.event.listens_for(engine, "checkin")
    def _remember_idle_since(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sqlalchemy.event.listens_for(engine, "checkout")
    def _check_before_use(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            # Opened by another process: never use or close it here; the pool opens a fresh one.
            record.dbapi_connection = proxy.dbapi_connection = None
            raise sqlalchemy.exc.DisconnectionError(
                f"connection opened by process {record.info.get('pid')}, not {os.getpid()}"
            )
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since >= ping_after_idle_seconds:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except engine.dialect.loaded_dbapi.Error as exc:
                raise sqlalchemy.exc.DisconnectionError(f"idle connection is gone: {exc}") from exc

    _POOLED_ENGINES.add(engine)


def create_pooled_engine(
    postgres_url: str, token_provider: Any = None, pool: PoolSettings | None = None
) -> sqlalchemy.engine.Engine:
    """An autocommit engine like dagster-postgres', with a guarded `QueuePool` instead of `NullPool`."""
    pool = pool or PoolSettings()
    options = " ".join(
        part
        for part in (
            _query_text(sqlalchemy.engine.make_url(postgres_url).query.get("options")),
            pool.session_options(),
        )
        if part
    )
    engine = create_pg_engine(
        postgres_url,
        token_provider,
        connect_args={"options": options} if options else {},
        isolation_level="AUTOCOMMIT",
        poolclass=sqlalchemy.pool.QueuePool,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout_seconds,
        pool_recycle=pool.recycle_seconds,
        pool_reset_on_return="rollback",
        pool_use_lifo=True,  # reuse the warmest connection; surplus ones age out via recycle
    )
    guard_pool(engine, pool.ping_after_idle_seconds)
    return engine


class _PooledConfig:
    """The dagster.yaml side of every pooled storage: dagster-postgres' config plus `pool`."""

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return pooled_pg_config()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Any:
        storage: Any = cls  # a concrete storage class below, whose constructor takes these arguments
        return storage(inst_data=inst_data, **_storage_kwargs(config_value))


class _PooledEngineMixin(_PooledConfig):
    """Swaps a dagster-postgres storage's `NullPool` engine for a pooled one and closes it on dispose."""

    # dagster-postgres offers no public way to choose the pool: `__init__` builds `_engine` with NullPool and
    # this replaces it (test_storage's tripwire pins the upstream code this relies on).
    _engine: sqlalchemy.engine.Engine
    postgres_url: str

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        pool: PoolSettings | None = None,
    ) -> None:
        super().__init__(postgres_url, should_autocreate_tables, inst_data, token_provider)  # type: ignore[call-arg]
        self._use_pool(pool or PoolSettings(), token_provider)

    def _use_pool(self, pool: PoolSettings, token_provider: Any) -> None:
        unpooled = self._engine
        self._engine = create_pooled_engine(self.postgres_url, token_provider, pool)
        self.pool_settings = pool
        self._close_pool_when_collected()
        unpooled.dispose()

    def _close_pool_when_collected(self) -> None:
        # The instance does not dispose every storage (schedules), so close the pool with the object too.
        weakref.finalize(self, self._engine.dispose)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        previous = self._engine
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)  # type: ignore[misc]
        if self._engine is not previous:
            guard_pool(self._engine, PoolSettings().ping_after_idle_seconds)
            self._close_pool_when_collected()
            previous.dispose()

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()


def _storage_kwargs(config_value: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "postgres_url": pg_url_from_config(config_value),
        "should_autocreate_tables": config_value.get("should_autocreate_tables", True),
        "token_provider": get_token_provider_from_config(config_value),
        "pool": PoolSettings.from_config(config_value),
    }


# ---------------------------------------------------------------------------------------------------------
# Storages


class PooledPostgresEventLogStorage(_PooledEngineMixin, PostgresEventLogStorage):
    """dagster-postgres' event log storage with a small connection pool (see the module docstring)."""

    # Optional tables known to exist (filled as Dagster asks, also while the base class initializes).
    _tables_present: set[str]

    def has_table(self, table_name: str) -> bool:
        # Dagster asks before every asset event whether its optional tables exist (a catalog query each
        # time). Tables are only ever added (by `dagster instance migrate`), so a "yes" is remembered.
        known: set[str] = self.__dict__.setdefault("_tables_present", set())
        if table_name in known:
            return True
        exists = super().has_table(table_name)
        if exists:
            known.add(table_name)
        return exists

    def store_event(self, event: EventLogEntry) -> None:
        """dagster-postgres' `store_event` without its `NOTIFY` after every insert.

        dagster-postgres keeps the NOTIFY only for older webservers that still LISTEN ("preserved here to
        support version skew"); the whole Dagster family is pinned to one release here, and nothing listens.
        Each NOTIFY is a transaction of its own (a round trip and a WAL flush per event).
        """
        insert = self.prepare_insert_event(event)
        with self.run_connection(event.run_id) as conn:
            result = conn.execute(insert.returning(SqlEventLogStorageTable.c.id))
            event_id = int(result.scalar_one())
        dagster_event = event.dagster_event
        if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and dagster_event.asset_key:  # type: ignore[union-attr]
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
            self.store_asset_check_event(event, event_id)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """A batch in one INSERT and one index transaction, whatever mix of asset events it holds.

        Dagster batches a run's planned events (every asset, partition and check of a single-run backfill:
        thousands for a year) and the per-partition materializations of a step when DAGSTER_EVENT_BATCH_SIZE
        is set. dagster-postgres writes a batch in one statement only when it holds materializations (or
        observations) alone, and otherwise event by event: a round trip and a commit each.

        Here the asset-key index gets, for each asset key, the last event of each type in batch order,
        which leaves every column as writing the events one by one would. Asset-check events are indexed
        one by one, as upstream. Batches with anything else (failed materializations) go the upstream way.
        """
        kinds = {event.dagster_event_type for event in events}
        if not events or not kinds <= _BATCHED_IN_ONE_STATEMENT:
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            result = conn.execute(
                self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id)
            )
            event_ids = [int(row[0]) for row in result.fetchall()]
        stored = list(zip(events, event_ids, strict=True))
        asset_events = [
            (event, event_id) for event, event_id in stored if event.dagster_event_type in ASSET_EVENTS
        ]
        if asset_events:
            last_per_key_and_kind: dict[tuple[str, Any], tuple[EventLogEntry, int]] = {}
            for event, event_id in asset_events:
                key = event.get_dagster_event().asset_key
                if key is not None:
                    last_per_key_and_kind[(key.to_string(), event.dagster_event_type)] = (event, event_id)
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [e for e, _ in asset_events], [i for _, i in asset_events])
                for event, event_id in sorted(last_per_key_and_kind.values(), key=lambda item: item[1]):
                    self._store_asset_event(conn, event, event_id)
        for event, event_id in stored:
            if event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """Upstream's rows, one per planned partition, written by one `INSERT ... SELECT unnest(keys)`.

        Upstream serializes the event once per partition and sends a row of parameters for each.
        """
        planned = event.get_dagster_event().event_specific_data
        subset = getattr(planned, "partitions_subset", None)
        if not subset:
            super()._store_asset_check_evaluation_planned(event, event_id)
            return
        table = AssetCheckExecutionsTable
        shared = {
            "asset_key": planned.asset_key.to_string(),  # type: ignore[union-attr]
            "check_name": planned.check_name,  # type: ignore[union-attr]
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        keys = sqlalchemy.bindparam(
            "partition_keys", list(subset.get_partition_keys()), ARRAY(sqlalchemy.Text)
        )
        rows = sqlalchemy.select(
            *(sqlalchemy.literal(value, table.c[name].type) for name, value in shared.items()),
            sqlalchemy.func.unnest(keys),
        )
        with self.index_connection() as conn:
            conn.execute(table.insert().from_select([*shared, "partition"], rows))


class PooledPostgresRunStorage(_PooledEngineMixin, PostgresRunStorage):
    """dagster-postgres' run storage with a small connection pool (see the module docstring)."""


class PooledPostgresScheduleStorage(_PooledEngineMixin, PostgresScheduleStorage):
    """dagster-postgres' schedule storage with a small connection pool (see the module docstring)."""


class PooledPostgresStorage(_PooledConfig, DagsterStorage, ConfigurableClass):
    """Runs, event logs and schedules on PostgreSQL, each storage with its own small pool.

    The drop-in for `storage: postgres:` (as `storage: custom:`, see the module docstring).
    """

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
        pool: PoolSettings | None = None,
    ) -> None:
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        kwargs = {"token_provider": token_provider, "pool": pool or PoolSettings()}
        self._run_storage = PooledPostgresRunStorage(postgres_url, should_autocreate_tables, **kwargs)
        self._event_log_storage = PooledPostgresEventLogStorage(
            postgres_url, should_autocreate_tables, **kwargs
        )
        self._schedule_storage = PooledPostgresScheduleStorage(
            postgres_url, should_autocreate_tables, **kwargs
        )
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self._event_log_storage

    @property
    def run_storage(self) -> RunStorage:
        return self._run_storage

    @property
    def schedule_storage(self) -> ScheduleStorage:
        return self._schedule_storage

    def _part_data(self, class_name: str) -> ConfigurableClassData | None:
        return (
            ConfigurableClassData(MODULE, class_name, self._inst_data.config_yaml)
            if self._inst_data
            else None
        )

    @property
    def event_storage_data(self) -> ConfigurableClassData | None:
        return self._part_data(PooledPostgresEventLogStorage.__name__)

    @property
    def run_storage_data(self) -> ConfigurableClassData | None:
        return self._part_data(PooledPostgresRunStorage.__name__)

    @property
    def schedule_storage_data(self) -> ConfigurableClassData | None:
        return self._part_data(PooledPostgresScheduleStorage.__name__)


def _query_text(value: str | tuple[str, ...] | None) -> str:
    """A URL query value as one string (SQLAlchemy gives a tuple for a repeated key)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)
