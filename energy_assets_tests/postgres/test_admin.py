"""Session and database administration against the real managed cluster."""

from __future__ import annotations

import time

import psycopg
import pytest

from energy_assets.errors import DatabaseError
from energy_assets.postgres.admin import (
    create_database,
    database_exists,
    drop_database,
    list_sessions,
    terminate_sessions,
)
from energy_assets.postgres.connection import PostgresSettings, connect


@pytest.fixture
def admin_conn(pg_settings: PostgresSettings):
    with connect(pg_settings.with_database("postgres"), autocommit=True) as conn:
        yield conn


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_list_sessions_reports_tls(admin_conn, pg_settings: PostgresSettings) -> None:
    with connect(pg_settings.replace(application_name="listed_session")):
        sessions = list_sessions(admin_conn, database="energy")
        listed = [s for s in sessions if s.application_name == "listed_session"]
        assert len(listed) == 1
        assert listed[0].ssl is True
        assert listed[0].user == "energy_admin"
        assert listed[0].as_dict()["database"] == "energy"


def test_terminating_an_idle_session_ends_it(admin_conn, pg_settings: PostgresSettings) -> None:
    create_database(admin_conn, "terminate_me")
    victim = connect(pg_settings.with_database("terminate_me").replace(application_name="victim"))
    victim_pid = victim.info.backend_pid
    assert _wait_for(lambda: any(s.pid == victim_pid for s in list_sessions(admin_conn, state="idle")))
    ended = terminate_sessions(admin_conn, database="terminate_me", state="idle")
    assert ended == [victim_pid]
    assert _wait_for(lambda: all(s.pid != victim_pid for s in list_sessions(admin_conn)))
    with pytest.raises(psycopg.OperationalError):
        victim.execute("SELECT 1")
    victim.close()
    drop_database(admin_conn, "terminate_me")


def test_drop_database_with_live_session_needs_force(admin_conn, pg_settings: PostgresSettings) -> None:
    create_database(admin_conn, "drop_me")
    assert create_database(admin_conn, "drop_me") is False  # idempotent
    live = connect(pg_settings.with_database("drop_me"))
    try:
        with pytest.raises(DatabaseError, match="live session"):
            drop_database(admin_conn, "drop_me")
        assert database_exists(admin_conn, "drop_me")
        assert drop_database(admin_conn, "drop_me", force=True) is True
        assert not database_exists(admin_conn, "drop_me")
    finally:
        live.close()
    assert drop_database(admin_conn, "drop_me") is False


@pytest.mark.parametrize("name", ["postgres", "template1"])
def test_drop_refuses_maintenance_database(admin_conn, name: str) -> None:
    with pytest.raises(DatabaseError, match="maintenance database"):
        drop_database(admin_conn, name, force=True)


def test_database_names_are_quoted(admin_conn) -> None:
    name = 'odd "name"; DROP DATABASE energy; --'
    assert create_database(admin_conn, name) is True
    assert database_exists(admin_conn, name)
    assert database_exists(admin_conn, "energy")
    assert drop_database(admin_conn, name) is True
