"""Connection settings are secure by default: verify-full, a named CA, and unverified modes refused."""

from __future__ import annotations

import os
import pwd
import socket
from pathlib import Path

import pytest

from energy_assets.errors import ConfigurationError, DatabaseError
from energy_assets.postgres.connection import KNOWN_SSLMODES, PostgresSettings, connect
from energy_assets.postgres.settings_from_env import external_settings, libpq_env_defaults
from energy_assets.tls.ca import CertificateAuthority

UNVERIFIED_SSLMODES = [mode for mode in KNOWN_SSLMODES if mode != "verify-full"]


def minimal_settings(**changes: object) -> PostgresSettings:
    values: dict = {"host": "db.example", "port": 5432, "dbname": "energy", "user": "app", **changes}
    return PostgresSettings(**values)


def test_the_default_sslmode_is_verify_full() -> None:
    settings = minimal_settings()
    assert settings.sslmode == "verify-full"
    assert settings.params()["sslmode"] == "verify-full"
    assert "sslmode=verify-full" in settings.uri()


def test_a_uri_without_sslmode_verifies() -> None:
    settings = PostgresSettings.from_uri("postgresql://app@db.example/energy")
    assert (settings.host, settings.port, settings.dbname, settings.user) == (
        "db.example",
        5432,
        "energy",
        "app",
    )
    assert settings.sslmode == "verify-full"


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="sslmode='verify_full' is not a libpq sslmode"):
        minimal_settings(sslmode="verify_full")


def test_params_leave_out_unset_values_and_keep_the_password() -> None:
    settings = minimal_settings(password="pw", sslrootcert="/ca.crt", sslcrl="/crl.pem")
    assert settings.params() == {
        "host": "db.example",
        "port": "5432",
        "dbname": "energy",
        "user": "app",
        "password": "pw",
        "sslmode": "verify-full",
        "sslrootcert": "/ca.crt",
        "sslcrl": "/crl.pem",
        "connect_timeout": "10",
        "application_name": "energy_assets",
    }
    assert settings.uri() == (
        "postgresql://app@db.example:5432/energy?sslmode=verify-full&sslrootcert=/ca.crt&sslcrl=/crl.pem"
        "&connect_timeout=10"
    )
    assert "pw" not in repr(settings) and "pw" not in settings.describe()
    assert settings.describe() == "app@db.example:5432/energy (sslmode=verify-full)"


def test_ipv6_hosts_are_bracketed_in_uris() -> None:
    settings = minimal_settings(host="::1", password="p w")
    assert settings.uri(with_password=True).startswith("postgresql://app:p%20w@[::1]:5432/energy?")


def test_a_full_uri_round_trips_every_field() -> None:
    uri = (
        "postgresql://app%2Fuser:p%40ss%2Fw%3Ard@db.example:6543/energy%2Fdata?sslmode=verify-full"
        "&sslrootcert=/etc/ca.crt&sslcert=/etc/client.crt&sslkey=/etc/client.key&sslcrl=/etc/crl.pem"
        "&hostaddr=10.0.0.5&connect_timeout=3"
    )
    settings = PostgresSettings.from_uri(uri)
    assert settings == PostgresSettings(
        host="db.example",
        port=6543,
        dbname="energy/data",
        user="app/user",
        password="p@ss/w:rd",
        sslmode="verify-full",
        sslrootcert="/etc/ca.crt",
        sslcert="/etc/client.crt",
        sslkey="/etc/client.key",
        sslcrl="/etc/crl.pem",
        hostaddr="10.0.0.5",
        connect_timeout=3,
    )
    assert settings.uri(with_password=True) == (
        "postgresql://app%2Fuser:p%40ss%2Fw%3Ard@db.example:6543/energy%2Fdata?sslmode=verify-full"
        "&sslrootcert=/etc/ca.crt&sslcert=/etc/client.crt&sslkey=/etc/client.key&sslcrl=/etc/crl.pem"
        "&hostaddr=10.0.0.5&connect_timeout=3"
    )
    assert PostgresSettings.from_uri(settings.uri(with_password=True)) == settings
    assert (
        settings.params()["sslcert"] == "/etc/client.crt" and settings.params()["sslkey"] == "/etc/client.key"
    )


