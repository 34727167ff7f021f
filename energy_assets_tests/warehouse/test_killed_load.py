"""A load whose process is killed (SIGKILL) in the middle of its COPY leaves the table as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest
from psycopg import sql

from energy_assets.postgres.connection import PostgresSettings
from energy_assets.warehouse import TableName, WarehouseLoader

CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np, pyarrow as pa
    from energy_assets.postgres.connection import PostgresSettings
    from energy_assets.warehouse import TableName, WarehouseLoader

    settings = PostgresSettings.from_uri(os.environ["WAREHOUSE_TEST_URI"])
    rows = 6_000_000
    data = pa.table({
        "series_id": pa.array(np.arange(rows, dtype=np.int32) % 200 + 1000),
        "value": pa.array(np.random.default_rng(1).random(rows)),
    })
    WarehouseLoader(settings).append(TableName(sys.argv[1], sys.argv[2]), data)
    print("finished")
    """
)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_killing_the_loader_mid_copy_leaves_the_table_unchanged(
    loader: WarehouseLoader, warehouse_schema: str, pg_settings: PostgresSettings, query
) -> None:
    table = TableName(warehouse_schema, "big")
    loader.append(table, pa.table({"series_id": pa.array(range(5), pa.int32()), "value": [0.5] * 5}))
    env = {**os.environ, "WAREHOUSE_TEST_URI": pg_settings.uri(with_password=True)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, table.schema, table.name],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        progress = sql.SQL(
            "SELECT pid, tuples_processed FROM pg_stat_progress_copy WHERE relid = to_regclass({})"
        ).format(sql.Literal(str(table)))
        pid, copied = wait_for(
            lambda: next(iter([r for r in query(progress) if r[1] > 0]), None),
            60,
            "the child's COPY to start",
        )
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert copied > 0
    # The server notices the dead client, rolls the transaction back and ends the backend.
    wait_for(
        lambda: query("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)) == [(0,)],
        30,
        "rollback",
    )
    assert query(sql.SQL("SELECT count(*), sum(series_id) FROM {}").format(table.sql())) == [(5, 10)]
    assert query(
        "SELECT count(*) FROM energy_meta.load_log WHERE table_schema = %s AND status = 'succeeded'",
        (warehouse_schema,),
    ) == [(1,)]
    # The table is not left locked: the next load goes through.
    assert (
        loader.append(table, pa.table({"series_id": pa.array([5], pa.int32()), "value": [1.0]})).inserted == 1
    )
