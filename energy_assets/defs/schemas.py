"""Rendering an `InferredSchema` (the warehouse's schema artefact) as a Dagster `TableSchema`.

Keep inference itself in `energy_assets.warehouse.schema_inference`; this module only translates it
for the UI: PostgreSQL types, nullability, the primary key, and per-column statistics.
"""

from collections.abc import Mapping

import dagster as dg

from energy_assets.warehouse.schema_inference import InferredColumn, InferredSchema


def _stats_text(column: InferredColumn) -> str:
    stats = column.stats
    parts = [f"null {stats.null_fraction:.1%}"]
    if stats.min is not None or stats.max is not None:
        parts.append(f"range {stats.min} .. {stats.max}")
    if stats.distinct_estimate is not None:
        parts.append(f"~{stats.distinct_estimate:,} distinct")
    return "; ".join(parts)


def table_schema_from_inferred(
    schema: InferredSchema, descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    """A Dagster column schema typed as in PostgreSQL, with key constraints and statistics."""
    descriptions = descriptions or {}
    key = list(schema.primary_key)
    columns = []
    for column in schema.columns:
        text = " — ".join(part for part in (descriptions.get(column.name, ""), _stats_text(column)) if part)
        columns.append(
            dg.TableColumn(
                name=column.name,
                type=column.pg_type,
                description=text or None,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=key == [column.name],
                    other=["primary key"] if column.name in key else [],
                ),
            )
        )
    constraints = dg.TableConstraints(other=[f"primary key ({', '.join(key)})"]) if key else None
    return dg.TableSchema(columns=columns, constraints=constraints)
