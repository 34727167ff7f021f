"""Asset factories shared by every source: a mart is a declaration, not a copy of another mart's code.

Keep data logic out of this module: a mart's rows come from a `compute` function the source supplies
(usually a DuckDB query in `energy_assets.sources.<source>.aggregates`); this module wires it to the
publish path (audit, lake and PostgreSQL in step), the checks and the metadata.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa

from energy_assets.defs.policy import POSTGRES_POOL
from energy_assets.defs.publishing import (
    audit_check_specs,
    make_publisher,
    publish_or_fail,
    published_result,
    table_asset_key,
)
from energy_assets.warehouse.publish import Candidate, PublishRequest, exclusive
from energy_assets.warehouse.table_spec import TableSpec

MARTS_GROUP = "marts"


@dataclass
class MartOutput:
    """What a mart's compute function returns: all rows, split into lake partitions, plus key figures."""

    table: pa.Table
    candidates: list[Candidate]
    metadata: dict[str, Any] = field(default_factory=dict)


MartCompute = Callable[[dg.AssetExecutionContext], MartOutput]


def static_metadata(spec: TableSpec) -> dict[str, Any]:
    """Metadata known before any data: the table's name and its column schema as in PostgreSQL."""
    from energy_assets.defs.schemas import table_schema_from_inferred

    return {
        "dagster/column_schema": table_schema_from_inferred(spec.inferred_schema(), spec.descriptions()),
        "dagster/table_name": spec.qualified_name,
    }


def mart_asset(
    *,
    spec: TableSpec,
    deps: Sequence[dg.AssetKey],
    description: str,
    compute: MartCompute,
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_keys: Sequence[str] = (),
    config_schema: Mapping[str, Any] | None = None,
    kinds: frozenset[str] = frozenset({"python", "duckdb", "parquet", "postgres"}),
    group_name: str = MARTS_GROUP,
    key: dg.AssetKey | None = None,
) -> dg.AssetsDefinition:
    """A mart: compute its rows, publish them (audit first), compare lake and PostgreSQL, report.

    A recomputed mart partition may hold fewer rows than before (a series left the inputs), so marts
    are published with the shrink rule off; every other rule of the spec applies.
    """
    key = key or table_asset_key(spec)
    check_specs = audit_check_specs(key, spec, shrink=False)

    @dg.asset(
        key=key,
        deps=list(deps),
        group_name=group_name,
        kinds=set(kinds),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def is not None else None,
        metadata=static_metadata(spec),
        check_specs=check_specs,
        description=description,
        required_resource_keys={"lake", "postgres", *resource_keys},
        config_schema=config_schema,
        pool=POSTGRES_POOL,
    )
    def _mart(context: dg.AssetExecutionContext) -> Iterator[Any]:
        lake, postgres = context.resources.lake, context.resources.postgres
        # Read inputs, compute and publish under one lock: two runs of a mart queue, and an older
        # computation can never overwrite a newer one.
        with exclusive(postgres.settings(), spec.qualified_name):
            yield from _compute_and_publish(context, lake, postgres)

    def _compute_and_publish(context: dg.AssetExecutionContext, lake: Any, postgres: Any) -> Iterator[Any]:
        output = compute(context)
        publisher = make_publisher(lake, postgres)
        request = PublishRequest(spec, output.candidates, allow_shrink=True)
        results = yield from publish_or_fail(context.op_execution_context, publisher, [request], [key])
        yield published_result(
            key,
            request,
            results[0],
            check_specs,
            lake=lake,
            postgres=postgres,
            preview=output.table,
            metadata=output.metadata,
            partitions_in_run=len(context.partition_keys) if partitions_def is not None else 1,
        )

    return _mart
