"""Schema evolution under a table contract: compare incoming data with the table, decide, apply, record.

Contracts:
- `evolve`: new columns are added (nullable) and columns whose values need a wider type are widened
  (int2 -> int4 -> int8, integers/float4 -> float8, varchar/char -> text, numeric(p,s) -> wider);
  incompatible changes still fail.
- `freeze`: any needed change fails with a readable diff; nothing is loaded.
- `discard_columns`: incoming columns the table does not have are dropped; other changes fail.

A table column missing from the data is fine (NULLs), unless it is NOT NULL without a default or a
key column. Incoming values are checked against the existing type before a widening is proposed, so
int64 data whose values fit an int4 column does not widen it. Applied changes are written to
`energy_meta.schema_history` with the load's id. What does not belong here: casting values (`conform`)
and the load itself (`loader`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import psycopg
import pyarrow as pa
from psycopg import sql

from energy_assets.errors import EnergyAssetsError, SchemaContractError
from energy_assets.warehouse.catalog import TableInfo
from energy_assets.warehouse.conform import conform_column
from energy_assets.warehouse.identifiers import TableName, column, quote_for_display
from energy_assets.warehouse.inputs import LoadInput
from energy_assets.warehouse.meta import META_SCHEMA, record_schema_change
from energy_assets.warehouse.pg_types import PgType, holds, pg_type_for_arrow, widening_target


class Contract(str, Enum):
    EVOLVE = "evolve"
    FREEZE = "freeze"
    DISCARD_COLUMNS = "discard_columns"

    @classmethod
    def parse(cls, value: str | Contract) -> Contract:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(c.value for c in cls)
            raise SchemaContractError(f"Unknown schema contract {value!r}; use one of: {allowed}.") from None


@dataclass(frozen=True)
class SchemaChange:
    """One change to a table: `add_column` or `widen_column` (applied), or `discard_column` (data only)."""

    kind: str
    column: str
    old_type: str | None
    new_type: str | None

    def describe(self) -> str:
        name = quote_for_display(self.column)
        if self.kind == "add_column":
            return f"add column {name} {self.new_type}"
        if self.kind == "widen_column":
            return f"widen column {name} {self.old_type} -> {self.new_type}"
        return f"discard incoming column {name} ({self.new_type})"

    def statement(self, table: TableName) -> sql.Composed | None:
        if self.kind == "add_column":
            return sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                table.sql(), column(self.column), sql.SQL(str(self.new_type))
            )
        if self.kind == "widen_column":
            return sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                table.sql(), column(self.column), sql.SQL(str(self.new_type))
            )
        return None


@dataclass
class EvolutionPlan:
    """What a load does to the table's schema, and the column types incoming data is cast to."""

    changes: list[SchemaChange] = field(default_factory=list)
    discarded: list[SchemaChange] = field(default_factory=list)
    target_types: dict[str, PgType] = field(default_factory=dict)
    # Columns already cast to their target type while checking whether they fit.
    conformed: dict[str, pa.ChunkedArray] = field(default_factory=dict)
    # Columns assumed to fit without looking at the values (see `plan_evolution`).
    assumed: list[str] = field(default_factory=list)

    @property
    def applied(self) -> list[SchemaChange]:
        return [c for c in self.changes if c.kind in ("add_column", "widen_column")]

    def descriptions(self) -> list[str]:
        return [c.describe() for c in [*self.changes, *self.discarded]]


