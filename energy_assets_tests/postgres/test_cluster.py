"""Lifecycle of the managed cluster, and the errors for bad setups (each with its own data home)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from energy_assets.errors import ClusterError, ConfigurationError, DatabaseError
from energy_assets.postgres.binaries import PostgresBinaries, find_binaries
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.settings_from_env import external_settings
from energy_assets.settings import DataHome
from energy_assets.tls.ca import InsecureKeyFileError
from energy_assets_tests.conftest import make_data_home


@pytest.fixture
def fresh_home():
    path = make_data_home("energy_assets_cluster_")
    yield DataHome(path)
    cluster = ManagedCluster(DataHome(path))
    if (cluster.data_dir / "PG_VERSION").exists():
        cluster.stop()
    shutil.rmtree(path, ignore_errors=True)


def test_start_stop_status_are_idempotent(fresh_home: DataHome) -> None:
    cluster = ManagedCluster(fresh_home)
    assert cluster.status().initialized is False
    assert cluster.start() is True
    assert cluster.start() is False
    status = cluster.status()
    assert status.running and status.initialized
    assert "running on 127.0.0.1" in status.describe()
    hba = (cluster.data_dir / "pg_hba.conf").read_text()
    assert "hostnossl  all       all   0.0.0.0/0      reject" in hba
    assert "hostssl    all       all   127.0.0.1/32   scram-sha-256" in hba
    conf = (cluster.data_dir / "energy_assets.conf").read_text()
    assert "ssl_min_protocol_version = 'TLSv1.2'" in conf
    assert cluster.stop() is True
    assert cluster.stop() is False
    assert cluster.status().running is False
    # Restart keeps the same port and data.
    port = cluster.config.port
    settings = cluster.ensure_running()
    assert settings.port == port
    with connect(settings) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("energy",)
    if os.geteuid() == 0:
        assert (cluster.data_dir / "PG_VERSION").stat().st_uid == __import__("pwd").getpwnam(
            "postgres"
        ).pw_uid
    assert oct(cluster.password_path.stat().st_mode & 0o777) == "0o600"


def test_port_in_use_gives_a_clear_error(fresh_home: DataHome) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        cluster = ManagedCluster(fresh_home, port=port)
        with pytest.raises(ClusterError, match=f"Port {port} on 127.0.0.1 is in use.*ENERGY_PG_PORT"):
            cluster.start()


def test_a_refused_port_is_not_kept(fresh_home: DataHome, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 1 needs privileges the server user lacks: the start fails, says what to do, and keeps nothing."""
    monkeypatch.setenv("ENERGY_PG_PORT", "1")
    with pytest.raises(ClusterError) as refused:
        ManagedCluster(fresh_home).start()
    kept = json.loads((fresh_home.cluster_dir / "cluster.json").read_text())["port"]
    assert kept != 1
    message = str(refused.value)
    assert message.startswith("PostgreSQL cannot listen on 127.0.0.1:1 (permission denied")
    assert (
        f"The cluster keeps port {kept}: unset ENERGY_PG_PORT to start on it, or set ENERGY_PG_PORT to a free "
        "port from 1024 to 65535, and run `energy-assets db start` again."
    ) in message
    monkeypatch.delenv("ENERGY_PG_PORT")
    cluster = ManagedCluster(fresh_home)
    assert cluster.start() is True
    assert cluster.config.port == kept
    assert f"*:{kept}:*:energy_admin:" in cluster.passfile_path.read_text()
    with connect(cluster.settings("postgres")) as conn:
        assert conn.execute("SHOW port").fetchone() == (str(kept),)


