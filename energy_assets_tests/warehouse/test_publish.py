"""The publish path on the session's cluster: audit before publish, lake and PostgreSQL in step.

A small daily table (`site`, `interval_start`, `value_mw`) partitioned by site and day stands in for
any source; every test reads back both the lake and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from energy_assets.errors import DataValidationError
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.warehouse.audit import AuditFailedError, AuditRule
from energy_assets.warehouse.lake_comparison import compare_lake_with_postgres
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets.warehouse.publish import Candidate, Publisher
from energy_assets.warehouse.table_spec import UTC_TIMESTAMP, TableSpec, column

DAY0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def make_spec(schema: str) -> TableSpec:
    return TableSpec(
        schema=schema,
        name="power",
        description="test power",
        columns=(
            column("site", pa.string(), "site", False),
            column("interval_start", UTC_TIMESTAMP, "start", False),
            column("series", pa.string(), "series", False),
            column("value_mw", pa.float64(), "MW", unit="MW", minimum=-100.0, maximum=1e5),
        ),
        primary_key=("site", "series", "interval_start"),
        series_columns=("site", "series"),
    )


def day_candidate(
    day: int, values: list[float], site: str = "a", series: tuple[str, ...] = ("x",)
) -> Candidate:
    start = DAY0 + timedelta(days=day)
    rows = {"site": [], "interval_start": [], "series": [], "value_mw": []}
    for name in series:
        for index, value in enumerate(values):
            rows["site"].append(site)
            rows["interval_start"].append(start + timedelta(hours=index))
            rows["series"].append(name)
            rows["value_mw"].append(value)
    table = pa.table(
        rows,
        schema=pa.schema(
            [
                ("site", pa.string()),
                ("interval_start", UTC_TIMESTAMP),
                ("series", pa.string()),
                ("value_mw", pa.float64()),
            ]
        ),
    )
    return Candidate(
        partition={"site": site, "date": start.date().isoformat()},
        scope={"site": site, "interval_start": (start, start + timedelta(days=1))},
        data=table,
    )


@pytest.fixture
def publisher(pg_settings: PostgresSettings, tmp_path: Path) -> Publisher:
    return Publisher(pg_settings, ParquetStore(tmp_path / "lake"), tmp_path / "rejected")


@pytest.fixture
def spec(warehouse_schema: str) -> TableSpec:
    return make_spec(warehouse_schema)


def pg_values(settings: PostgresSettings, spec: TableSpec) -> list[tuple]:
    with connect(settings) as conn:
        return conn.execute(
            sql.SQL("SELECT site, series, interval_start, value_mw FROM {}.{} ORDER BY 1, 2, 3").format(
                sql.Identifier(spec.schema), sql.Identifier(spec.name)
            )
        ).fetchall()


def lake_bytes(publisher: Publisher, spec: TableSpec, candidate: Candidate) -> bytes:
    return Path(publisher.store.partition_path(spec.qualified_name, candidate.partition)).read_bytes()


def test_publish_then_unchanged_rerun_writes_nothing(publisher, spec, pg_settings):
    first = publisher.publish(spec, [day_candidate(0, [1.0, 2.0]), day_candidate(1, [3.0, 4.0])])
    assert [p.status for p in first.partitions] == ["new", "new"]
    assert first.load is not None and first.load.inserted == 4
    assert [v[3] for v in pg_values(pg_settings, spec)] == [1.0, 2.0, 3.0, 4.0]
    path = publisher.store.partition_path(spec.qualified_name, day_candidate(0, []).partition)
    mtime = os.stat(path).st_mtime_ns
    again = publisher.publish(spec, [day_candidate(0, [1.0, 2.0]), day_candidate(1, [3.0, 4.0])])
    assert [p.status for p in again.partitions] == ["unchanged", "unchanged"]
    assert again.load is None
    assert os.stat(path).st_mtime_ns == mtime
    changed = publisher.publish(spec, [day_candidate(1, [3.0, 5.0])])
    assert [p.status for p in changed.partitions] == ["changed"]
    assert (changed.load.updated, changed.load.unchanged) == (1, 1)
    comparison = compare_lake_with_postgres(
        pg_settings,
        publisher.store,
        spec,
        [(c.partition, c.scope) for c in (day_candidate(0, []), day_candidate(1, []))],
    )
    assert comparison.passed, comparison.summary()
    assert [p.lake_rows for p in comparison.partitions] == [2, 2]


def test_a_lake_file_with_naive_utc_times_still_matches_postgres(publisher, spec, pg_settings):
    # A file written before the table's times carried a zone holds the same instants as naive UTC: the
    # comparison takes them as UTC (as the loader stored them), and still sees a moved timestamp.
    candidate = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [candidate])
    path = publisher.store.partition_path(spec.qualified_name, candidate.partition)
    table = pq.read_table(path)
    index = table.schema.get_field_index("interval_start")
    naive = table.set_column(index, "interval_start", table.column(index).cast(pa.timestamp("us")))
    pq.write_table(naive, path)
    partitions = [(candidate.partition, candidate.scope)]
    comparison = compare_lake_with_postgres(pg_settings, publisher.store, spec, partitions)
    assert comparison.passed, comparison.summary()

    moved = pa.array(
        [value + timedelta(minutes=15) for value in naive.column(index).to_pylist()], pa.timestamp("us")
    )
    pq.write_table(naive.set_column(index, "interval_start", moved), path)
    comparison = compare_lake_with_postgres(pg_settings, publisher.store, spec, partitions)
    assert not comparison.passed
    assert comparison.partitions[0].differing_columns == ["interval_start"]


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ([1.0, float("nan")], "finite:value_mw"),
        ([1.0, 1e308], "bounds:value_mw"),
        ([1.0, float("inf")], "finite:value_mw"),
        ([1.0], "no_shrinking_partition"),
    ],
)
def test_refused_candidate_changes_nothing_and_is_kept(publisher, spec, pg_settings, values, rule):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    before_lake = lake_bytes(publisher, spec, good)
    before_pg = pg_values(pg_settings, spec)
    with pytest.raises(AuditFailedError) as raised:
        publisher.publish(spec, [day_candidate(0, values)])
    message = str(raised.value)
    assert rule in message and "site=a/date=2024-03-01" in message and "Nothing was published" in message
    assert lake_bytes(publisher, spec, good) == before_lake
    assert pg_values(pg_settings, spec) == before_pg
    folder = Path(raised.value.rejected_at)
    report = json.loads((folder / "report.json").read_text())
    failed = [o for o in report["outcomes"] if not o["passed"]]
    assert rule in [o["rule"] for o in failed]
    assert all(o["partitions"] == ["site=a/date=2024-03-01"] for o in failed)
    assert (folder / "site=a__date=2024-03-01.parquet").exists()
    assert publisher.store.staged_tags(spec.qualified_name, good.partition) == []


def test_shrinking_partition_is_accepted_when_the_run_says_so(publisher, spec, pg_settings):
    publisher.publish(spec, [day_candidate(0, [1.0, 2.0], series=("x", "y"))])
    result = publisher.publish(spec, [day_candidate(0, [1.0, 2.0], series=("x",))], allow_shrink=True)
    assert result.load.deleted == 2
    assert {row[1] for row in pg_values(pg_settings, spec)} == {"x"}


def test_duplicate_key_and_source_rule_are_refused(publisher, spec):
    duplicate = day_candidate(0, [1.0, 2.0])
    table = pa.concat_tables([duplicate.data, duplicate.data.slice(0, 1)])
    with pytest.raises(AuditFailedError, match="unique_key"):
        publisher.publish(spec, [Candidate(duplicate.partition, duplicate.scope, table)])
    off_grid = AuditRule(
        "hour_grid",
        "starts on the hour",
        "SELECT * FROM candidate WHERE minute(interval_start) <> 0",
        "interval_start",
    )
    shifted = duplicate.data.set_column(
        1, "interval_start", pa.array([DAY0 + timedelta(minutes=7), DAY0 + timedelta(hours=1)], UTC_TIMESTAMP)
    )
    with pytest.raises(AuditFailedError, match="hour_grid"):
        publisher.publish(spec, [Candidate(duplicate.partition, duplicate.scope, shifted)], rules=[off_grid])


def test_merge_refused_by_postgres_leaves_the_lake_as_it_was(publisher, spec, pg_settings):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    before = lake_bytes(publisher, spec, good)
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER TABLE {}.{} ADD CONSTRAINT small CHECK (value_mw < 50)").format(
                sql.Identifier(spec.schema), sql.Identifier(spec.name)
            )
        )
    with pytest.raises(DataValidationError, match="small"):
        publisher.publish(spec, [day_candidate(0, [1.0, 60.0])])
    assert lake_bytes(publisher, spec, good) == before
    # The staged file of a commit that failed is left to recovery (a commit can succeed although the client
    # saw an error); the next run finds no record with its load id and drops it.
    assert len(publisher.store.staged_tags(spec.qualified_name, good.partition)) <= 1
    publisher.publish(spec, [day_candidate(0, [1.0, 2.0])])
    assert publisher.store.staged_tags(spec.qualified_name, good.partition) == []
    assert lake_bytes(publisher, spec, good) == before


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from energy_assets.postgres.connection import PostgresSettings
from energy_assets.warehouse import publish
from energy_assets.warehouse.parquet_store import ParquetStore
from energy_assets_tests.warehouse.test_publish import make_spec, day_candidate
settings = PostgresSettings(**{settings!r})
where = {where!r}
if where == "before_commit":
    original = publish.WarehouseLoader.merge
    def merge(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    publish.WarehouseLoader.merge = merge
else:
    def promote(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    ParquetStore.promote_staged = promote
publisher = publish.Publisher(settings, ParquetStore({lake!r}), Path({rejected!r}))
publisher.publish(make_spec({schema!r}), [day_candidate(0, [7.0, 8.0])])
"""


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_killed_publish_converges_on_the_next_run(publisher, spec, pg_settings, tmp_path, where):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).resolve().parents[2]),
        settings=_settings_kwargs(pg_settings),
        where=where,
        lake=str(publisher.store.root),
        rejected=str(tmp_path / "rejected"),
        schema=spec.schema,
    )
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert len(publisher.store.staged_tags(spec.qualified_name, good.partition)) == 1
    expected_pg = [1.0, 2.0] if where == "before_commit" else [7.0, 8.0]
    assert [v[3] for v in pg_values(pg_settings, spec)] == expected_pg
    result = publisher.publish(spec, [day_candidate(0, [7.0, 8.0])])
    assert result.repaired == ([] if where == "before_commit" else ["site=a/date=2024-03-01"])
    assert publisher.store.staged_tags(spec.qualified_name, good.partition) == []
    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(good.partition, good.scope)]
    )
    assert comparison.passed, comparison.summary()
    assert [v[3] for v in pg_values(pg_settings, spec)] == [7.0, 8.0]


