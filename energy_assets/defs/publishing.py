"""The Dagster side of the publish path, shared by every source: checks, metadata, failures.

Keep data logic out of this module: auditing and publishing live in `energy_assets.warehouse.publish`
(no Dagster). This module only turns what a publish did into what the UI shows:

- `audit_check_specs`: one blocking asset check per audit rule family (`unique_key`, `finite`, `bounds`,
  `no_shrinking_partition`, a source's own rules) plus `lake_matches_postgres`, from the table's spec;
- `audit_check_results` / `comparison_check_result`: their evaluations, with numeric metadata (rows
  audited, offending rows, rows compared) so the check plots have something to draw;
- `publish_metadata`: row count, column schema, table name, lake path, a representative preview, and
  new/changed/unchanged partitions with inserted/updated/unchanged/deleted rows;
- `refusal_failure`: the step failure of a refused audit (the table-asset factory records the failed checks,
  naming partition, rule and first offending rows, before raising it, so nothing downstream runs);
- `ALLOW_SHRINK_TAG`: the documented run tag that accepts a partition smaller than its published version
  (fewer rows, series or non-NULL values).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa

from energy_assets.defs.resources import LakeResource, PostgresResource
from energy_assets.defs.schemas import table_schema_from_inferred
from energy_assets.warehouse.audit import AuditFailedError, AuditReport, AuditRule, spec_rules
from energy_assets.warehouse.lake_comparison import LakeComparison, compare_lake_with_postgres
from energy_assets.warehouse.parquet_store import SCHEMA_FILE
from energy_assets.warehouse.publish import SHRINK_RULE, Publisher, PublishRequest, PublishResult
from energy_assets.warehouse.table_spec import TableSpec

ALLOW_SHRINK_TAG = "energy_assets/allow_shrink"
LAKE_MATCHES_POSTGRES = "lake_matches_postgres"
PREVIEW_ROWS = 12
# Runs over more partitions than this keep their per-partition events small (see publish_metadata).
LONG_RANGE_PARTITIONS = 31

_FAMILY_DESCRIPTIONS = {
    "unique_key": "No two rows share the table's key in the candidate partitions.",
    "not_null": "Key and required columns are never NULL.",
    "finite": "Every number is finite (no NaN or infinity).",
    "bounds": "Every value lies within the column's physical or market bounds.",
    SHRINK_RULE: (
        "A re-fetched partition has at least the rows and series of its published version, and no published"
        " value is replaced by a missing one (per series and column, no fewer non-NULL values); run with the"
        f" tag {ALLOW_SHRINK_TAG}=true to accept a smaller partition or fewer values."
    ),
    LAKE_MATCHES_POSTGRES: (
        "The lake partitions and PostgreSQL hold the same content: row counts and, per column, non-NULL"
        " counts and sums (or lengths and min/max)."
    ),
}


def table_asset_key(spec: TableSpec) -> dg.AssetKey:
    """`energy_charts/public_power`: a table's asset key mirrors its PostgreSQL schema and name."""
    return dg.AssetKey([spec.schema, spec.name])


def check_family(rule_name: str) -> str:
    """`finite:value_mw` -> `finite`: one asset check per family of rules."""
    return rule_name.split(":", 1)[0]


def make_publisher(lake: LakeResource, postgres: PostgresResource) -> Publisher:
    return Publisher(postgres.settings(), lake.store(), lake.rejected_dir())


def allow_shrink(context: dg.OpExecutionContext) -> bool:
    """Whether the run accepts partitions smaller than their published versions (tag ALLOW_SHRINK_TAG)."""
    return context.run.tags.get(ALLOW_SHRINK_TAG, "").strip().lower() in ("1", "true", "yes")