def _misfit(
    plan: EvolutionPlan, array: pa.ChunkedArray, pg_type: PgType, table: TableName, name: str, source: str
) -> str | None:
    """None if every value converts to `pg_type` (no widening needed; the result is kept), else why not."""
    try:
        plan.conformed[name] = conform_column(array, pg_type, table=table, source=source, column=name)
    except EnergyAssetsError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def plan_evolution(
    table: TableName,
    existing: TableInfo,
    data: pa.Table | LoadInput,
    contract: Contract | str,
    *,
    source: str,
    required: Sequence[str] = (),
    check_values: bool = True,
) -> EvolutionPlan:
    """Decide what the load needs; raises `SchemaContractError` with a diff if the contract forbids it.

    With `check_values=False` no data is read: a column whose values may or may not fit the table's
    type (int8 data for an int4 column, text for char(1)) is assumed to fit and listed in
    `plan.assumed`; the COPY checks every value anyway, and the loader plans again, with the data,
    if one does not fit.
    """
    contract = Contract.parse(contract)
    plan = EvolutionPlan()
    problems: list[str] = []
    for name in data.column_names:
        arrow_type = data.schema.field(name).type
        incoming = pg_type_for_arrow(arrow_type)
        current = existing.columns.get(name)
        if current is None:
            change = SchemaChange("add_column", name, None, str(incoming))
            if contract is Contract.EVOLVE:
                plan.changes.append(change)
                plan.target_types[name] = incoming
            elif contract is Contract.DISCARD_COLUMNS:
                plan.discarded.append(SchemaChange("discard_column", name, None, str(incoming)))
            else:
                problems.append(f"  + {quote_for_display(name)} {incoming}: not a column of the table")
            continue
        plan.target_types[name] = current.pg_type
        if holds(current.pg_type, incoming):
            continue
        if not check_values and _depends_on_values(incoming, current.pg_type):
            plan.assumed.append(name)
            continue
        misfit = _misfit(plan, data[name], current.pg_type, table, name, source)
        if misfit is None:
            continue
        wider = widening_target(current.pg_type, incoming)
        if wider is not None and contract is Contract.EVOLVE:
            plan.changes.append(SchemaChange("widen_column", name, str(current.pg_type), str(wider)))
            plan.target_types[name] = wider
        elif wider is not None:
            problems.append(
                f"  ~ {quote_for_display(name)}: table has {current.pg_type}, data needs {wider} "
                f"(a widening the {contract.value} contract does not allow): {misfit}"
            )
        elif not _castable(incoming, current.pg_type):
            problems.append(
                f"  ! {quote_for_display(name)}: table has {current.pg_type}, data has {incoming} ({arrow_type}); "
                "incompatible"
            )
    for name, col in existing.columns.items():
        if name in data.column_names:
            continue
        if name in required or name in existing.primary_key or (col.not_null and not col.has_default):
            problems.append(
                f"  - {quote_for_display(name)} {col.pg_type}: NOT NULL / key column missing from the data"
            )
    if problems:
        hint = {
            Contract.FREEZE: 'The table is frozen; change the data, or load with contract="evolve".',
            Contract.DISCARD_COLUMNS: "discard_columns only drops unknown columns; fix the data or the table.",
            Contract.EVOLVE: "These changes are not safe widenings; fix the data or migrate the table by hand.",
        }[contract]
        raise SchemaContractError(
            f"{table}: the data from {source} does not fit the table under the {contract.value!r} contract; "
            "nothing was loaded.\n" + "\n".join(problems) + "\n" + hint
        )
    return plan


def _depends_on_values(incoming: PgType, existing: PgType) -> bool:
    """Whether data of type `incoming` fits an `existing` column for some values and not for others."""
    if incoming.base == "text":
        return existing.base != "bytea"
    numeric = ("int2", "int4", "int8", "numeric")
    if incoming.base in numeric and existing.base in (*numeric, "float4", "float8"):
        return True
    return incoming.is_string and existing.is_string


def _castable(incoming: PgType, existing: PgType) -> bool:
    """Text into typed columns is parsed value by value (like COPY does); bad values fail later by name."""
    return incoming.base == "text" and existing.base not in ("bytea",)


def apply_evolution(
    cur: psycopg.Cursor,
    table: TableName,
    plan: EvolutionPlan,
    load_id: uuid.UUID,
    *,
    meta_schema: str = META_SCHEMA,
) -> list[str]:
    """Run the plan's ALTER TABLEs and record each (and each discarded column) in the schema history."""
    for change in plan.applied:
        statement = change.statement(table)
        if statement is not None:
            cur.execute(statement)
    for change in [*plan.applied, *plan.discarded]:
        record_schema_change(
            cur,
            table,
            change=change.kind,
            column_name=change.column,
            old_type=change.old_type,
            new_type=change.new_type,
            load_id=load_id,
            schema=meta_schema,
        )
    return plan.descriptions()
