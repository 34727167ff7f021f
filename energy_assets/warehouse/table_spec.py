"""`TableSpec`: the one description of a warehouse table, shared by every source.

A column is described once (name, Arrow type, unit, meaning, NULL allowed, physical or market bounds) and
that description drives everything downstream: the Arrow schema normalizers build, the PostgreSQL types
and key (`inferred_schema`, hence the DDL), the Dagster column schema, and the default audit rules of
the publish path (finite numbers, bounds, unique key). Sources declare their tables in their own
`tables.py` with these classes; nothing here knows about a particular source. No Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from energy_assets.warehouse.pg_types import pg_type_for_arrow
from energy_assets.warehouse.schema_inference import ColumnStats, InferredColumn, InferredSchema

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: name, Arrow type, meaning (with unit), whether NULL is allowed, and value bounds.

    `minimum`/`maximum` are inclusive bounds a value must satisfy to be published (physical or market
    limits, e.g. -600..4000 EUR/MWh for day-ahead prices); float columns must also be finite (no
    NaN or infinity) unless `allow_non_finite` is set.
    """

    name: str
    arrow_type: pa.DataType
    description: str
    nullable: bool = True
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    allow_non_finite: bool = False

    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)

    @property
    def is_float(self) -> bool:
        return pa.types.is_floating(self.arrow_type)


@dataclass(frozen=True)
class TableSpec:
    """A table in the warehouse: `schema.name`, its columns and the key a merge matches on."""

    schema: str
    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    # Columns that identify a series inside a partition (e.g. country + production_type); the audit's
    # "no shrinking partition" rule counts rows and distinct series over these.
    series_columns: tuple[str, ...] = field(default=())
    # A table whose first load is large (millions of rows): the merge that creates it builds the key after
    # the COPY (see `WarehouseLoader.merge`, `key_after_initial_copy`).
    key_after_initial_copy: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([column.field() for column in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.qualified_name} has no column {name!r}")

    def value_columns(self) -> list[str]:
        """Columns outside the key: the ones a merge compares and updates."""
        return [name for name in self.column_names if name not in self.primary_key]

    def descriptions(self) -> dict[str, str]:
        return {column.name: column.description for column in self.columns if column.description}

    def empty(self) -> pa.Table:
        return self.arrow_schema.empty_table()

    def conform(self, table: pa.Table) -> pa.Table:
        """Select and cast `table`'s columns to this spec (raises if a column is missing)."""
        return table.select(self.column_names).cast(self.arrow_schema)

    def inferred_schema(self) -> InferredSchema:
        """The PostgreSQL table of this spec: types, NOT NULL columns and key (no inference from data)."""
        return InferredSchema(
            columns=[
                InferredColumn(
                    name=column.name,
                    arrow_type=str(column.arrow_type),
                    pg_type=str(pg_type_for_arrow(column.arrow_type)),
                    nullable=column.nullable,
                    stats=ColumnStats(null_fraction=0.0),
                )
                for column in self.columns
            ],
            primary_key=list(self.primary_key),
            primary_key_origin="declared",
            source=self.qualified_name,
        )


def column(
    name: str,
    arrow_type: pa.DataType,
    description: str,
    nullable: bool = True,
    *,
    unit: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> ColumnSpec:
    """Shorthand for declaring a `ColumnSpec` in a source's `tables.py`."""
    return ColumnSpec(name, arrow_type, description, nullable, unit=unit, minimum=minimum, maximum=maximum)
