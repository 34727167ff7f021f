"""The durable record of inbox files (`meters.ingested_files`) and protected NMIs, in PostgreSQL. No Dagster.

A file is identified by the sha256 of its bytes. Its row moves through `seen` (the sensor found it stable
and requested a run) -> `loading` (a run started; `attempts` counts them) -> `committed` (its rows are in
PostgreSQL, written in the publish transaction) -> `processed` (the file moved) / `quarantined`;
a second file with the same content under another name is moved to `processed/` and recorded as a
duplicate name of the first. The sensor reads this table instead of a wall-clock cursor, so a file with an
old modification time is still picked up, and a run key includes the attempt number, so a run that died
mid-way is requested again on the next tick.

`meters.protected_nmis` holds one Fernet token per NMI pseudonym (first one wins; re-encryption under a
new key rewrites them all with `rotate_protected_nmis`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from energy_assets.sources.meters.tables import INGESTED_FILES, METERS_SCHEMA, PROTECTED_NMIS
from energy_assets.warehouse.identifiers import TableName
from energy_assets.warehouse.schema_inference import create_table_sql

FILES = TableName(INGESTED_FILES.schema, INGESTED_FILES.name)
TOKENS = TableName(PROTECTED_NMIS.schema, PROTECTED_NMIS.name)
_LOCK_KEY = 0x6D657472  # "metr": serialises creation of the meters bookkeeping tables


@dataclass(frozen=True)
class FileRecord:
    sha256: str
    file_name: str
    status: str
    attempts: int
    rows: int | None
    error: str | None
    moved_to: str | None
    duplicate_names: list[str]


def ensure_tables(conn: psycopg.Connection) -> None:
    """Create the schema, `ingested_files` and `protected_nmis` if missing (idempotent, own transaction)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(METERS_SCHEMA)))
        for table, spec in ((FILES, INGESTED_FILES), (TOKENS, PROTECTED_NMIS)):
            conn.execute(create_table_sql(table, spec.inferred_schema()))  # CREATE TABLE IF NOT EXISTS
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,"
                " ADD COLUMN IF NOT EXISTS duplicate_names text[] NOT NULL DEFAULT '{{}}'"
            ).format(FILES.sql())
        )


def lookup(conn: psycopg.Connection, shas: Sequence[str]) -> dict[str, FileRecord]:
    """The records of these contents (absent: never seen)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT sha256, file_name, status, attempts, rows, error, moved_to, duplicate_names FROM {}"
            " WHERE sha256 = ANY(%s)"
        ).format(FILES.sql()),
        (list(shas),),
    ).fetchall()
    return {
        row[0]: FileRecord(
            sha256=row[0],
            file_name=row[1],
            status=row[2],
            attempts=row[3],
            rows=row[4],
            error=row[5],
            moved_to=row[6],
            duplicate_names=list(row[7] or []),
        )
        for row in rows
    }


def mark_seen(conn: psycopg.Connection, files: Iterable[tuple[str, str, int]]) -> None:
    """Record (sha256, name, bytes) as `seen` unless the content is already known."""
    for sha, name, size in files:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (sha256, file_name, bytes, status, first_seen_at, updated_at)"
                " VALUES (%s, %s, %s, 'seen', now(), now()) ON CONFLICT (sha256) DO NOTHING"
            ).format(FILES.sql()),
            (sha, name, size),
        )
    conn.commit()


def start_loading(conn: psycopg.Connection, sha: str, name: str, size: int) -> int:
    """Mark a content `loading` and count the attempt; returns the attempt number."""
    row = conn.execute(
        sql.SQL(
            "INSERT INTO {} AS f (sha256, file_name, bytes, status, first_seen_at, updated_at, attempts)"
            " VALUES (%s, %s, %s, 'loading', now(), now(), 1)"
            " ON CONFLICT (sha256) DO UPDATE SET status = 'loading', updated_at = now(),"
            " attempts = f.attempts + 1 RETURNING attempts"
        ).format(FILES.sql()),
        (sha, name, size),
    ).fetchone()
    conn.commit()
    return int(row[0]) if row else 1


def finish(
    conn: psycopg.Connection,
    sha: str,
    status: str,
    *,
    rows: int | None = None,
    error: str | None = None,
    moved_to: str | None = None,
) -> None:
    """Record the outcome of a content: `processed` (with rows) or `quarantined` (with the error)."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET status = %s, rows = %s, error = %s, moved_to = %s, updated_at = now()"
            " WHERE sha256 = %s"
        ).format(FILES.sql()),
        (status, rows, error, moved_to, sha),
    )
    conn.commit()


def mark_committed(cur: psycopg.Cursor, sha: str, rows: int) -> None:
    """Inside the publish transaction: the content's rows are in PostgreSQL (status `committed`).

    A run that finds its content `committed` only moves the file and finishes: it never applies the rows
    again, so an older file retried after a crash cannot overwrite a newer file's revisions.
    """
    cur.execute(
        sql.SQL("UPDATE {} SET status = 'committed', rows = %s, updated_at = now() WHERE sha256 = %s").format(
            FILES.sql()
        ),
        (rows, sha),
    )


def add_duplicate_name(conn: psycopg.Connection, sha: str, name: str) -> None:
    """Note that a file with already-known content arrived again under `name`."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET duplicate_names = array_append(duplicate_names, %s), updated_at = now()"
            " WHERE sha256 = %s"
        ).format(FILES.sql()),
        (name, sha),
    )
    conn.commit()


def store_tokens(conn: psycopg.Connection, tokens: Mapping[str, str]) -> int:
    """Keep one token per pseudonym (the first one stored); returns how many were new."""
    if not tokens:
        return 0
    pseudonyms, encrypted = zip(*sorted(tokens.items()), strict=True)
    cursor = conn.execute(
        sql.SQL(
            "INSERT INTO {} (nmi, nmi_encrypted, encrypted_at)"
            " SELECT p, t, now() FROM unnest(%s::text[], %s::text[]) AS u(p, t) ON CONFLICT (nmi) DO NOTHING"
        ).format(TOKENS.sql()),
        (list(pseudonyms), list(encrypted)),
    )
    conn.commit()
    return cursor.rowcount


def rotate_protected_nmis(conn: psycopg.Connection, rotate: Callable[[list[str]], list[str]]) -> int:
    """Re-encrypt every token with `rotate` (newest key) in one transaction; returns how many."""
    with conn.transaction():
        rows = conn.execute(
            sql.SQL("SELECT nmi, nmi_encrypted FROM {} FOR UPDATE").format(TOKENS.sql())
        ).fetchall()
        if not rows:
            return 0
        rotated = rotate([token for _, token in rows])
        conn.execute(
            sql.SQL(
                "UPDATE {} AS t SET nmi_encrypted = u.token, encrypted_at = now()"
                " FROM unnest(%s::text[], %s::text[]) AS u(nmi, token) WHERE t.nmi = u.nmi"
            ).format(TOKENS.sql()),
            ([nmi for nmi, _ in rows], rotated),
        )
    return len(rows)
