"""Connection services (PGSERVICEFILE + PGSERVICE or service=) and passfiles (PGPASSFILE), as libpq reads them.

The end-to-end cases reach the session's managed cluster over verify-full with nothing but a service file
and a passfile in the environment, through psycopg 3 (energy data) and SQLAlchemy + psycopg2 (Dagster).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy

from energy_assets.errors import ConfigurationError
from energy_assets.instance.home import dagster_storage_url
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.service_file import service_parameters
from energy_assets.postgres.settings_from_env import external_settings


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def service_file(tmp_path: Path, settings: PostgresSettings, **overrides: str | None) -> Path:
    """A service file whose [energy_test] section points at the managed cluster (no password)."""
    section = {
        "host": "localhost",
        "hostaddr": "127.0.0.1",
        "port": str(settings.port),
        "dbname": "energy",
        "user": settings.user,
        "sslmode": "verify-full",
        "sslrootcert": settings.sslrootcert,
        "sslcrl": settings.sslcrl,
        "application_name": "from_service",
        **overrides,
    }
    lines = ["# written by the test", "[other]", "host=wrong.example", "", "[energy_test]"]
    lines += [f"{key}={value}" for key, value in section.items() if value is not None]
    return write_private(tmp_path / "pg_service.conf", "\n".join(lines) + "\n[after]\nport=1\n")


@pytest.fixture
def service_environment(
    pg_settings: PostgresSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """PGSERVICEFILE and PGPASSFILE in the process environment, as an operator would set them."""
    for variable in ("PGSERVICE", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE"):
        monkeypatch.delenv(variable, raising=False)
    passfile = write_private(
        tmp_path / "pgpass", f"*:{pg_settings.port}:*:{pg_settings.user}:{pg_settings.password}\n"
    )
    monkeypatch.setenv("PGSERVICEFILE", str(service_file(tmp_path, pg_settings)))
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    return passfile


@pytest.mark.parametrize("named_in", ["PGSERVICE", "the URL"])
def test_a_service_file_and_a_passfile_reach_the_managed_cluster(
    named_in: str,
    service_environment: Path,
    pg_settings: PostgresSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if named_in == "PGSERVICE":
        monkeypatch.setenv("PGSERVICE", "energy_test")
        url = "postgresql://"
    else:
        url = "postgresql://?service=energy_test"
    settings = external_settings(url)
    assert (
        settings.describe() == f"{pg_settings.user}@localhost:{pg_settings.port}/energy (sslmode=verify-full)"
    )
    assert (settings.password, settings.passfile, settings.extra["service"]) == (
        None,
        str(service_environment),
        "energy_test",
    )
    with connect(settings) as conn:
        assert conn.execute(
            "SELECT current_user, current_setting('application_name'), s.ssl "
            "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"
        ).fetchone() == (pg_settings.user, "from_service", True)

    # Dagster's storage (SQLAlchemy + psycopg2, its own libpq) with the URL `dagster env` exports.
    storage_url = dagster_storage_url(settings)
    assert "service=energy_test" in storage_url and f"passfile={service_environment}" in storage_url
    assert str(pg_settings.password) not in storage_url
    engine = sqlalchemy.create_engine(storage_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(
                sqlalchemy.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar_one()
    finally:
        engine.dispose()


def test_the_url_wins_over_the_service_and_the_service_over_the_environment(
    service_environment: Path, pg_settings: PostgresSettings
) -> None:
    settings = external_settings(
        "postgresql://?service=energy_test&application_name=from_url",
        environ={"PGSERVICEFILE": str(service_file(service_environment.parent, pg_settings)), "PGPORT": "1"},
    )
    assert (settings.application_name, settings.port) == ("from_url", pg_settings.port)


def test_a_service_that_does_not_verify_is_refused(
    service_environment: Path, pg_settings: PostgresSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = service_environment.parent
    monkeypatch.setenv("PGSERVICE", "energy_test")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file(folder, pg_settings, sslmode="require")))
    with pytest.raises(ConfigurationError) as unverified:
        external_settings("postgresql://")
    assert str(unverified.value) == (
        "ENERGY_PG_URL asks for sslmode=require, which does not verify the server. Use sslmode=verify-full "
        "with sslrootcert=<CA file> (or set allow_unverified_tls on the resource if you really mean it)."
    )
    # What the URL says wins over the service, as in libpq.
    assert external_settings("postgresql://?sslmode=verify-full").sslmode == "verify-full"
    monkeypatch.setenv("PGSERVICEFILE", str(service_file(folder, pg_settings, sslrootcert=None)))
    with pytest.raises(ConfigurationError) as no_ca:
        external_settings("postgresql://")
    assert str(no_ca.value) == (
        "ENERGY_PG_URL uses verify-full but names no CA: add sslrootcert=<CA file> to the URI or set "
        "PGSSLROOTCERT."
    )


def test_service_lookup_follows_libpq(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".pg_service.conf").write_text("[a]\nhost=from-home\nhost=second-ignored\nport=6543\n")
    sysconf = tmp_path / "etc"
    sysconf.mkdir()
    (sysconf / "pg_service.conf").write_text(
        "[a]\nhost=from-sysconf\n[b]\n  # indented comment\nhost=b-host\n"
    )
    environ = {"HOME": str(home), "PGSYSCONFDIR": str(sysconf)}
    assert service_parameters("a", environ) == {"host": "from-home", "port": "6543"}
    assert service_parameters("b", environ) == {"host": "b-host"}
    with pytest.raises(ConfigurationError) as missing:
        service_parameters("c", environ)
    assert str(missing.value) == (
        f"Connection service 'c' (from PGSERVICE or service=) is not defined in {home}/.pg_service.conf, "
        f"{sysconf}/pg_service.conf; add a [c] section there or point PGSERVICEFILE at the file that has it."
    )
    broken = tmp_path / "broken.conf"
    broken.write_text("[a]\nhost = spaced\n")
    with pytest.raises(
        ConfigurationError, match=rf"{broken}, line 2: 'host ' is not a libpq connection parameter"
    ):
        service_parameters("a", {"PGSERVICEFILE": str(broken)})
    with pytest.raises(ConfigurationError, match="PGSERVICEFILE=/nonexistent/pg_service.conf does not exist"):
        service_parameters("a", {"PGSERVICEFILE": "/nonexistent/pg_service.conf"})
