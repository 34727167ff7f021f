"""Row scopes: which rows of a table a load is responsible for, as SQL conditions.

A scope maps column names to a value (`col = v`), a half-open range `(lower, upper)`
(`lower <= col < upper`) or a list of values (`col = ANY(...)`). A list of scopes means any of them.
Used by `merge(delete_missing_in=...)` and by row-count checks, so both read rows the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

from energy_assets.warehouse.identifiers import column

Scope = Mapping[str, Any]


def scope_condition(scope: Scope, alias: str | None = None) -> tuple[sql.Composable, list[Any]]:
    """SQL for one scope (all its columns must match) and its parameters."""
    if not scope:
        raise ValueError("A scope needs at least one column; an empty scope would match the whole table.")
    conditions: list[sql.Composable] = []
    params: list[Any] = []
    for name, value in scope.items():
        target = sql.SQL("{}.{}").format(sql.Identifier(alias), column(name)) if alias else column(name)
        if isinstance(value, tuple):
            lower, upper = value
            conditions.append(sql.SQL("({col} >= %s AND {col} < %s)").format(col=target))
            params.extend((lower, upper))
        elif isinstance(value, list | set | frozenset):
            conditions.append(sql.SQL("{col} = ANY(%s)").format(col=target))
            params.append(list(value))
        else:
            conditions.append(sql.SQL("{col} = %s").format(col=target))
            params.append(value)
    return sql.SQL("(") + sql.SQL(" AND ").join(conditions) + sql.SQL(")"), params


def any_scope_condition(
    scopes: Sequence[Scope], alias: str | None = None
) -> tuple[sql.Composable, list[Any]]:
    """SQL matching rows in any of `scopes`, and its parameters."""
    if not scopes:
        raise ValueError("At least one scope is needed.")
    parts, params = [], []
    for scope in scopes:
        condition, values = scope_condition(scope, alias)
        parts.append(condition)
        params.extend(values)
    return sql.SQL("(") + sql.SQL(" OR ").join(parts) + sql.SQL(")"), params


def coalesce_scopes(scopes: Sequence[Scope]) -> list[Scope]:
    """Fewer, wider scopes matching the same rows: touching ranges on one column are joined.

    Scopes that have the same equality values and one range column `(lower, upper)` whose ranges touch
    or overlap become one scope, so 366 consecutive local days of a country are one range condition
    (one index range scan) instead of 366 OR-ed ones. Other scopes are returned as they are.

    >>> coalesce_scopes([{"c": "de", "t": (1, 2)}, {"c": "de", "t": (2, 3)}, {"c": "fr", "t": (1, 2)}])
    [{'c': 'de', 't': (1, 3)}, {'c': 'fr', 't': (1, 2)}]
    """
    groups: dict[tuple[Any, ...], list[tuple[Any, Any]]] = {}
    order: list[tuple[Any, ...]] = []
    passthrough: list[Scope] = []
    for scope in scopes:
        ranges = [name for name, value in scope.items() if isinstance(value, tuple)]
        fixed = [(name, value) for name, value in scope.items() if not isinstance(value, tuple)]
        if len(ranges) != 1 or any(isinstance(value, list | set | frozenset) for _, value in fixed):
            passthrough.append(scope)
            continue
        group = (tuple(fixed), ranges[0])
        if group not in groups:
            groups[group] = []
            order.append(group)
        groups[group].append(scope[ranges[0]])
    result: list[Scope] = []
    for group in order:
        pairs, range_column = group
        merged: list[list[Any]] = []
        for lower, upper in sorted(groups[group]):
            if merged and lower <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], upper)
            else:
                merged.append([lower, upper])
        result.extend({**dict(pairs), range_column: (lower, upper)} for lower, upper in merged)
    return result + passthrough
