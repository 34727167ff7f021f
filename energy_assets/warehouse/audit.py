"""Audit rules: what candidate data must satisfy before any of it is published. No Dagster here.

A rule is a DuckDB `SELECT` over the relation `candidate` that returns the offending rows (none: the
rule passed). `candidate` holds the table's columns (see `TableSpec`) plus `lake_partition`, the label
of the lake partition each row would be published in (`country=de/date=2024-01-01`). Callers may
register more relations by name (e.g. `published`, the publish records of the partitions in the run,
or a source's reference table), and rules reference them by that name.

`spec_rules` derives the rules every table gets from its `TableSpec` (unique key, NOT NULL columns,
finite floats, column bounds); sources add their own (complete local days, interval grid, ...) in
their `quality.py`. `run_audit` runs them all in one DuckDB connection and returns an `AuditReport`
naming, per failed rule, the partitions, the column and the first offending rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from energy_assets.errors import DataValidationError
from energy_assets.warehouse.table_spec import TableSpec

PARTITION_COLUMN = "lake_partition"
SAMPLE_ROWS = 5
# Shown with every refusal: what a user can do about it.
ADVICE = (
    "Nothing was published; the previous version stays. Fix the source data and re-run, or inspect the "
    "rejected candidate and its report."
)


@dataclass(frozen=True)
class AuditRule:
    """One blocking rule: its name, what it demands, and the SQL selecting rows that break it."""

    name: str
    description: str
    sql: str
    column: str | None = None
    # What one offending row stands for, as reports count them ("3 row(s)", "2 series and column(s)").
    counted_as: str = "row(s)"


@dataclass
class RuleOutcome:
    """What one rule found: offending row count, the partitions they are in, the first rows."""

    rule: str
    description: str
    column: str | None
    passed: bool
    offending_rows: int = 0
    partitions: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)
    counted_as: str = "row(s)"

    def summary(self, table: str) -> str:
        if self.passed:
            return f"{self.rule}: passed"
        where = ", ".join(self.partitions[:3]) + (" ..." if len(self.partitions) > 3 else "")
        column = f", column {self.column}" if self.column else ""
        first = json.dumps(self.sample[0], default=str) if self.sample else ""
        return (
            f"{table} partition {where or '(none)'}: rule {self.rule}{column} failed for "
            f"{self.offending_rows} {self.counted_as} ({self.description}); first: {first}"
        )


@dataclass
class AuditReport:
    """The audit of one table's candidate partitions."""

    table: str
    rows: int
    partitions: list[str]
    outcomes: list[RuleOutcome]

    @property
    def passed(self) -> bool:
        return all(outcome.passed for outcome in self.outcomes)

    @property
    def failures(self) -> list[RuleOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.passed]

    def outcome(self, rule: str) -> RuleOutcome | None:
        return next((outcome for outcome in self.outcomes if outcome.rule == rule), None)

    def failed_partitions(self) -> list[str]:
        return sorted({label for outcome in self.failures for label in outcome.partitions})

    def summary(self) -> str:
        if self.passed:
            return f"{self.table}: {self.rows} rows in {len(self.partitions)} partition(s) passed {len(self.outcomes)} rule(s)"
        return "; ".join(outcome.summary(self.table) for outcome in self.failures)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=_json_default)


class AuditFailedError(DataValidationError):
    """Candidate data broke a blocking rule; nothing of it was published."""

    def __init__(self, reports: Sequence[AuditReport], rejected: Sequence[str] = ()) -> None:
        self.reports = list(reports)
        self.rejected = list(rejected)
        self.report = self.reports[0]
        self.rejected_at = self.rejected[0] if self.rejected else None
        kept = (
            f" The candidates and their reports are kept in {', '.join(self.rejected)}."
            if self.rejected
            else ""
        )
        refused = "; ".join(f"{report.table}: {report.summary()}" for report in self.reports)
        super().__init__(f"Audit refused {refused}. {ADVICE}{kept}")


def quote(name: str) -> str:
    """A DuckDB identifier (spec column names are validated; this also survives odd ones)."""
    return '"' + name.replace('"', '""') + '"'


