"""The platform report: one static HTML file with charts of every source's marts. No Dagster here.

The file opens without a server and without internet: charts are matplotlib PNGs embedded as data URIs,
styles are inline, nothing is fetched from a CDN. Sections: daily day-ahead price against wind energy,
the production mix by day, building consumption and energy use intensity, and meter consumption with
the share of actual versus estimated reads. A section whose inputs are empty says so in words instead of
drawing empty axes. Rendering is deterministic for the same inputs (fixed figure size, no timestamps in
the images), so an unchanged report is byte-identical apart from its generation line.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import pyarrow as pa
import pyarrow.compute as pc

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1d2733; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #d0d7de; }
p.empty { color: #8a4b00; background: #fff4e5; padding: .6rem .8rem; border-radius: 4px; }
img { max-width: 100%; } table { border-collapse: collapse; font-size: .9rem; }
td, th { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: right; } th { background: #f6f8fa; }
"""


@dataclass(frozen=True)
class ReportInputs:
    """The marts the report draws (any may be empty)."""

    daily_price_analysis: pa.Table
    daily_production_trend: pa.Table
    building_daily_consumption: pa.Table
    building_energy_use_intensity: pa.Table
    nmi_daily_consumption: pa.Table


@dataclass(frozen=True)
class Section:
    title: str
    image_png: bytes | None
    note: str


def render_report(inputs: ReportInputs, *, generated_at: datetime) -> str:
    """The whole report as one self-contained HTML document."""
    sections = [
        price_versus_wind(inputs.daily_price_analysis),
        production_mix(inputs.daily_production_trend),
        building_consumption(inputs.building_daily_consumption, inputs.building_energy_use_intensity),
        meter_consumption(inputs.nmi_daily_consumption),
    ]
    body = []
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.image_png is None:
            body.append(f'<p class="empty">{html.escape(section.note)}</p>')
        else:
            encoded = base64.b64encode(section.image_png).decode("ascii")
            body.append(
                f'<p>{html.escape(section.note)}</p><img alt="{html.escape(section.title)}" src="data:image/png;base64,{encoded}">'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>energy_assets report</title>'
        f"<style>{_STYLE}</style></head><body><h1>energy_assets report</h1>"
        f"<p>Generated {html.escape(generated_at.isoformat(timespec='seconds'))} from the published marts.</p>"
        + "".join(body)
        + "</body></html>\n"
    )


def price_versus_wind(analysis: pa.Table) -> Section:
    title = "Day-ahead price and wind energy per day"
    if analysis.num_rows == 0:
        return Section(
            title, None, "No day-ahead price analysis published yet: materialize marts/daily_price_analysis."
        )
    rows = analysis.sort_by([("local_date", "ascending"), ("bidding_zone", "ascending")]).to_pylist()
    labels = [f"{row['local_date']}\n{row['bidding_zone']}" for row in rows]
    fig, price_axis = plt.subplots(figsize=(10, 4), dpi=100)
    positions = range(len(rows))
    wind = [((row["wind_onshore_mwh"] or 0) + (row["wind_offshore_mwh"] or 0)) / 1000 for row in rows]
    price_axis.bar(positions, wind, color="#8fb8de", label="wind energy, GWh")
    price_axis.set_ylabel("wind energy, GWh")
    line_axis = price_axis.twinx()
    line_axis.plot(
        positions,
        [row["mean_price_eur_per_mwh"] for row in rows],
        color="#c0392b",
        marker="o",
        label="mean price",
    )
    line_axis.set_ylabel("mean price, EUR/MWh")
    price_axis.set_xticks(list(positions), labels, fontsize=8)
    fig.legend(loc="upper right")
    correlations = [
        row["price_wind_correlation"] for row in rows if row["price_wind_correlation"] is not None
    ]
    note = (
        f"{len(rows)} day(s); Pearson correlation of price and wind power within a day ranges from"
        f" {min(correlations):.2f} to {max(correlations):.2f}."
        if correlations
        else f"{len(rows)} day(s)."
    )
    return Section(title, _png(fig), note)