def test_a_bare_uri_falls_back_to_libpq_defaults() -> None:
    """libpq's defaults (user: the OS user, database: the user), but TCP to localhost, not a Unix socket."""
    settings = PostgresSettings.from_uri("postgresql://")
    os_user = pwd.getpwuid(os.geteuid()).pw_name
    assert (settings.host, settings.port, settings.dbname, settings.user, settings.password) == (
        "localhost",
        5432,
        os_user,
        os_user,
        None,
    )
    assert (settings.hostaddr, settings.connect_timeout, settings.sslrootcert) == (None, 10, None)
    defaults = {"hostaddr": "127.0.0.1", "connect_timeout": "4", "password": "from-env"}
    assert PostgresSettings.from_uri("postgresql://app@db.example/energy", defaults).replace(
        application_name="x"
    ) == minimal_settings(hostaddr="127.0.0.1", connect_timeout=4, password="from-env", application_name="x")


def test_empty_values_are_left_out_of_params() -> None:
    params = minimal_settings(sslcrl="", sslcert="", password="").params()
    assert not {"sslcrl", "sslcert", "password"} & params.keys()


def test_libpq_variables_are_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSSLCRL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PGHOST", "from-process")
    monkeypatch.setenv("PGSSLROOTCERT", __file__)
    assert libpq_env_defaults() == {"host": "from-process", "sslrootcert": __file__}


def test_only_postgresql_uris_are_accepted() -> None:
    with pytest.raises(ConfigurationError, match="must be a postgresql:// URI, got scheme 'mysql'"):
        PostgresSettings.from_uri("mysql://app@db.example/energy")
    assert PostgresSettings.from_uri("postgres://app@db.example/energy").host == "db.example"


@pytest.mark.parametrize("sslmode", UNVERIFIED_SSLMODES)
def test_energy_pg_url_that_does_not_verify_the_server_is_refused(sslmode: str) -> None:
    url = f"postgresql://app@db.example:5432/energy?sslmode={sslmode}&sslrootcert={__file__}"
    with pytest.raises(
        ConfigurationError, match=f"ENERGY_PG_URL asks for sslmode={sslmode}, which does not verify"
    ):
        external_settings(url, environ={})


def test_the_refusals_say_what_to_do() -> None:
    with pytest.raises(ConfigurationError) as unverified:
        external_settings("postgresql://app@db.example/energy?sslmode=require", environ={})
    assert str(unverified.value) == (
        "ENERGY_PG_URL asks for sslmode=require, which does not verify the server. Use sslmode=verify-full "
        "with sslrootcert=<CA file> (or set allow_unverified_tls on the resource if you really mean it)."
    )
    with pytest.raises(ConfigurationError) as no_ca:
        external_settings("postgresql://app@db.example/energy", environ={})
    assert str(no_ca.value) == (
        "ENERGY_PG_URL uses verify-full but names no CA: add sslrootcert=<CA file> to the URI or set "
        "PGSSLROOTCERT."
    )


@pytest.mark.parametrize("sslmode", UNVERIFIED_SSLMODES)
def test_pgsslmode_that_does_not_verify_is_refused_too(sslmode: str) -> None:
    with pytest.raises(ConfigurationError, match=f"sslmode={sslmode}"):
        external_settings(
            "postgresql://app@db.example/energy", environ={"PGSSLMODE": sslmode, "PGSSLROOTCERT": __file__}
        )


def test_unverified_tls_only_when_asked_for_explicitly() -> None:
    settings = external_settings(
        "postgresql://app@db.example/energy?sslmode=require", environ={}, allow_unverified_tls=True
    )
    assert (settings.sslmode, settings.sslrootcert) == ("require", None)


def test_verify_full_needs_an_existing_ca_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="names no CA: add sslrootcert"):
        external_settings("postgresql://app@db.example/energy?sslmode=verify-full", environ={})
    missing = tmp_path / "missing-ca.crt"
    with pytest.raises(ConfigurationError, match=f"sslrootcert={missing} .* does not exist"):
        external_settings(f"postgresql://app@db.example/energy?sslrootcert={missing}", environ={})