def spec_rules(spec: TableSpec) -> list[AuditRule]:
    """The rules every table gets from its description: unique key, NOT NULL, finite numbers, bounds."""
    rules = []
    if spec.primary_key:
        key = ", ".join(quote(name) for name in spec.primary_key)
        rules.append(
            AuditRule(
                name="unique_key",
                description=f"one row per ({', '.join(spec.primary_key)})",
                sql=(
                    f"SELECT {PARTITION_COLUMN}, {key}, count(*) AS copies FROM candidate "
                    f"GROUP BY {PARTITION_COLUMN}, {key} HAVING count(*) > 1 ORDER BY {PARTITION_COLUMN}, {key}"
                ),
                column=", ".join(spec.primary_key),
            )
        )
    for column in spec.columns:
        name = quote(column.name)
        if not column.nullable:
            rules.append(
                AuditRule(
                    name=f"not_null:{column.name}",
                    description=f"{column.name} is never NULL",
                    sql=f"SELECT * FROM candidate WHERE {name} IS NULL",
                    column=column.name,
                )
            )
        if column.is_float and not column.allow_non_finite:
            rules.append(
                AuditRule(
                    name=f"finite:{column.name}",
                    description=f"{column.name} is a finite number (no NaN or infinity)",
                    sql=f"SELECT * FROM candidate WHERE isnan({name}) OR isinf({name})",
                    column=column.name,
                )
            )
        bounds = []
        if column.minimum is not None:
            bounds.append(f"{name} < {column.minimum!r}")
        if column.maximum is not None:
            bounds.append(f"{name} > {column.maximum!r}")
        if bounds:
            unit = f" {column.unit}" if column.unit else ""
            rules.append(
                AuditRule(
                    name=f"bounds:{column.name}",
                    description=(
                        f"{column.name} within [{_bound(column.minimum, '-inf')}, {_bound(column.maximum, 'inf')}]{unit}"
                    ),
                    sql=f"SELECT * FROM candidate WHERE ({' OR '.join(bounds)})"
                    + (f" AND NOT isnan({name})" if column.is_float else ""),
                    column=column.name,
                )
            )
    return rules


def run_audit(
    spec: TableSpec,
    candidate: pa.Table | duckdb.DuckDBPyRelation | str,
    rules: Sequence[AuditRule],
    *,
    relations: Mapping[str, Any] | None = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> AuditReport:
    """Run `rules` over `candidate` (an Arrow table, a relation, or SQL producing the rows).

    `candidate` must have the spec's columns and `lake_partition`. `relations` are registered under
    their names for rules that compare with something else (Arrow tables or DuckDB relations).
    """
    con = connection or duckdb.connect()
    try:
        _register(con, "candidate", candidate)
        for name, relation in (relations or {}).items():
            _register(con, name, relation)
        totals = con.sql(
            f"SELECT count(*), list(DISTINCT {PARTITION_COLUMN} ORDER BY {PARTITION_COLUMN}) FROM candidate"
        ).fetchall()[0]
        outcomes = [_run_rule(con, rule) for rule in rules]
    finally:
        if connection is None:
            con.close()
    return AuditReport(spec.qualified_name, int(totals[0]), list(totals[1] or []), outcomes)


def _register(con: duckdb.DuckDBPyConnection, name: str, relation: Any) -> None:
    if isinstance(relation, str):
        # Materialized once: every rule reads it, and DuckDB 2.0's Parquet statistics pruning drops NaN
        # rows from `isnan(...)` filters pushed into `read_parquet` (a temp table has no such pruning).
        con.sql(f"CREATE OR REPLACE TEMP TABLE {quote(name)} AS {relation}")
    elif isinstance(relation, duckdb.DuckDBPyRelation):
        relation.create_view(name, replace=True)
    else:
        con.register(name, relation)


def _run_rule(con: duckdb.DuckDBPyConnection, rule: AuditRule) -> RuleOutcome:
    found = con.sql(
        f"SELECT count(*) OVER () AS __offending, * FROM ({rule.sql}) LIMIT {SAMPLE_ROWS}"
    ).to_arrow_table()
    if found.num_rows == 0:
        return RuleOutcome(rule.name, rule.description, rule.column, passed=True, counted_as=rule.counted_as)
    offending = int(found.column("__offending")[0].as_py())
    sample = found.drop_columns(["__offending"]).to_pylist()
    partitions: list[str] = []
    if PARTITION_COLUMN in found.column_names:
        labels = con.sql(
            f"SELECT DISTINCT {PARTITION_COLUMN} FROM ({rule.sql}) ORDER BY 1 LIMIT 20"
        ).fetchall()
        partitions = [str(row[0]) for row in labels]
    return RuleOutcome(
        rule.name,
        rule.description,
        rule.column,
        passed=False,
        offending_rows=offending,
        partitions=partitions,
        sample=[{key: _plain(value) for key, value in row.items()} for row in sample],
        counted_as=rule.counted_as,
    )


def _bound(value: float | None, unbounded: str) -> str:
    return unbounded if value is None else f"{value:g}"


def _plain(value: Any) -> Any:
    """A JSON-friendly value for reports (ISO strings for times, repr for non-finite floats)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Decimal):  # DuckDB sums of integers; keep them numbers in reports
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def _json_default(value: Any) -> Any:
    return _plain(value) if isinstance(value, datetime | date | Decimal) else str(value)