def test_concurrent_publishes_of_one_partition_end_in_step(publisher, spec, pg_settings):
    publisher.publish(spec, [day_candidate(0, [1.0, 2.0])])
    errors = []

    def run(values):
        try:
            publisher.publish(spec, [day_candidate(0, values)])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=([v, v + 1000.0],)) for v in (10.0, 20.0, 30.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    good = day_candidate(0, [])
    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(good.partition, good.scope)]
    )
    assert comparison.passed, comparison.summary()


def test_comparison_sees_a_changed_value_not_only_counts(publisher, spec, pg_settings):
    good = day_candidate(0, [1.0, 2.0])
    publisher.publish(spec, [good])
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.{} SET value_mw = value_mw + 1000 WHERE value_mw = 2").format(
                sql.Identifier(spec.schema), sql.Identifier(spec.name)
            )
        )
    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(good.partition, good.scope)]
    )
    assert not comparison.passed
    assert [(p.lake_rows, p.postgres_rows, p.differing_columns) for p in comparison.partitions] == [
        (2, 2, ["value_mw"])
    ]
    assert "differing: value_mw" in comparison.summary()


def _settings_kwargs(settings: PostgresSettings) -> dict:
    from dataclasses import asdict

    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in asdict(settings).items()
        if v is None or isinstance(v, str | int | Path)
    }


