"""The static report: self-contained (no scripts, no remote URLs), real images, words for empty inputs."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pyarrow as pa

from energy_assets.reports.html_report import ReportInputs, render_report
from energy_assets.sources.buildings.tables import BUILDING_DAILY_CONSUMPTION, BUILDING_ENERGY_USE_INTENSITY
from energy_assets.sources.energy_charts.tables import DAILY_PRICE_ANALYSIS, DAILY_PRODUCTION_TREND
from energy_assets.sources.meters.tables import NMI_DAILY_CONSUMPTION

GENERATED = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def empty_inputs() -> ReportInputs:
    return ReportInputs(
        DAILY_PRICE_ANALYSIS.empty(),
        DAILY_PRODUCTION_TREND.empty(),
        BUILDING_DAILY_CONSUMPTION.empty(),
        BUILDING_ENERGY_USE_INTENSITY.empty(),
        NMI_DAILY_CONSUMPTION.empty(),
    )


def test_empty_inputs_are_said_in_words_not_drawn() -> None:
    html = render_report(empty_inputs(), generated_at=GENERATED)
    assert "<img" not in html
    assert html.count('class="empty"') == 4
    assert "materialize marts/daily_price_analysis" in html


def test_sections_with_data_embed_png_images_and_fetch_nothing() -> None:
    analysis = pa.Table.from_pylist(
        [
            {
                "local_date": date(2025, 10, 1),
                "bidding_zone": "DE-LU",
                "country": "de",
                "mean_price_eur_per_mwh": 80.0,
                "min_price_eur_per_mwh": 10.0,
                "max_price_eur_per_mwh": 150.0,
                "price_interval_count": 96,
                "negative_price_interval_count": 0,
                "wind_onshore_mwh": 300_000.0,
                "wind_offshore_mwh": 50_000.0,
                "correlation_point_count": 96,
                "price_wind_correlation": -0.61,
            }
        ],
        schema=DAILY_PRICE_ANALYSIS.arrow_schema,
    )
    inputs = empty_inputs()
    html = render_report(
        ReportInputs(analysis, *[getattr(inputs, name) for name in list(inputs.__dataclass_fields__)[1:]]),
        generated_at=GENERATED,
    )
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 1 and len(images[0]) > 1000
    assert "-0.61 to -0.61" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
