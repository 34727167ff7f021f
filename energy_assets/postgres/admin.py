"""Administrative operations on a PostgreSQL server: sessions and databases.

The operations the earlier building-energy pipeline offered, done safely: identifiers are quoted
with `psycopg.sql`, the maintenance databases cannot be dropped, and ending live sessions needs an
explicit `force`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from energy_assets.errors import DatabaseError

MAINTENANCE_DATABASES = frozenset({"postgres", "template0", "template1"})


@dataclass(frozen=True)
class SessionInfo:
    """One row of pg_stat_activity, with its TLS state from pg_stat_ssl."""

    pid: int
    database: str | None
    user: str | None
    application_name: str
    client_addr: str | None
    state: str | None
    backend_start: datetime | None
    query_start: datetime | None
    ssl: bool
    ssl_version: str | None
    query: str

    def as_dict(self) -> dict[str, object]:
        return {
            key: (value.isoformat() if isinstance(value, datetime) else value)
            for key, value in self.__dict__.items()
        }


_SESSIONS_SQL = """
SELECT a.pid, a.datname, a.usename, a.application_name, host(a.client_addr), a.state,
       a.backend_start, a.query_start, coalesce(s.ssl, false), s.version, a.query
FROM pg_stat_activity a
LEFT JOIN pg_stat_ssl s ON s.pid = a.pid
WHERE a.backend_type = 'client backend'
  AND (%(database)s::text IS NULL OR a.datname = %(database)s)
  AND (%(state)s::text IS NULL OR a.state = %(state)s)
ORDER BY a.backend_start
"""


def list_sessions(
    conn: psycopg.Connection, *, database: str | None = None, state: str | None = None
) -> list[SessionInfo]:
    """Client sessions on the server, optionally filtered by database and state (`active`, `idle`, ...)."""
    with conn.cursor() as cur:
        cur.execute(_SESSIONS_SQL, {"database": database, "state": state})
        return [SessionInfo(*row) for row in cur.fetchall()]


def terminate_sessions(conn: psycopg.Connection, *, database: str, state: str | None = None) -> list[int]:
    """End the sessions on `database` (in `state`, if given), never our own; returns the ended pids."""
    with conn.cursor() as cur:
        cur.execute(
            # The filter runs in a materialized CTE first: in a plain WHERE clause PostgreSQL may call
            # pg_terminate_backend before the other conditions and end unrelated sessions (ours included).
            """
            WITH targets AS MATERIALIZED (
                SELECT a.pid FROM pg_stat_activity a
                WHERE a.backend_type = 'client backend' AND a.datname = %(database)s
                  AND (%(state)s::text IS NULL OR a.state = %(state)s)
                  AND a.pid <> pg_backend_pid()
            )
            SELECT pid FROM targets WHERE pg_terminate_backend(pid)
            """,
            {"database": database, "state": state},
        )
        return [row[0] for row in cur.fetchall()]


def database_exists(conn: psycopg.Connection, name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None


def create_database(conn: psycopg.Connection, name: str, *, owner: str | None = None) -> bool:
    """Create `name` unless it exists; returns True if created. Needs an autocommit connection."""
    if database_exists(conn, name):
        return False
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    try:
        conn.execute(statement)
    except psycopg.errors.DuplicateDatabase:
        return False
    return True


def drop_database(conn: psycopg.Connection, name: str, *, force: bool = False) -> bool:
    """Drop `name`; returns False if it did not exist.

    Refuses the maintenance databases and the database this connection uses. With live sessions it
    fails unless `force` is given, which ends them (`DROP DATABASE ... WITH (FORCE)`).
    """
    if name in MAINTENANCE_DATABASES:
        raise DatabaseError(f"Refusing to drop the maintenance database {name!r}.")
    if name == conn.info.dbname:
        raise DatabaseError(f"Refusing to drop {name!r}: this connection is using it; connect to 'postgres'.")
    if not database_exists(conn, name):
        return False
    sessions = list_sessions(conn, database=name)
    if sessions and not force:
        raise DatabaseError(
            f"Database {name!r} has {len(sessions)} live session(s) (pids "
            f"{', '.join(str(s.pid) for s in sessions)}); end them first or drop with force."
        )
    statement = sql.SQL("DROP DATABASE {}").format(sql.Identifier(name))
    if force:
        statement += sql.SQL(" WITH (FORCE)")
    try:
        conn.execute(statement)
    except psycopg.errors.ObjectInUse as exc:
        raise DatabaseError(f"Database {name!r} is in use: {exc}; retry with force.") from exc
    return True