def test_comparison_sees_a_timestamp_moved_by_a_quarter_hour(publisher, spec, pg_settings):
    good = day_candidate(0, [1.0, 2.0, 3.0])
    publisher.publish(spec, [good])
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "UPDATE {}.{} SET interval_start = interval_start + interval '15 minutes' WHERE value_mw = 3"
            ).format(sql.Identifier(spec.schema), sql.Identifier(spec.name))
        )
    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(good.partition, good.scope)]
    )
    assert [p.differing_columns for p in comparison.partitions] == [["interval_start"]]


# ---------------------------------------------------------------------------------------------------------
# A published value may not be replaced by a missing one


def test_refetch_with_nulls_is_refused_naming_series_partition_and_lost_values(publisher, spec, pg_settings):
    good = day_candidate(0, [1.0, 2.0, 3.0], series=("x", "y"))
    publisher.publish(spec, [good])
    before_lake, before_pg = lake_bytes(publisher, spec, good), pg_values(pg_settings, spec)
    values = good.data.column("value_mw").to_pylist()
    values[4] = values[5] = None  # series y loses two of its three values; rows and series stay
    nulled = Candidate(good.partition, good.scope, good.data.set_column(3, "value_mw", pa.array(values)))

    with pytest.raises(AuditFailedError) as raised:
        publisher.publish(spec, [nulled])

    [failure] = raised.value.report.failures
    assert failure.rule == "no_shrinking_partition:values"
    assert failure.partitions == ["site=a/date=2024-03-01"]
    assert failure.sample == [
        {
            "lake_partition": "site=a/date=2024-03-01",
            "series": "site=a/series=y",
            "value_column": "value_mw",
            "published_values": 3,
            "candidate_values": 1,
            "lost_values": 2,
        }
    ]
    message = str(raised.value)
    assert '"series": "site=a/series=y"' in message and '"lost_values": 2' in message
    assert lake_bytes(publisher, spec, good) == before_lake
    assert pg_values(pg_settings, spec) == before_pg
    assert publisher.store.staged_tags(spec.qualified_name, good.partition) == []

    accepted = publisher.publish(spec, [nulled], allow_shrink=True)

    assert [p.status for p in accepted.partitions] == ["changed"]
    assert [row[3] for row in pg_values(pg_settings, spec)] == [1.0, 2.0, 3.0, 1.0, None, None]


