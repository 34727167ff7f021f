"""TLS against the real managed cluster: what connects, what is refused, and rotation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from energy_assets.errors import CertificateError, DatabaseError
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import PostgresSettings, connect
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.tls.ca import CertificateAuthority


def test_verify_full_connection_uses_tls(pg_settings: PostgresSettings) -> None:
    assert pg_settings.sslmode == "verify-full"
    with connect(pg_settings) as conn:
        ssl, version = conn.execute(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert ssl is True
    assert version in ("TLSv1.2", "TLSv1.3")


def test_client_trusting_another_ca_fails(pg_settings: PostgresSettings, tmp_path) -> None:
    other_ca, _ = CertificateAuthority.init(tmp_path / "other-ca")
    with pytest.raises(DatabaseError, match="certificate verify failed"):
        connect(pg_settings.replace(sslrootcert=str(other_ca.ca_cert_path)))


def test_plain_tcp_is_refused(pg_settings: PostgresSettings) -> None:
    with pytest.raises(DatabaseError, match="no encryption"):
        connect(pg_settings.replace(sslmode="disable"))


def test_host_name_missing_from_san_fails(pg_settings: PostgresSettings) -> None:
    # hostaddr keeps the socket on loopback; host is what verify-full checks against the SAN.
    with pytest.raises(DatabaseError, match="does not match host name"):
        connect(pg_settings.replace(host="db.not-in-the-san.example"))


def test_ip_address_in_san_verifies(pg_settings: PostgresSettings) -> None:
    with connect(pg_settings.replace(host="127.0.0.1", hostaddr=None)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_rotate_server_certificate_new_connection_sees_new_serial(
    managed_cluster: ManagedCluster, pg_settings: PostgresSettings
) -> None:
    before = presented_certificate("127.0.0.1", pg_settings.port).serial_number
    with connect(pg_settings) as conn:
        pid_before = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    issued = managed_cluster.rotate_server_certificate()
    assert issued.serial != before
    assert presented_certificate("127.0.0.1", pg_settings.port).serial_number == issued.serial
    with connect(pg_settings) as conn:
        # Reloaded, not restarted: the postmaster start time is unchanged.
        assert conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0] == pid_before
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


def test_expired_server_certificate_fails_verify_full(
    managed_cluster: ManagedCluster, pg_settings: PostgresSettings
) -> None:
    ca = managed_cluster.certificate_authority()
    now = datetime.now(timezone.utc)
    expired = ca.issue_server_certificate(
        ["localhost"],
        ["127.0.0.1"],
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    managed_cluster.install_server_certificate(expired)
    try:
        with pytest.raises(DatabaseError, match="certificate verify failed"):
            connect(pg_settings)
    finally:
        managed_cluster.rotate_server_certificate()
    with connect(pg_settings) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_reload_that_keeps_old_certificate_is_detected(
    managed_cluster: ManagedCluster, pg_settings: PostgresSettings
) -> None:
    """A key that does not match its certificate makes PostgreSQL keep the old one; we notice."""
    ca = managed_cluster.certificate_authority()
    good = ca.issue_server_certificate(["localhost"], ["127.0.0.1", "::1"])
    other = ca.issue_server_certificate(["localhost"], ["127.0.0.1", "::1"])
    mismatched = type(good)(**{**good.__dict__, "key_path": other.key_path})
    served_before = presented_certificate("127.0.0.1", pg_settings.port).serial_number
    try:
        with pytest.raises(CertificateError, match="kept its old certificate"):
            managed_cluster.install_server_certificate(mismatched, verify_timeout_s=2)
        assert presented_certificate("127.0.0.1", pg_settings.port).serial_number == served_before
    finally:
        managed_cluster.rotate_server_certificate()


def test_scram_password_is_required(pg_settings: PostgresSettings) -> None:
    with pytest.raises(DatabaseError, match="password authentication failed"):
        connect(pg_settings.replace(password="wrong"))


def test_pg_stat_ssl_sees_tls_for_psycopg_raw(pg_settings: PostgresSettings) -> None:
    """A bare psycopg connection with the settings' parameters is itself on TLS (its own backend)."""
    with psycopg.connect(**pg_settings.params()) as conn:
        row = conn.execute(
            "SELECT s.ssl, s.version, a.application_name FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE pid = pg_backend_pid()"
        ).fetchone()
    assert row[0] is True
    assert row[1] in ("TLSv1.2", "TLSv1.3")
    assert row[2] == pg_settings.application_name


def test_managed_settings_check_the_crl_so_a_revoked_server_certificate_is_refused(
    managed_cluster: ManagedCluster, pg_settings: PostgresSettings
) -> None:
    ca = managed_cluster.certificate_authority()
    settings = managed_cluster.settings("energy")
    assert settings.sslcrl == str(ca.crl_path)
    assert settings.params()["sslcrl"] == str(ca.crl_path)
    served = presented_certificate("127.0.0.1", pg_settings.port).serial_number
    ca.revoke(served)
    try:
        # libpq reports a revoked server certificate as a failed verification.
        with pytest.raises(DatabaseError, match="SSL error: certificate verify failed"):
            connect(settings)
        # Without the CRL the client would still trust the revoked certificate.
        with connect(settings.replace(sslcrl=None)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        issued = managed_cluster.rotate_server_certificate()
    assert presented_certificate("127.0.0.1", pg_settings.port).serial_number == issued.serial != served
    with connect(settings) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
