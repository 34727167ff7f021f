"""Errors of the file source: a file that breaks its declaration, named by file, line and column."""

from __future__ import annotations

from typing import Any

from energy_assets.errors import DataValidationError

MAX_LISTED = 5


class FileFormatError(DataValidationError):
    """A file that cannot be read as declared. `problems` holds every located problem (line, column, reason);
    the message names the file and the first few. Values of sensitive columns never appear in it."""

    def __init__(self, file: str, problems: list[dict[str, Any]]) -> None:
        self.file = file
        self.problems = problems
        shown = "; ".join(_describe(problem) for problem in problems[:MAX_LISTED])
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        super().__init__(f"{file}: {shown}{more}")

    @classmethod
    def at(
        cls, file: str, reason: str, *, line: int | None = None, column: str | None = None
    ) -> FileFormatError:
        return cls(file, [{"line": line, "column": column, "reason": reason}])

    @property
    def line(self) -> int | None:
        return self.problems[0].get("line") if self.problems else None

    @property
    def column(self) -> str | None:
        return self.problems[0].get("column") if self.problems else None

    def to_report(self) -> list[dict[str, Any]]:
        """The problems as the quarantine report lists them (line, column, record, reason)."""
        return [
            {"line": p.get("line"), "column": p.get("column"), "record": "", "reason": p["reason"]}
            for p in self.problems
        ]


def _describe(problem: dict[str, Any]) -> str:
    where = []
    if problem.get("line"):
        where.append(f"line {problem['line']}")
    if problem.get("column"):
        where.append(f"column {problem['column']}")
    prefix = ", ".join(where)
    return f"{prefix}: {problem['reason']}" if prefix else str(problem["reason"])
