"""File-source assets: the raw files, the source's table (one file per run) and its declared marts.

Keep dataset logic out of this module: the steps of one file (ledger, read, quarantine, pseudonymize,
publish, move to `processed/`) are `energy_assets.sources.files.ingest.ingest_file`; this module wires it
into the table-asset factory (`energy_assets.defs.factories`), which audits, publishes and reports, and
builds each declared mart with `mart_asset` (DuckDB SQL over the published table).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.defs.factories import (
    AssetOutput,
    MartOutput,
    Publish,
    TableDeclaration,
    TableOutput,
    mart_asset,
    table_asset,
    table_check_specs,
)
from energy_assets.defs.file_source.resources import FileSourceResource
from energy_assets.defs.publishing import table_asset_key
from energy_assets.errors import ConfigurationError
from energy_assets.sources.files.declaration import FileSourceDeclaration, MartDeclaration
from energy_assets.sources.files.ingest import ingest_file
from energy_assets.sources.files.rules import declared_rules
from energy_assets.warehouse.publish import Candidate, read_published
from energy_assets.warehouse.table_spec import ColumnSpec, TableSpec

MARTS_SCHEMA = "marts"
# The run config of one file: where it is and the content hash the sensor saw.
INGEST_CONFIG = {"path": str, "sha256": str}


def resource_key(declaration: FileSourceDeclaration) -> str:
    return f"{declaration.name}_files"


def raw_key(declaration: FileSourceDeclaration) -> dg.AssetKey:
    return dg.AssetKey(["raw", declaration.name, "files"])


def records_declaration(declaration: FileSourceDeclaration) -> TableDeclaration:
    spec = declaration.table_spec()
    sensitive = declaration.sensitive_columns
    return TableDeclaration(
        spec,
        f"{declaration.description or 'Rows of the ' + declaration.name + ' files.'} One inbox file per run, merged on"
        f" ({', '.join(declaration.key)}); a later file revising rows updates them and keeps the superseded values"
        f" ({spec.qualified_name}__history)."
        + (f" Sensitive columns ({', '.join(sensitive)}) hold keyed pseudonyms only." if sensitive else "")
        + f" PostgreSQL {spec.qualified_name}.",
        rules=declared_rules(declaration),
        shrink=False,
    )


def records_asset(declaration: FileSourceDeclaration) -> dg.AssetsDefinition:
    table = records_declaration(declaration)
    key = resource_key(declaration)

    def ingest(context: dg.AssetExecutionContext, publish: Publish) -> AssetOutput | dg.MaterializeResult:
        config = context.op_execution_context.op_config
        source: FileSourceResource = getattr(context.resources, key)
        ingested = ingest_file(
            Path(config["path"]),
            config["sha256"],
            declaration=declaration,
            settings=context.resources.postgres.settings(),
            layout=source.layout(),
            protector=source.protector(),
            publish=publish,
            log=context.log.info,
        )
        if ingested.request is None or ingested.result is None:
            return _nothing_published(table, ingested.status)
        inserted, updated, unchanged = ingested.counts
        figures = {
            "file": Path(config["path"]).name,
            "sha256": config["sha256"],
            "file_rows": ingested.rows,
            "inserted": inserted,
            "updated": updated,
            "unchanged": unchanged,
            "discarded_columns": ", ".join(ingested.discarded_columns) or "none",
            "missing_columns": ", ".join(ingested.missing_columns) or "none",
            "moved_to": dg.MetadataValue.path(str(ingested.moved_to or "")),
        }
        raw = {
            raw_key(declaration): {
                "file": Path(config["path"]).name,
                "sha256": config["sha256"],
                "processed_folder": dg.MetadataValue.path(str(source.layout().processed)),
            }
        }
        return AssetOutput(
            [TableOutput(ingested.request, ingested.result, preview=ingested.preview, figures=figures)],
            raw=raw,
        )

    return table_asset(
        name=f"{declaration.name}__records",
        tables=[table],
        compute=ingest,
        group_name=declaration.name,
        raw=[
            dg.AssetSpec(
                raw_key(declaration),
                description=f"The {declaration.name} files loaded from the inbox, kept in its processed/ folder.",
                kinds={"csv"},
            )
        ],
        resource_keys=[key],
        config_schema=INGEST_CONFIG,
    )


def _nothing_published(table: TableDeclaration, status: str) -> dg.MaterializeResult:
    """A run that found its content already handled: no rows written, so no audit ran in this run."""
    checks = [
        dg.AssetCheckResult(
            asset_key=table.key,
            check_name=spec.name,
            passed=True,
            description=f"Nothing published by this run: the file's content was {status} (audited then).",
            metadata={"rows_audited": 0},
        )
        for spec in table_check_specs([table])
    ]
    return dg.MaterializeResult(
        asset_key=table.key, metadata={"file_status": status, "file_rows": 0}, check_results=checks
    )


def _duckdb(records: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.sql("SET threads = 2")
    con.sql("SET TimeZone = 'UTC'")
    con.register("records", records)
    return con


def _plain_type(arrow_type: pa.DataType) -> pa.DataType:
    """DuckDB's result types as the warehouse stores them (sums of integers come back as decimals)."""
    if pa.types.is_decimal(arrow_type):
        return pa.int64() if arrow_type.scale == 0 else pa.float64()
    if pa.types.is_timestamp(arrow_type):
        return pa.timestamp("us", tz="UTC" if arrow_type.tz else None)
    if pa.types.is_large_string(arrow_type):
        return pa.string()
    if pa.types.is_integer(arrow_type):
        return pa.int64()
    if pa.types.is_floating(arrow_type):
        return pa.float64()
    return arrow_type