def audit_check_specs(
    asset_key: dg.AssetKey,
    spec: TableSpec,
    rules: Sequence[AuditRule] = (),
    *,
    shrink: bool = True,
    warnings: Mapping[str, str] | None = None,
) -> list[dg.AssetCheckSpec]:
    """The asset's checks: blocking ones per audit rule family and the lake/PostgreSQL comparison."""
    families: dict[str, str] = {}
    for rule in [*spec_rules(spec), *rules]:
        family = check_family(rule.name)
        families.setdefault(family, _FAMILY_DESCRIPTIONS.get(family, rule.description))
    if shrink:
        families[SHRINK_RULE] = _FAMILY_DESCRIPTIONS[SHRINK_RULE]
    families[LAKE_MATCHES_POSTGRES] = _FAMILY_DESCRIPTIONS[LAKE_MATCHES_POSTGRES]
    specs = [
        dg.AssetCheckSpec(name=name, asset=asset_key, description=description, blocking=True)
        for name, description in families.items()
    ]
    specs += [
        dg.AssetCheckSpec(name=name, asset=asset_key, description=description, blocking=False)
        for name, description in (warnings or {}).items()
    ]
    return specs


def audit_check_results(
    asset_key: dg.AssetKey, report: AuditReport, check_specs: Sequence[dg.AssetCheckSpec]
) -> list[dg.AssetCheckResult]:
    """One result per blocking audit check of the asset, from the audit's rule outcomes."""
    names = [spec.name for spec in check_specs if spec.asset_key == asset_key and spec.blocking]
    results = []
    for name in names:
        if name == LAKE_MATCHES_POSTGRES:
            continue
        outcomes = [o for o in report.outcomes if check_family(o.rule) == name]
        failed = [o for o in outcomes if not o.passed]
        description = (
            "; ".join(o.summary(report.table) for o in failed)
            if failed
            else f"{len(outcomes)} rule(s) passed on {report.rows} rows in {len(report.partitions)} partition(s)"
        )
        results.append(
            dg.AssetCheckResult(
                asset_key=asset_key,
                check_name=name,
                passed=not failed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=description[:2000],
                metadata={
                    "rows_audited": report.rows,
                    "partitions_audited": len(report.partitions),
                    "offending_rows": sum(o.offending_rows for o in failed),
                    "failed_partitions": dg.MetadataValue.json(
                        sorted({p for o in failed for p in o.partitions})
                    ),
                    "first_offending_rows": dg.MetadataValue.json(
                        {o.rule: o.sample for o in failed} if failed else {}
                    ),
                    "rules": dg.MetadataValue.json({o.rule: o.description for o in outcomes}),
                },
            )
        )
    return results


def comparison_check_result(asset_key: dg.AssetKey, comparison: LakeComparison) -> dg.AssetCheckResult:
    lake_rows = sum(part.lake_rows for part in comparison.partitions)
    postgres_rows = sum(part.postgres_rows for part in comparison.partitions)
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=LAKE_MATCHES_POSTGRES,
        passed=comparison.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=comparison.summary(),
        metadata={
            "rows_compared": lake_rows,
            "lake_rows": lake_rows,
            "postgres_rows": postgres_rows,
            "differing_partitions": sum(1 for part in comparison.partitions if not part.passed),
            "differing_columns": dg.MetadataValue.json(
                sorted({name for part in comparison.partitions for name in part.differing_columns})
            ),
            "postgres_only_rows": comparison.postgres_only_rows,
            "partitions_compared": len(comparison.partitions),
        },
    )


