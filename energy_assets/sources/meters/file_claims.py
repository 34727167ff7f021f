"""Claiming an inbox file for a run: what the source's ledger says to do with it. No Dagster here.

Shared by the NEM12 source and the file sources (each with its own ledger). A run named a file and the
sha256 the sensor saw; before anything is read:

1. content already processed or quarantined whose file is gone: nothing to do;
2. the file is gone, or its content changed since the sensor saw it: `FileGoneError` (the next tick
   picks up the new content);
3. content committed by an earlier run that died before moving the file: only move it to `processed/`;
4. otherwise record one more attempt (`loading`) and load it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from energy_assets.errors import DataValidationError
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.sources.meters.inbox import InboxLayout, move_to_processed, sha256_of_file


class FileGoneError(DataValidationError):
    """The file a run was asked to load is not in the inbox any more, or its content changed."""


class ClaimLedger(Protocol):
    """What a claim reads and writes of a source's durable file record."""

    def ensure_tables(self, conn: psycopg.Connection) -> None: ...

    def lookup(self, conn: psycopg.Connection, shas: Sequence[str]) -> dict[str, Any]: ...

    def finish(
        self,
        conn: psycopg.Connection,
        sha: str,
        status: str,
        *,
        rows: int | None = ...,
        moved_to: str | None = ...,
    ) -> None: ...

    def start_loading(self, conn: psycopg.Connection, sha: str, name: str, size: int) -> int: ...


@dataclass(frozen=True)
class Claim:
    """The ledger's answer: `done` (the earlier state) when nothing is to be loaded, else the attempt."""

    done: str | None
    size: int = 0
    attempt: int = 0
    moved_to: Path | None = None


def claim_file(
    path: Path,
    sha256: str,
    *,
    settings: PostgresSettings,
    layout: InboxLayout,
    ledger: ClaimLedger,
    log: Callable[[str], Any] = lambda message: None,
) -> Claim:
    """Steps 1-4 of the module docstring, in one ledger session."""
    with connect(settings) as conn:
        ledger.ensure_tables(conn)
        record = ledger.lookup(conn, [sha256]).get(sha256)
        if record is not None and record.status in ("processed", "quarantined") and not path.exists():
            log(f"Content {sha256[:12]} was already {record.status}; nothing to do.")
            return Claim(record.status)
        if not path.exists():
            raise FileGoneError(f"{path} is not in the inbox any more; drop the file again.")
        actual = sha256_of_file(path)
        if actual != sha256:
            raise FileGoneError(
                f"{path.name} changed since the sensor saw it (sha256 {actual[:12]}, expected {sha256[:12]});"
                " the next sensor tick picks up the new content."
            )
        size = path.stat().st_size
        if record is not None and record.status == "committed":
            # An earlier run published this content and died before moving the file: only finish it.
            moved = move_to_processed(layout, path, sha256)
            ledger.finish(conn, sha256, "processed", rows=record.rows, moved_to=str(moved))
            log(f"Content {sha256[:12]} was committed by an earlier run; moved to processed/.")
            return Claim("committed by an earlier run", moved_to=moved)
        attempt = ledger.start_loading(conn, sha256, path.name, size)
    return Claim(None, size, attempt)
