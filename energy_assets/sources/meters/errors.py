"""Errors raised by the meter-file source: which file, which line, which record, and why.

`Nem12Error` is the one error a malformed NEM12 file produces; the inbox turns it into a quarantine report
(`to_report()`). NMIs are personal data once protected identifiers are on: an error built by the parser in
protected mode already carries `[NMI]` in place of every NMI it saw, and `redacted(nmis)` does the same for
an error built elsewhere. Keys never reach an error (see `identifiers`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from energy_assets.errors import ConfigurationError, DataValidationError

RECORD_PREVIEW_CHARS = 200
REDACTED_NMI = "[NMI]"


def _preview(record: str) -> str:
    record = record.rstrip("\r\n")
    if len(record) <= RECORD_PREVIEW_CHARS:
        return record
    return f"{record[:RECORD_PREVIEW_CHARS]}... ({len(record)} chars)"


class Nem12Error(DataValidationError):
    """A NEM12 file is malformed (or is not NEM12); nothing from it may be published.

    `line` is 1-based (0 when the problem is the container, e.g. a truncated zip); `record` is the raw line,
    truncated to `RECORD_PREVIEW_CHARS`.
    """

    def __init__(self, file: str, line: int, record: str, reason: str) -> None:
        self.file = file
        self.line = line
        self.record = _preview(record)
        self.reason = reason
        where = f"{file}, line {line}" if line else file
        shown = f": {self.record!r}" if self.record else ""
        super().__init__(f"{where}: {reason}{shown}")

    def redacted(self, nmis: Iterable[str]) -> Nem12Error:
        """The same error with each of `nmis` replaced by `[NMI]` in file name, record and reason.

        File names are included because meter data providers often put the NMI in them.
        """
        file, record, reason = self.file, self.record, self.reason
        for nmi in sorted({n for n in nmis if n}, key=len, reverse=True):
            file = file.replace(nmi, REDACTED_NMI)
            record = record.replace(nmi, REDACTED_NMI)
            reason = reason.replace(nmi, REDACTED_NMI)
        return type(self)(file, self.line, record, reason)

    def to_report(self) -> dict[str, Any]:
        """The JSON-able entry of a quarantine report: line number, record and reason."""
        return {"line": self.line, "record": self.record, "reason": self.reason}


class Nem13NotSupportedError(Nem12Error):
    """The file is NEM13 (accumulation meter data, 250 records), a different format this source refuses."""


class IdentifierKeyError(ConfigurationError):
    """A protected-identifier key is missing or malformed; the message names the setting, never the key."""


class NmiDecryptionError(DataValidationError):
    """An encrypted NMI does not decrypt with any configured key (wrong, rotated-out or damaged token)."""