def test_a_refused_port_already_in_cluster_json_says_how_to_move(
    fresh_home: DataHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cluster.json holding port 1 (written by an older version) is left by setting ENERGY_PG_PORT."""
    cluster = ManagedCluster(fresh_home)
    cluster.initialize()
    config = json.loads(cluster.config_path.read_text())
    cluster.config_path.write_text(json.dumps({**config, "port": 1}))
    with pytest.raises(ClusterError) as refused:
        cluster.start()
    assert (
        "Set ENERGY_PG_PORT to a free port from 1024 to 65535 and run `energy-assets db start` again."
    ) in str(refused.value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    monkeypatch.setenv("ENERGY_PG_PORT", str(free))
    assert ManagedCluster(fresh_home).start() is True
    assert cluster.config.port == free


def test_missing_binaries_say_how_to_install(fresh_home: DataHome, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ENERGY_PG_BINDIR", str(tmp_path))
    with pytest.raises(ClusterError, match="apt-get install postgresql.*ENERGY_PG_URL"):
        find_binaries()
    with pytest.raises(ClusterError, match="does not contain initdb"):
        ManagedCluster(fresh_home).start()
    assert not (fresh_home.cluster_dir / "data").exists()


def test_failed_initdb_leaves_nothing_behind(fresh_home: DataHome) -> None:
    real = find_binaries()
    broken = fresh_home.root / "bin"
    broken.mkdir()
    os.chmod(broken, 0o755)
    (broken / "initdb").write_text(
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'initdb (PostgreSQL) 15.0'; exit 0; fi\necho 'initdb: simulated failure' >&2\nexit 1\n"
    )
    (broken / "pg_ctl").symlink_to(real.pg_ctl)
    os.chmod(broken / "initdb", 0o755)
    cluster = ManagedCluster(fresh_home, binaries=PostgresBinaries(broken, 15))
    with pytest.raises(ClusterError, match="simulated failure"):
        cluster.initialize()
    assert not cluster.data_dir.exists()
    assert not cluster.config_path.exists()
    assert list(cluster.directory.glob("data.initdb-*")) == []
    # The next attempt with working binaries succeeds.
    assert ManagedCluster(fresh_home, binaries=real).initialize() is True


def test_unreachable_home_for_server_user_is_explained(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root switches to an unprivileged server user")
    private = tmp_path / "private"  # pytest's tmp dirs are 0700: the postgres user cannot enter
    cluster = ManagedCluster(DataHome(private))
    with pytest.raises(ClusterError, match="cannot enter"):
        cluster.initialize()


def test_world_readable_ca_key_is_refused(fresh_home: DataHome) -> None:
    cluster = ManagedCluster(fresh_home)
    ca = cluster.certificate_authority()
    os.chmod(ca.ca_key_path, 0o644)
    key = re.escape(str(ca.ca_key_path))
    with pytest.raises(
        InsecureKeyFileError, match=f"{key} has mode 0644, readable by group or others.*chmod 600 {key}"
    ):
        cluster.certificate_authority()
    assert not cluster.data_dir.exists()


def test_unreachable_external_server_names_it(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("placeholder")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = external_settings(
        f"postgresql://app@127.0.0.1:{port}/energy?sslmode=verify-full&sslrootcert={ca_file}", environ={}
    )
    with pytest.raises(DatabaseError, match=f"127.0.0.1:{port}/energy"):
        connect(settings.replace(connect_timeout=2))


def test_external_url_must_verify(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="sslmode=require"):
        external_settings("postgresql://app@db.example:5432/energy?sslmode=require", environ={})
    with pytest.raises(ConfigurationError, match="names no CA"):
        external_settings("postgresql://app@db.example:5432/energy", environ={})
    settings = external_settings(
        "postgresql://app@db.example/energy",
        environ={"PGSSLROOTCERT": __file__, "PGPASSWORD": "s3cret", "PGPORT": "6543"},
    )
    assert (settings.port, settings.sslmode, settings.sslrootcert) == (6543, "verify-full", __file__)
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.uri()
    assert "s3cret" in settings.uri(with_password=True)


def test_settings_uri_round_trip() -> None:
    settings = PostgresSettings(
        host="localhost",
        port=5433,
        dbname="energy",
        user="energy admin",
        password="p@ss:word",
        sslrootcert="/x/ca.crt",
    )
    again = PostgresSettings.from_uri(settings.uri(with_password=True))
    assert again == settings.replace(application_name="energy_assets")


def test_client_certificate_auth_option(fresh_home: DataHome) -> None:
    cluster = ManagedCluster(fresh_home, client_cert_auth=True)
    settings = cluster.ensure_running()
    assert settings.sslcert and settings.sslkey
    with connect(settings) as conn:
        assert conn.execute(
            "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone() == (
            True,
            "/CN=energy_admin",
        )
    with pytest.raises(DatabaseError, match="certificate"):
        connect(settings.replace(sslcert=None, sslkey=None))
    # A revoked client certificate is refused once the server has the new CRL.
    ca = cluster.certificate_authority()
    serial = next(c.serial for c in ca.issued() if c.kind == "client" and c.key_path == Path(settings.sslkey))
    ca.revoke(serial)
    cluster.refresh_crl()
    with pytest.raises(DatabaseError, match="certificate revoked"):
        connect(settings)