def table_preview(table: pa.Table, limit: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A representative sample for the UI: rows spread evenly over the table, not its first rows."""
    if table.num_rows > limit:
        step = table.num_rows / limit
        table = table.take([int(i * step) for i in range(limit)])
    columns = [dg.TableColumn(field.name, str(field.type)) for field in table.schema]
    records = [dg.TableRecord({k: _preview_value(v) for k, v in row.items()}) for row in table.to_pylist()]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def _preview_value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def publish_metadata(result: PublishResult, preview: pa.Table | None = None) -> dict[str, Any]:
    """What a materialization shows: rows, schema, where the data went, a preview and what changed.

    A single-run backfill records this metadata once per partition (Dagster copies it into every
    partition's event), so for long ranges the bulky parts (column statistics, the preview) are left to
    the asset's definition and to shorter runs: they would be stored hundreds of times.
    """
    spec = result.spec
    load = result.load
    long_range = len(result.partitions) > LONG_RANGE_PARTITIONS
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows,
        "dagster/table_name": spec.qualified_name,
        "dagster/uri": dg.MetadataValue.path(result.lake_path),
        "inferred_schema": dg.MetadataValue.path(f"{result.lake_path}/{SCHEMA_FILE}"),
        "partitions_new": result.count("new"),
        "partitions_changed": result.count("changed"),
        "partitions_unchanged": result.count("unchanged"),
        "inserted": load.inserted if load else 0,
        "updated": load.updated if load else 0,
        "unchanged": load.unchanged if load else result.rows,
        "deleted": load.deleted if load else 0,
        "publish_seconds": dg.MetadataValue.json({k: round(v, 3) for k, v in result.timings.items()}),
    }
    if load is not None:
        metadata["load_id"] = str(load.load_id)
        metadata["merge_strategy"] = load.strategy
    if result.repaired:
        metadata["repaired_partitions"] = dg.MetadataValue.json(result.repaired)
    if not long_range:
        metadata["dagster/column_schema"] = table_schema_from_inferred(result.schema, spec.descriptions())
        if preview is not None and preview.num_rows:
            metadata["preview"] = table_preview(preview)
    return metadata


def refusal_failure(refused: AuditFailedError) -> dg.Failure:
    """The step failure of a refused audit: not retried (the same data would be refused again); a refused
    shrink says which tag accepts it."""
    shrunk = any(
        check_family(outcome.rule) == SHRINK_RULE for report in refused.reports for outcome in report.failures
    )
    advice = (
        f" If the smaller partition or the missing values are right, re-run with the tag {ALLOW_SHRINK_TAG}=true."
        if shrunk
        else ""
    )
    return dg.Failure(
        description=str(refused) + advice,
        allow_retries=False,
        metadata={
            "rejected_candidates": dg.MetadataValue.json(refused.rejected),
            "failed_partitions": dg.MetadataValue.json(
                sorted({p for report in refused.reports for p in report.failed_partitions()})
            ),
        },
    )


def per_partition_figures(figures: Mapping[str, Any], partitions_in_run: int) -> dict[str, Any]:
    """`figures` for a one-partition run; for a range, the non-numeric ones and the range's size."""
    if partitions_in_run <= 1:
        return dict(figures)
    kept = {name: value for name, value in figures.items() if not isinstance(value, int | float)}
    return kept | {"partitions_in_run": partitions_in_run}


def published_result(
    key: dg.AssetKey,
    request: PublishRequest,
    result: PublishResult,
    check_specs: Sequence[dg.AssetCheckSpec],
    *,
    lake: LakeResource,
    postgres: PostgresResource,
    preview: pa.Table | None = None,
    metadata: Mapping[str, Any] | None = None,
    extra_checks: Sequence[dg.AssetCheckResult] = (),
    partitions_in_run: int = 1,
) -> dg.MaterializeResult:
    """The materialization of a published table: its metadata, the audit's checks and the lake/PostgreSQL
    comparison of the partitions just published (one query, one DuckDB join).

    Dagster records a run's one result on every partition of a range, so a range's numeric figures
    would be plotted as each partition's: runs of several partitions keep only the non-numeric ones.
    """
    comparison = compare_lake_with_postgres(
        postgres.settings(), lake.store(), request.spec, [(c.partition, c.scope) for c in request.candidates]
    )
    return dg.MaterializeResult(
        asset_key=key,
        metadata=publish_metadata(result, preview) | per_partition_figures(metadata or {}, partitions_in_run),
        check_results=[
            *audit_check_results(key, result.audit, check_specs),
            comparison_check_result(key, comparison),
            *extra_checks,
        ],
    )
