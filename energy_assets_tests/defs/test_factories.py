"""The table-asset factory's one error policy: which failures the step's retry policy may retry."""

from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pyarrow as pa
import pytest
import requests

from energy_assets.defs.energy_charts.assets import local_days_present
from energy_assets.defs.factories import is_transient
from energy_assets.errors import DatabaseError, DataValidationError
from energy_assets.sources.buildings.errors import ZenodoApiError, ZenodoTransferError
from energy_assets.sources.energy_charts.errors import (
    EnergyChartsApiError,
    EnergyChartsTransferError,
    SnapshotNotRecordedError,
)

PARAMS = {"bzn": "DE-LU"}


def database_down() -> DatabaseError:
    try:
        raise psycopg.OperationalError("connection refused")
    except psycopg.OperationalError as cause:
        error = DatabaseError("Cannot connect to PostgreSQL at app@localhost:1/energy")
        error.__cause__ = cause
        return error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (EnergyChartsTransferError("price", PARAMS, "the connection broke after 23 bytes", status=200), True),
        (ZenodoTransferError("https://zenodo.org/api/records/1", "cut", status=200), True),
        (EnergyChartsApiError("price", PARAMS, "server error", status=503), True),
        (EnergyChartsApiError("price", PARAMS, "rate limited", status=429), True),
        (EnergyChartsApiError("price", PARAMS, "no answer", status=None), True),
        (EnergyChartsApiError("price", PARAMS, "retried", status=503, client_retried=True), False),
        (EnergyChartsApiError("price", PARAMS, "bad request", status=400), False),
        (ZenodoApiError("https://zenodo.org/api/records/1", "not found", status=404), False),
        (SnapshotNotRecordedError("price", PARAMS, "not recorded"), False),
        (database_down(), True),
        (psycopg.errors.DeadlockDetected("deadlock detected"), True),
        (DataValidationError("bad data"), False),
        (requests.ConnectionError("reset"), True),
        (ValueError("a bug"), False),
    ],
)
def test_what_the_step_may_retry(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_local_days_are_counted_in_the_sources_time_zone() -> None:
    # 23:30 UTC on 10 March is still 10 March in Lisbon (UTC+0) but 11 March in Berlin (UTC+1).
    starts = pa.table(
        {
            "interval_start": pa.array(
                [datetime(2025, 3, 10, 23, 30, tzinfo=timezone.utc)], pa.timestamp("us", "UTC")
            )
        }
    )
    assert [day.isoformat() for day in local_days_present(starts, "Europe/Lisbon")] == ["2025-03-10"]
    assert [day.isoformat() for day in local_days_present(starts, "Europe/Berlin")] == ["2025-03-11"]
