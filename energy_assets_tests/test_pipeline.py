"""The README's main command end to end: the whole sample on the managed cluster, run history in PostgreSQL."""

from __future__ import annotations

import os

from energy_assets.pipeline import run_sample_pipeline
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.settings import DataHome


def test_sample_pipeline_end_to_end(
    managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch
) -> None:
    saved = dict(os.environ)
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    try:
        summary = run_sample_pipeline(data_home)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert "Sample days: 2023-12-31, 2025-03-30, 2025-09-30, 2025-10-01, 2025-10-26." in summary
    assert "error:" not in summary  # only the freshness warnings of old sample data may fail
    with connect(managed_cluster.settings("energy")) as conn:
        per_day = dict(
            conn.execute(
                "SELECT (interval_start AT TIME ZONE 'Europe/Berlin')::date::text, count(*) "
                "FROM energy_charts.day_ahead_price GROUP BY 1"
            ).fetchall()
        )
        marts = conn.execute("SELECT count(DISTINCT 1) FROM marts.daily_price_analysis").fetchone()[0]
    assert {day: per_day[day] for day in ("2025-03-30", "2025-09-30", "2025-10-01", "2025-10-26")} == {
        "2025-03-30": 23,
        "2025-09-30": 24,
        "2025-10-01": 96,
        "2025-10-26": 100,
    }
    assert marts == 1
    with connect(managed_cluster.settings("dagster")) as conn:
        successes = conn.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").fetchone()[0]
    assert successes >= 6