def mart_spec(declaration: FileSourceDeclaration, mart: MartDeclaration) -> TableSpec:
    """The mart's table, its columns read from the SQL's result over an empty `records`."""
    records = declaration.table_spec()
    con = _duckdb(records.empty())
    try:
        schema = con.sql(mart.sql).limit(0).to_arrow_table().schema
    except duckdb.Error as error:
        raise ConfigurationError(
            f"marts.{mart.name}: the SQL does not run over `records`: {str(error).splitlines()[0]}"
        ) from None
    finally:
        con.close()
    missing = [name for name in mart.key if name not in schema.names]
    if missing:
        raise ConfigurationError(
            f"marts.{mart.name}: key column(s) {', '.join(missing)} are not in the SQL's result ({', '.join(schema.names)})."
        )
    return TableSpec(
        schema=MARTS_SCHEMA,
        name=mart.name,
        description=mart.description or f"{mart.name} computed from {records.qualified_name}.",
        columns=tuple(
            ColumnSpec(
                f.name,
                _plain_type(f.type),
                f"{f.name} (from {records.qualified_name})",
                nullable=f.name not in mart.key,
            )
            for f in schema
        ),
        primary_key=tuple(mart.key),
    )


def whole_range(values: pa.ChunkedArray) -> tuple[Any, Any]:
    """A half-open range `[lower, upper)` holding every value (a mart's scope in PostgreSQL and the lake)."""
    bounds = pc.min_max(values)
    lower, upper = bounds["min"].as_py(), bounds["max"].as_py()
    if isinstance(upper, str):
        return lower, upper + "\U0010ffff"
    if isinstance(upper, datetime):
        return lower, upper + timedelta(microseconds=1)
    if isinstance(upper, date):
        return lower, upper + timedelta(days=1)
    if isinstance(upper, float):
        return lower, math.nextafter(upper, math.inf)
    return lower, upper + 1


def mart_assets(declaration: FileSourceDeclaration) -> list[dg.AssetsDefinition]:
    records = declaration.table_spec()
    assets = []
    for mart in declaration.marts:
        spec = mart_spec(declaration, mart)

        def compute(
            context: dg.AssetExecutionContext, spec: TableSpec = spec, mart: MartDeclaration = mart
        ) -> MartOutput:
            store = context.resources.lake.store()
            rows = read_published(store, records, store.list_partitions(records.qualified_name))
            con = _duckdb(rows)
            try:
                table = spec.conform(
                    con.sql(mart.sql)
                    .to_arrow_table()
                    .cast(pa.schema([pa.field(f.name, f.type) for f in spec.arrow_schema]), safe=False)
                )
            finally:
                con.close()
            # The recomputed mart is the truth for the range of its first key column it covers.
            first = spec.primary_key[0]
            scope = {first: whole_range(table.column(first))}
            candidates = [Candidate({"part": "all"}, scope, table)] if table.num_rows else []
            return MartOutput(table, candidates, {"rows": table.num_rows})

        assets.append(
            mart_asset(
                spec=spec,
                deps=[table_asset_key(records)],
                compute=compute,
                description=mart.description
                or f"Declared mart over {records.qualified_name}: marts.{mart.name}.",
            )
        )
    return assets
