"""The README's main command end to end: all three bundled samples on the managed cluster, runs in PostgreSQL.

Run once per session (it is the only test of the whole graph); values are derived from the bundled samples.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date

import pytest

from energy_assets.defs.sample import run_sample_pipeline
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.settings import DataHome
from energy_assets.sources.energy_charts.local_days import local_day_window
from energy_assets.sources.energy_charts.snapshot import SAMPLE_DIR as ENERGY_CHARTS_SAMPLE
from energy_assets.sources.meters.nem12 import read_nem12_table
from energy_assets.sources.meters.settings import sample_files

SAMPLE_DAYS = ("2023-12-31", "2025-03-30", "2025-09-30", "2025-10-01", "2025-10-26")


def expected_prices_per_day() -> dict[str, int]:
    """Prices per sample day, counted from the recorded one-day responses."""
    counts = {}
    for day in SAMPLE_DAYS:
        body = json.loads((ENERGY_CHARTS_SAMPLE / f"price_DE-LU_{day}.json").read_text())
        window = local_day_window(date.fromisoformat(day))
        counts[day] = sum(1 for ts in body["unix_seconds"] if window.start_unix <= ts < window.end_unix)
    return counts


@pytest.mark.slow
def test_sample_pipeline_end_to_end(
    managed_cluster: ManagedCluster, data_home: DataHome, monkeypatch
) -> None:
    with connect(managed_cluster.settings("dagster")) as conn:
        runs_before = conn.execute("SELECT count(*) FROM runs").fetchone()[0] if _has_runs(conn) else 0
    saved = dict(os.environ)
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(data_home.root))
    try:
        summary = run_sample_pipeline(data_home)
    finally:
        os.environ.clear()
        os.environ.update(saved)

    assert f"Sample days: {', '.join(SAMPLE_DAYS)}." in summary
    assert "error:" not in summary  # only the freshness warnings of old sample data may fail
    with connect(managed_cluster.settings("energy")) as conn:
        per_day = dict(
            conn.execute(
                "SELECT (interval_start AT TIME ZONE 'Europe/Berlin')::date::text, count(*)"
                " FROM energy_charts.day_ahead_price GROUP BY 1"
            ).fetchall()
        )
        analysis_days = conn.execute(
            "SELECT local_date::text FROM marts.daily_price_analysis WHERE local_date = ANY(%s::date[]) ORDER BY 1",
            (list(SAMPLE_DAYS),),
        ).fetchall()
        building_rows = dict(
            conn.execute("SELECT meter, count(*) FROM buildings.meter_readings GROUP BY 1").fetchall()
        )
        records = dict(
            conn.execute(
                "SELECT lake_partition, row_count FROM energy_meta.published_partitions"
                " WHERE table_schema = 'buildings' AND table_name = 'meter_readings'"
            ).fetchall()
        )
        sample_nmis = sorted(
            {nmi for path in sample_files() for nmi in read_nem12_table(path).column("nmi").to_pylist()}
        )
        meter_rows = conn.execute(
            "SELECT count(*) FROM meters.meter_readings WHERE nmi = ANY(%s)", (sample_nmis,)
        ).fetchone()[0]
        revised = conn.execute(
            "SELECT count(*) FROM meters.meter_readings_history WHERE nmi = ANY(%s)", (sample_nmis,)
        ).fetchone()[0]
        statuses = conn.execute(
            "SELECT status, count(*) FROM meters.ingested_files WHERE sha256 = ANY(%s) GROUP BY 1",
            ([hashlib.sha256(path.read_bytes()).hexdigest() for path in sample_files()],),
        ).fetchall()
    assert {day: per_day[day] for day in SAMPLE_DAYS} == expected_prices_per_day()
    assert [day for (day,) in analysis_days] == list(SAMPLE_DAYS)
    assert building_rows == {label.split("=", 1)[1]: rows for label, rows in records.items()}
    unique_intervals = {
        (row["nmi"], row["nmi_suffix"], row["interval_end"])
        for path in sample_files()
        for row in read_nem12_table(path).select(["nmi", "nmi_suffix", "interval_end"]).to_pylist()
    }
    assert meter_rows == len(unique_intervals)
    assert revised > 0  # the second sample file revises readings of the first
    assert statuses == [("processed", len(sample_files()))]
    with connect(managed_cluster.settings("dagster")) as conn:
        new_runs = conn.execute(
            "SELECT status, count(*) FROM runs WHERE id > (SELECT coalesce(max(id), 0) FROM runs) - %s GROUP BY 1",
            (conn.execute("SELECT count(*) FROM runs").fetchone()[0] - runs_before,),
        ).fetchall()
    # health 1 + Energy-Charts 5 + buildings 1 + 5 meters + 1 marts + one run per NEM12 sample file + report
    assert new_runs == [("SUCCESS", 1 + 5 + 7 + len(sample_files()) + 1)]
    report = data_home.root / "reports" / "platform_report.html"
    assert f"Report (opens offline in a browser): {report}" in summary
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 4 and "<script" not in html


def _has_runs(conn) -> bool:
    return conn.execute("SELECT to_regclass('public.runs') IS NOT NULL").fetchone()[0]