@pytest.mark.parametrize("lake_file", ["deleted", "changed outside the publish path"])
def test_without_the_recorded_lake_file_the_values_are_counted_in_postgres(
    publisher, spec, pg_settings, lake_file
):
    good = day_candidate(0, [1.0, 2.0, 3.0], series=("x", "y"))
    publisher.publish(spec, [good])
    path = Path(publisher.store.partition_path(spec.qualified_name, good.partition))
    if lake_file == "deleted":
        path.unlink()
    else:
        pq.write_table(pq.read_table(path).slice(0, 5), path)
    before_pg = pg_values(pg_settings, spec)
    values = good.data.column("value_mw").to_pylist()
    values[0] = None
    nulled = Candidate(good.partition, good.scope, good.data.set_column(3, "value_mw", pa.array(values)))

    with pytest.raises(AuditFailedError) as raised:
        publisher.publish(spec, [nulled])

    [failure] = raised.value.report.failures
    assert [(row["series"], row["published_values"], row["lost_values"]) for row in failure.sample] == [
        ("site=a/series=x", 3, 1)
    ]
    assert pg_values(pg_settings, spec) == before_pg
    repaired = publisher.publish(spec, [good])  # the published content again: the lake file is rewritten
    assert [p.status for p in repaired.partitions] == ["changed"]
    assert pq.read_table(path).num_rows == 6


def test_values_moved_between_series_are_refused_although_the_totals_match(publisher, spec):
    def with_values(values: list[float | None]) -> Candidate:
        base = day_candidate(0, [0.0, 0.0], series=("x", "y"))
        return Candidate(base.partition, base.scope, base.data.set_column(3, "value_mw", pa.array(values)))

    publisher.publish(spec, [with_values([1.0, 2.0, None, None])])

    with pytest.raises(AuditFailedError) as raised:
        # Same rows, series and number of values in the partition: x loses one, y gains one.
        publisher.publish(spec, [with_values([1.0, None, 3.0, None])])

    [failure] = raised.value.report.failures
    assert [(row["series"], row["lost_values"]) for row in failure.sample] == [("site=a/series=x", 1)]


def test_more_values_and_an_unchanged_rerun_pass(publisher, spec, pg_settings):
    publisher.publish(spec, [day_candidate(0, [1.0, None])])
    filled = publisher.publish(spec, [day_candidate(0, [1.0, 2.0])])
    again = publisher.publish(spec, [day_candidate(0, [1.0, 2.0])])
    assert [p.status for p in filled.partitions + again.partitions] == ["changed", "unchanged"]
    assert [row[3] for row in pg_values(pg_settings, spec)] == [1.0, 2.0]
    assert filled.audit.outcome("no_shrinking_partition:values").passed


