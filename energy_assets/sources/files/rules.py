"""The declaration's audit rules as the warehouse's `AuditRule` SQL, and their check of one file's rows. No Dagster.

NOT NULL, the unique key and bounds come from the table spec (`audit.spec_rules`); a column's `allowed`,
`pattern` and `unique` become rules here. The same rules run twice: over the file's own rows before
publishing (`file_problems`: the quarantine report then names the line and column of the first offending
rows, never their values), and over the candidate partitions by the publish path (nothing is published
unless they pass).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from energy_assets.sources.files.declaration import FileSourceDeclaration
from energy_assets.warehouse.audit import PARTITION_COLUMN, AuditRule, quote, run_audit, spec_rules

ROW_COLUMN = "__row"
LISTED_ROWS = 5


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def declared_rules(declaration: FileSourceDeclaration) -> list[AuditRule]:
    """The column rules a declaration adds to its table's spec rules."""
    rules = []
    for column in declaration.columns:
        name, text = quote(column.name), f"CAST({quote(column.name)} AS VARCHAR)"
        if column.allowed is not None:
            values = ", ".join(_literal(v) for v in column.allowed)
            rules.append(
                AuditRule(
                    f"allowed:{column.name}",
                    f"{column.name} is one of {', '.join(column.allowed)}",
                    f"SELECT * FROM candidate WHERE {name} IS NOT NULL AND {text} NOT IN ({values})",
                    column.name,
                )
            )
        if column.pattern is not None:
            rules.append(
                AuditRule(
                    f"pattern:{column.name}",
                    f"{column.name} matches {column.pattern}",
                    f"SELECT * FROM candidate WHERE {name} IS NOT NULL AND NOT regexp_full_match({text}, {_literal(column.pattern)})",
                    column.name,
                )
            )
        if column.unique:
            rules.append(
                AuditRule(
                    f"unique:{column.name}",
                    f"no two rows share a {column.name}",
                    f"SELECT {name}, count(*) AS copies FROM candidate WHERE {name} IS NOT NULL GROUP BY {name}"
                    " HAVING count(*) > 1",
                    column.name,
                )
            )
    return rules


LinesOf = Callable[[Sequence[int]], dict[int, int]]


def file_problems(
    table: pa.Table, declaration: FileSourceDeclaration, lines_of: LinesOf
) -> list[dict[str, object]]:
    """The declaration's rules over one file's rows: (line, column, reason) of the first offending rows.

    `lines_of` maps 0-based data rows to the physical lines they start on (one pass over the file).
    """
    spec = declaration.table_spec()
    found: list[tuple[int, str | None, str]] = []  # (row, column, reason with {line0} for a first line)
    found += _duplicate_keys(table, list(declaration.key))
    for column in declaration.columns:
        if column.unique:
            found += _duplicate_keys(table, [column.name], rule=f"unique:{column.name}")
    rules = [
        rule
        for rule in [*spec_rules(spec), *declared_rules(declaration)]
        if rule.name != "unique_key" and not rule.name.startswith("unique:")
    ]
    numbered = table.append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))
    numbered = numbered.append_column(PARTITION_COLUMN, pa.array([""] * table.num_rows, pa.string()))
    con = duckdb.connect()
    try:
        report = run_audit(spec, numbered, rules, connection=con)
        for outcome in report.failures:
            rule = next(r for r in rules if r.name == outcome.rule)
            rows = con.sql(f"SELECT {ROW_COLUMN} FROM ({rule.sql}) ORDER BY 1 LIMIT {LISTED_ROWS}").fetchall()
            for (row,) in rows:
                reason = f"breaks rule {outcome.rule} ({outcome.description}); {outcome.offending_rows} row(s) in the file do"
                found.append((int(row), outcome.column, reason))
    finally:
        con.close()
    if not found:
        return []
    wanted = {row for row, _, _ in found} | {int(r) for _, _, reason in found for r in _first_rows(reason)}
    lines = lines_of(sorted(wanted))
    problems: list[dict[str, object]] = [
        {"line": lines[row], "column": column, "reason": _with_lines(reason, lines)}
        for row, column, reason in found
    ]
    return sorted(problems, key=lambda p: (int(str(p["line"] or 0)), str(p["column"])))


def _first_rows(reason: str) -> list[str]:
    return [part.split("}")[0] for part in reason.split("{row:")[1:]]


def _with_lines(reason: str, lines: dict[int, int]) -> str:
    for row in _first_rows(reason):
        reason = reason.replace(f"{{row:{row}}}", str(lines[int(row)]))
    return reason


def _duplicate_keys(
    table: pa.Table, key: list[str], rule: str = "unique_key"
) -> list[tuple[int, str | None, str]]:
    if table.num_rows == 0:
        return []
    if len(key) == 1 and pc.count_distinct(table.column(key[0]), mode="all").as_py() == table.num_rows:
        return []  # the common case, a hash count; the grouping below only runs to name the lines
    numbered = table.select(key).append_column(ROW_COLUMN, pa.array(range(table.num_rows), pa.int64()))
    groups = numbered.group_by(key, use_threads=False).aggregate([(ROW_COLUMN, "list")])
    lists = groups.column(f"{ROW_COLUMN}_list")
    repeated = groups.filter(pc.greater(pc.list_value_length(lists), 1))
    found: list[tuple[int, str | None, str]] = []
    for rows in repeated.column(f"{ROW_COLUMN}_list").to_pylist()[:LISTED_ROWS]:
        rows = sorted(rows)
        more = f" (and {len(rows) - 2} more lines)" if len(rows) > 2 else ""
        found.append(
            (
                rows[1],
                ", ".join(key),
                f"breaks rule {rule}: the same {', '.join(key)} as line {{row:{rows[0]}}}{more}",
            )
        )
    return found
