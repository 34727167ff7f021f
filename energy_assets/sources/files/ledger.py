"""The durable record of one file source, in its own PostgreSQL schema. No Dagster.

`<source>.ingested_files` has the life of each file content (sha256) exactly as the NEM12 inbox's
`meters.ingested_files` (`seen` -> `loading` -> `committed` in the publish transaction -> `processed` /
`quarantined`; a second name of known content is recorded as a duplicate). `<source>.protected_values` holds
one Fernet token per pseudonym of a sensitive column (first one wins), re-encrypted by `rotate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from energy_assets.sources.meters.ledger import FileRecord

_LOCK_KEY = 0x66696C65  # "file": serialises creation of a file source's bookkeeping tables

_CREATE = (
    "CREATE TABLE IF NOT EXISTS {files} (sha256 text PRIMARY KEY, file_name text NOT NULL, bytes bigint NOT NULL,"
    " status text NOT NULL, attempts integer NOT NULL DEFAULT 0, rows bigint, error text, moved_to text,"
    " inserted bigint, updated bigint, duplicate_names text[] NOT NULL DEFAULT '{{}}',"
    " first_seen_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);"
    " CREATE TABLE IF NOT EXISTS {tokens} (pseudonym text PRIMARY KEY, column_name text NOT NULL,"
    " token text NOT NULL, encrypted_at timestamptz NOT NULL)"
)


@dataclass(frozen=True)
class SourceSummary:
    """What `energy-assets source list` shows of a source's files."""

    processed: int
    quarantined: int
    rows: int
    last_load: datetime | None


class FileLedger:
    """The bookkeeping tables of the source whose PostgreSQL schema is `schema`."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.files = sql.Identifier(schema, "ingested_files")
        self.tokens = sql.Identifier(schema, "protected_values")

    def ensure_tables(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL(_CREATE).format(files=self.files, tokens=self.tokens))

    def lookup(self, conn: psycopg.Connection, shas: Sequence[str]) -> dict[str, FileRecord]:
        rows = conn.execute(
            sql.SQL(
                "SELECT sha256, file_name, status, attempts, rows, error, moved_to, duplicate_names FROM {}"
                " WHERE sha256 = ANY(%s)"
            ).format(self.files),
            (list(shas),),
        ).fetchall()
        return {
            row[0]: FileRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], list(row[7] or []))
            for row in rows
        }

    def mark_seen(self, conn: psycopg.Connection, files: Iterable[tuple[str, str, int]]) -> None:
        for sha, name, size in files:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (sha256, file_name, bytes, status, first_seen_at, updated_at)"
                    " VALUES (%s, %s, %s, 'seen', now(), now()) ON CONFLICT (sha256) DO NOTHING"
                ).format(self.files),
                (sha, name, size),
            )
        conn.commit()

    def start_loading(self, conn: psycopg.Connection, sha: str, name: str, size: int) -> int:
        row = conn.execute(
            sql.SQL(
                "INSERT INTO {} AS f (sha256, file_name, bytes, status, first_seen_at, updated_at, attempts)"
                " VALUES (%s, %s, %s, 'loading', now(), now(), 1)"
                " ON CONFLICT (sha256) DO UPDATE SET status = 'loading', updated_at = now(),"
                " attempts = f.attempts + 1 RETURNING attempts"
            ).format(self.files),
            (sha, name, size),
        ).fetchone()
        conn.commit()
        return int(row[0]) if row else 1

    def finish(
        self,
        conn: psycopg.Connection,
        sha: str,
        status: str,
        *,
        rows: int | None = None,
        error: str | None = None,
        moved_to: str | None = None,
        inserted: int | None = None,
        updated: int | None = None,
    ) -> None:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET status = %s, rows = %s, error = %s, moved_to = %s, inserted = %s, updated = %s,"
                " updated_at = now() WHERE sha256 = %s"
            ).format(self.files),
            (status, rows, error, moved_to, inserted, updated, sha),
        )
        conn.commit()

    def mark_committed(self, cur: psycopg.Cursor, sha: str, rows: int) -> None:
        """Inside the publish transaction (see `sources.meters.ledger.mark_committed`)."""
        cur.execute(
            sql.SQL(
                "UPDATE {} SET status = 'committed', rows = %s, updated_at = now() WHERE sha256 = %s"
            ).format(self.files),
            (rows, sha),
        )

    def add_duplicate_name(self, conn: psycopg.Connection, sha: str, name: str) -> None:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET duplicate_names = array_append(duplicate_names, %s), updated_at = now() WHERE sha256 = %s"
            ).format(self.files),
            (name, sha),
        )
        conn.commit()

    def store_tokens(self, cur: psycopg.Cursor, tokens: Mapping[str, tuple[str, str]]) -> None:
        """Keep one token per pseudonym (`{pseudonym: (column, token)}`), in the caller's transaction."""
        if not tokens:
            return
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS new_protected_values (pseudonym text, column_name text, token text)"
        )
        cur.execute("TRUNCATE new_protected_values")
        with cur.copy("COPY new_protected_values FROM STDIN") as copy:
            for pseudonym, (column, token) in tokens.items():
                copy.write_row((pseudonym, column, token))
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (pseudonym, column_name, token, encrypted_at)"
                " SELECT pseudonym, column_name, token, now() FROM new_protected_values ORDER BY pseudonym"
                " ON CONFLICT (pseudonym) DO NOTHING"
            ).format(self.tokens)
        )

    def rotate(self, conn: psycopg.Connection, rotate: Callable[[list[str]], list[str]]) -> int:
        """Re-encrypt every token with `rotate` (newest key) in one transaction; returns how many."""
        with conn.transaction():
            rows = conn.execute(
                sql.SQL("SELECT pseudonym, token FROM {} FOR UPDATE").format(self.tokens)
            ).fetchall()
            if not rows:
                return 0
            rotated = rotate([token for _, token in rows])
            conn.execute(
                sql.SQL(
                    "UPDATE {} AS t SET token = u.token, encrypted_at = now()"
                    " FROM unnest(%s::text[], %s::text[]) AS u(pseudonym, token) WHERE t.pseudonym = u.pseudonym"
                ).format(self.tokens),
                ([p for p, _ in rows], rotated),
            )
        return len(rows)

    def counts(self, conn: psycopg.Connection, sha: str) -> tuple[int, int] | None:
        """(inserted, updated) of a processed content, for the one line `source ingest` prints."""
        row = conn.execute(
            sql.SQL("SELECT inserted, updated FROM {} WHERE sha256 = %s").format(self.files), (sha,)
        ).fetchone()
        return (int(row[0] or 0), int(row[1] or 0)) if row else None

    def summary(self, conn: psycopg.Connection) -> SourceSummary:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*) FILTER (WHERE status = 'processed'), count(*) FILTER (WHERE status = 'quarantined'),"
                " coalesce(sum(rows) FILTER (WHERE status = 'processed'), 0),"
                " max(updated_at) FILTER (WHERE status = 'processed') FROM {}"
            ).format(self.files)
        ).fetchone()
        assert row is not None
        return SourceSummary(int(row[0]), int(row[1]), int(row[2]), row[3])