def test_a_table_without_series_counts_values_per_key(publisher, warehouse_schema, pg_settings):
    keyed = TableSpec(
        schema=warehouse_schema,
        name="sites",
        description="one row per site",
        columns=(
            column("site", pa.string(), "site", False),
            column("area_m2", pa.float64(), "floor area"),
            column("label", pa.string(), "label"),
        ),
        primary_key=("site",),
    )

    def sites(area: list[float | None], label: list[str | None]) -> Candidate:
        table = pa.table({"site": ["a", "b"], "area_m2": area, "label": label}, schema=keyed.arrow_schema)
        return Candidate({"part": "all"}, {"site": ["a", "b"]}, table)

    publisher.publish(keyed, [sites([10.0, None], ["x", "y"])])
    for lake_file in ("as published", "deleted"):  # counted in the lake file, then in PostgreSQL
        if lake_file == "deleted":
            Path(publisher.store.partition_path(keyed.qualified_name, {"part": "all"})).unlink()
        with pytest.raises(AuditFailedError) as raised:
            publisher.publish(keyed, [sites([None, 20.0], ["x", "y"])])  # a's area lost, b's new
        [failure] = raised.value.report.failures
        assert [(row["series"], row["value_column"], row["lost_values"]) for row in failure.sample] == [
            ("site=a", "area_m2", 1)
        ], lake_file


@pytest.mark.parametrize("lake_file", ["as published", "deleted"])
def test_a_column_the_published_version_lacks_counts_as_no_values(publisher, spec, pg_settings, lake_file):
    publisher.publish(spec, [day_candidate(0, [1.0, 2.0])])
    if lake_file == "deleted":  # then PostgreSQL is read, whose table does not have the column yet
        Path(publisher.store.partition_path(spec.qualified_name, day_candidate(0, []).partition)).unlink()
    wider = TableSpec(
        schema=spec.schema,
        name=spec.name,
        description=spec.description,
        columns=(*spec.columns, column("quality", pa.string(), "flag")),
        primary_key=spec.primary_key,
        series_columns=spec.series_columns,
    )
    base = day_candidate(0, [1.0, 2.0])
    table = base.data.append_column("quality", pa.array([None, "A"], pa.string()))

    result = publisher.publish(wider, [Candidate(base.partition, base.scope, table)])

    assert [p.status for p in result.partitions] == ["changed"]
    assert result.audit.outcome("no_shrinking_partition:values").passed


# ---------------------------------------------------------------------------------------------------------
# The lake comparison sees rows on one side only


def test_comparison_fails_for_a_row_deleted_from_the_lake_file(publisher, spec, pg_settings):
    good = day_candidate(0, [1.0, 2.0, 3.0])
    publisher.publish(spec, [good])
    path = publisher.store.partition_path(spec.qualified_name, good.partition)
    pq.write_table(pq.read_table(path).slice(0, 2), path)

    comparison = compare_lake_with_postgres(
        pg_settings, publisher.store, spec, [(good.partition, good.scope)]
    )

    assert not comparison.passed
    assert [(p.lake_rows, p.postgres_rows) for p in comparison.partitions] == [(2, 3)]
    assert "lake 2 rows, PostgreSQL 3" in comparison.summary()


@pytest.mark.parametrize(("series", "day"), [("x", 0), ("z", 0), ("x", 1)])
def test_comparison_fails_for_one_extra_row_in_postgres(publisher, spec, pg_settings, series, day):
    first, second = day_candidate(0, [1.0, 2.0]), day_candidate(1, [3.0, 4.0])
    publisher.publish(spec, [first, second])
    with connect(pg_settings, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.{} (site, series, interval_start, value_mw) VALUES ('a', %s, %s, 9)"
            ).format(sql.Identifier(spec.schema), sql.Identifier(spec.name)),
            (series, DAY0 + timedelta(days=day, hours=5)),
        )
    partitions = [(first.partition, first.scope), (second.partition, second.scope)]

    comparison = compare_lake_with_postgres(pg_settings, publisher.store, spec, partitions)

    assert not comparison.passed, comparison.summary()
    assert [(p.lake_rows, p.postgres_rows) for p in comparison.partitions] == (
        [(2, 3), (2, 2)] if day == 0 else [(2, 2), (2, 3)]
    )