def test_the_uri_wins_over_pg_variables_and_arguments_win_over_both(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("ca")
    environ = {
        "PGHOST": "env-host",
        "PGPORT": "6543",
        "PGUSER": "env-user",
        "PGPASSWORD": "env-password",
        "PGDATABASE": "env-db",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/env/ca.crt",
        "PGSSLCERT": "/env/client.crt",
        "PGSSLKEY": "/env/client.key",
        "PGSSLCRL": "/env/crl.pem",
        "PGAPPNAME": "from-env",
        "PGSSLCOMPRESSION": "",
    }
    assert libpq_env_defaults(environ) == {
        "application_name": "from-env",
        "host": "env-host",
        "port": "6543",
        "user": "env-user",
        "password": "env-password",
        "dbname": "env-db",
        "sslmode": "verify-full",
        "sslrootcert": "/env/ca.crt",
        "sslcert": "/env/client.crt",
        "sslkey": "/env/client.key",
        "sslcrl": "/env/crl.pem",
    }
    settings = external_settings(
        "postgresql://app@db.example/energy",
        password="argument-password",
        sslrootcert=str(ca_file),
        environ=environ,
    )
    assert (settings.host, settings.port, settings.user, settings.dbname) == (
        "db.example",
        6543,
        "app",
        "energy",
    )
    assert (settings.password, settings.sslrootcert) == ("argument-password", str(ca_file))
    assert (settings.sslcert, settings.sslkey, settings.sslcrl) == (
        "/env/client.crt",
        "/env/client.key",
        "/env/crl.pem",
    )
    from_env = external_settings("postgresql:///", environ={**environ, "PGSSLROOTCERT": str(ca_file)})
    assert (from_env.host, from_env.user, from_env.dbname, from_env.password) == (
        "env-host",
        "env-user",
        "env-db",
        "env-password",
    )


def test_default_settings_refuse_a_server_signed_by_another_ca(
    pg_settings: PostgresSettings, tmp_path: Path
) -> None:
    """Built with nothing but host, port, names and a CA, settings really verify the server."""
    other_ca, _ = CertificateAuthority.init(tmp_path / "other-ca")
    settings = PostgresSettings(
        host="localhost",
        hostaddr="127.0.0.1",
        port=pg_settings.port,
        dbname="energy",
        user=pg_settings.user,
        password=pg_settings.password,
        sslrootcert=str(other_ca.ca_cert_path),
    )
    with pytest.raises(DatabaseError, match="certificate verify failed"):
        connect(settings)
    with connect(settings.replace(sslrootcert=pg_settings.sslrootcert)) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_connect_passes_options_and_explains_failures(pg_settings: PostgresSettings) -> None:
    from psycopg.rows import dict_row

    with connect(pg_settings) as conn:
        assert conn.autocommit is False
    with connect(pg_settings, autocommit=True, row_factory=dict_row) as conn:
        assert conn.autocommit is True
        assert conn.execute("SELECT current_database() AS db").fetchone() == {"db": "energy"}
    wrong = pg_settings.replace(password="not-the-password")
    with pytest.raises(DatabaseError) as error:
        connect(wrong)
    message = str(error.value)
    assert message.startswith(f"Cannot connect to PostgreSQL at {wrong.describe()}: ")
    assert "password authentication failed" in message
    assert message.endswith(
        ". Check ENERGY_PG_URL (or the PG* variables), that the server runs, and that sslrootcert "
        "names the CA that signed the server certificate."
    )
    assert "not-the-password" not in message and pg_settings.password not in message
    assert pg_settings.with_database("dagster") == pg_settings.replace(dbname="dagster")


# ---------------------------------------------------------------------------------------------------------
# libpq's own rules: every parameter kept, several hosts, libpq's parser and its errors


def test_every_libpq_parameter_of_the_url_is_kept() -> None:
    url = (
        f"postgresql://app@db.example/energy?sslrootcert={__file__}&application_name=meters&connect_timeout=4"
        "&target_session_attrs=read-write&keepalives_idle=30&options=-c%20statement_timeout%3D5s"
        "&sslpassword=key-secret"
    )
    settings = external_settings(url, environ={})
    params = settings.params()
    assert {key: params[key] for key in ("application_name", "connect_timeout", "target_session_attrs")} == {
        "application_name": "meters",
        "connect_timeout": "4",
        "target_session_attrs": "read-write",
    }
    assert (params["keepalives_idle"], params["options"], params["sslpassword"]) == (
        "30",
        "-c statement_timeout=5s",
        "key-secret",
    )
    assert settings.uri() == (
        f"postgresql://app@db.example:5432/energy?sslmode=verify-full&sslrootcert={__file__}&connect_timeout=4"
        "&application_name=meters&options=-c%20statement_timeout%3D5s&keepalives_idle=30"
        "&target_session_attrs=read-write"
    )
    assert "key-secret" not in repr(settings) + settings.describe() + settings.uri()
    assert PostgresSettings.from_uri(settings.uri(with_password=True)) == settings


def test_unknown_parameters_are_libpqs_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as unknown:
        external_settings(
            f"postgresql://app:s3cret@db.example/energy?sslrootcert={__file__}&colour=red", environ={}
        )
    assert str(unknown.value).startswith(
        'ENERGY_PG_URL is not a libpq connection string: invalid URI query parameter: "colour". Use '
    )
    with pytest.raises(ConfigurationError) as encoding:
        external_settings("postgresql://app:s3cret%zz@db.example/energy", environ={})
    assert "invalid percent-encoded token" in str(encoding.value) and "s3cret" not in str(encoding.value)


def test_a_multi_host_uri_keeps_every_host() -> None:
    url = f"postgresql://app@db1.example:5432,db2.example:5433/energy?sslrootcert={__file__}"
    settings = external_settings(url, environ={})
    assert (settings.host, settings.port) == ("db1.example,db2.example", "5432,5433")
    assert settings.hosts() == [("db1.example", "5432"), ("db2.example", "5433")]
    assert settings.describe() == "app@db1.example:5432,db2.example:5433/energy (sslmode=verify-full)"
    assert settings.uri() == (
        "postgresql://app@/energy?host=db1.example,db2.example&port=5432,5433&sslmode=verify-full"
        f"&sslrootcert={__file__}&connect_timeout=10"
    )
    assert PostgresSettings.from_uri(settings.uri()) == settings
    one_port = external_settings(
        f"postgresql://app@a.example,b.example:6543/energy?sslrootcert={__file__}", environ={}
    )
    assert one_port.hosts() == [("a.example", "5432"), ("b.example", "6543")]


def test_a_unix_socket_is_refused_it_has_no_tls() -> None:
    with pytest.raises(ConfigurationError) as socket_host:
        external_settings(
            "postgresql:///energy", environ={"PGHOST": "/var/run/postgresql", "PGSSLROOTCERT": __file__}
        )
    assert str(socket_host.value).startswith(
        "ENERGY_PG_URL (or PGHOST) names the Unix socket /var/run/postgresql, where libpq uses no TLS"
    )
    with_address = external_settings(
        f"postgresql:///energy?host=/var/run/postgresql&hostaddr=127.0.0.1&sslrootcert={__file__}", environ={}
    )
    assert with_address.hostaddr == "127.0.0.1"


def test_libpq_parameters_and_several_hosts_reach_the_managed_cluster(pg_settings: PostgresSettings) -> None:
    """The first host refuses connections: libpq moves on to the second, with every parameter applied."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = (
        f"postgresql://{pg_settings.user}@localhost:{closed},localhost:{pg_settings.port}/energy"
        f"?hostaddr=127.0.0.1,127.0.0.1&sslrootcert={pg_settings.sslrootcert}&sslcrl={pg_settings.sslcrl}"
        "&application_name=hardening&target_session_attrs=read-write"
        "&options=-c%20statement_timeout%3D1234"
    )
    settings = external_settings(url, password=pg_settings.password, environ={})
    with connect(settings) as conn:
        assert conn.info.port == pg_settings.port
        assert conn.execute(
            "SELECT current_setting('application_name'), current_setting('statement_timeout'), s.ssl "
            "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()"
        ).fetchone() == ("hardening", "1234ms", True)
