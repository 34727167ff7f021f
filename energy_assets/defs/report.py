"""The platform report asset: one static HTML file over the marts of all three sources.

Keep rendering out of this module (`energy_assets.reports.html_report`); this module reads the published
marts from the lake, writes the file atomically and reports its path. It follows its inputs by declarative
automation: whenever a mart it reads is updated (and that mart's blocking checks passed), it is redrawn.
"""

from datetime import datetime, timezone

import dagster as dg

from energy_assets.defs.resources import LakeResource
from energy_assets.files import write_atomic
from energy_assets.reports.html_report import ReportInputs, render_report
from energy_assets.sources.buildings.tables import BUILDING_DAILY_CONSUMPTION, BUILDING_ENERGY_USE_INTENSITY
from energy_assets.sources.energy_charts.tables import DAILY_PRICE_ANALYSIS, DAILY_PRODUCTION_TREND
from energy_assets.sources.meters.tables import NMI_DAILY_CONSUMPTION
from energy_assets.warehouse.publish import read_published
from energy_assets.warehouse.table_spec import TableSpec

REPORT_KEY = dg.AssetKey(["reports", "platform_report"])
_INPUTS = (
    DAILY_PRICE_ANALYSIS,
    DAILY_PRODUCTION_TREND,
    BUILDING_DAILY_CONSUMPTION,
    BUILDING_ENERGY_USE_INTENSITY,
    NMI_DAILY_CONSUMPTION,
)


def _published(lake: LakeResource, spec: TableSpec):  # -> pa.Table
    store = lake.store()
    return read_published(store, spec, store.list_partitions(spec.qualified_name))


@dg.asset(
    key=REPORT_KEY,
    deps=[dg.AssetKey([spec.schema, spec.name]) for spec in _INPUTS],
    group_name="marts",
    kinds={"python", "html"},
    automation_condition=dg.AutomationCondition.any_deps_updated()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description=(
        "A static HTML report (opens offline, no scripts): daily price against wind energy, the production mix by"
        " day, building electricity and energy use intensity, and meter consumption with the share of actual"
        " reads. Redrawn whenever one of its marts is updated. Path: <data home>/reports/platform_report.html."
    ),
)
def platform_report(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    tables = {spec.name: _published(lake, spec) for spec in _INPUTS}
    html = render_report(ReportInputs(**tables), generated_at=datetime.now(timezone.utc))
    path = lake.rejected_dir().parent / "reports" / "platform_report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, html.encode("utf-8"))
    empty = sorted(name for name, table in tables.items() if table.num_rows == 0)
    if empty:
        context.log.info(f"Report sections without data: {', '.join(empty)}")
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": dg.MetadataValue.path(str(path)),
            "report": dg.MetadataValue.url(path.as_uri()),
            "bytes": len(html.encode("utf-8")),
            "empty_inputs": dg.MetadataValue.json(empty),
            **{f"{name}_rows": table.num_rows for name, table in tables.items()},
        }
    )