def production_mix(trend: pa.Table) -> Section:
    title = "Production mix by day (generation, MWh)"
    generation = trend.filter(trend.column("is_generation")) if trend.num_rows else trend
    if generation.num_rows == 0:
        return Section(
            title, None, "No production trend published yet: materialize marts/daily_production_trend."
        )
    days = sorted(set(generation.column("local_date").to_pylist()))
    totals: dict[str, float] = {}
    for row in generation.to_pylist():
        totals[row["production_type"]] = totals.get(row["production_type"], 0.0) + (row["energy_mwh"] or 0.0)
    top = sorted(totals, key=lambda name: (-totals[name], name))[:8]
    fig, axis = plt.subplots(figsize=(10, 4), dpi=100)
    bottom = [0.0] * len(days)
    for name in [*top, "other"]:
        values = []
        for day in days:
            rows = generation.filter(pc.equal(generation.column("local_date"), pa.scalar(day, pa.date32())))
            if name == "other":
                mask = pc.invert(pc.is_in(rows.column("production_type"), pa.array(top)))
            else:
                mask = pc.equal(rows.column("production_type"), name)
            values.append(float(pc.sum(rows.filter(mask).column("energy_mwh")).as_py() or 0.0))
        axis.bar([str(day) for day in days], values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_ylabel("MWh")
    axis.legend(fontsize=7, ncol=3)
    share = pc.mean(trend.column("renewable_share_of_generation_percent")).as_py()
    return Section(
        title, _png(fig), f"{len(days)} day(s); mean renewable share of generation {share or 0:.1f} %."
    )


def building_consumption(daily: pa.Table, intensity: pa.Table) -> Section:
    title = "Building electricity per day and energy use intensity"
    electricity = daily.filter(pc.equal(daily.column("meter"), "electricity")) if daily.num_rows else daily
    if electricity.num_rows == 0 and intensity.num_rows == 0:
        return Section(
            title, None, "No building marts published yet: materialize the buildings group and its marts."
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    if electricity.num_rows:
        grouped = electricity.group_by("date").aggregate([("consumption", "sum")]).sort_by("date")
        left.plot(
            [str(d) for d in grouped.column("date").to_pylist()],
            grouped.column("consumption_sum").to_pylist(),
            marker=".",
        )
        left.set_title("all buildings, kWh per day", fontsize=9)
        left.tick_params(axis="x", labelrotation=60, labelsize=6)
    else:
        left.text(0.5, 0.5, "no electricity readings", ha="center")
    with_eui = (
        intensity.filter(pc.is_valid(intensity.column("eui_kwh_per_m2"))) if intensity.num_rows else intensity
    )
    if with_eui.num_rows:
        ordered = with_eui.sort_by([("eui_kwh_per_m2", "descending"), ("building_id", "ascending")]).slice(
            0, 12
        )
        names = [f"{row['building_id']} {row['year']}" for row in ordered.to_pylist()]
        right.barh(names, ordered.column("eui_kwh_per_m2").to_pylist(), color="#6c8e3f")
        right.set_title("energy use intensity, kWh/m²", fontsize=9)
        right.tick_params(axis="y", labelsize=6)
    else:
        right.text(0.5, 0.5, "no floor areas for EUI", ha="center")
    fig.tight_layout()
    buildings = len(set(daily.column("building_id").to_pylist())) if daily.num_rows else 0
    return Section(
        title,
        _png(fig),
        f"{buildings} building(s); EUI counts electricity, chilled water, steam, hot water and gas.",
    )


def meter_consumption(nmi_daily: pa.Table) -> Section:
    title = "Meter consumption per day with the share of actual reads"
    energy = nmi_daily.filter(pc.equal(nmi_daily.column("uom"), "kWh")) if nmi_daily.num_rows else nmi_daily
    if energy.num_rows == 0:
        return Section(title, None, "No NEM12 meter data published yet: drop NEM12 files into the inbox.")
    grouped = (
        energy.group_by("local_date")
        .aggregate([("consumption", "sum"), ("actual_share", "mean")])
        .sort_by("local_date")
    )
    days = [str(day) for day in grouped.column("local_date").to_pylist()]
    fig, axis = plt.subplots(figsize=(10, 4), dpi=100)
    axis.bar(days, grouped.column("consumption_sum").to_pylist(), color="#5d6d7e", label="kWh")
    axis.set_ylabel("kWh per day (all NMIs)")
    share_axis = axis.twinx()
    share_axis.plot(
        days,
        [100 * (v or 0) for v in grouped.column("actual_share_mean").to_pylist()],
        color="#d35400",
        marker="o",
    )
    share_axis.set_ylabel("actual reads, %")
    share_axis.set_ylim(0, 105)
    axis.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    estimated = pc.mean(energy.column("estimated_or_substituted_share")).as_py() or 0.0
    nmis = len(set(energy.column("nmi").to_pylist()))
    return Section(
        title,
        _png(fig),
        f"{nmis} NMI(s); on average {100 * estimated:.1f} % of intervals estimated or substituted.",
    )


def _png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
