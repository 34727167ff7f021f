"""Root CA rollover on the real cluster: clients connect before, during and after the overlap.

Client-certificate authentication is on, so the server's trust (ssl_ca_file, the bundle) matters too.
The end of the overlap is simulated by retiring the previous root with `now` past its expiry; the
faketime test lets the real clock run past a root's expiry.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography import x509

from energy_assets.cli import main
from energy_assets.errors import DatabaseError
from energy_assets.postgres.cluster import ManagedCluster
from energy_assets.postgres.connection import connect
from energy_assets.postgres.tls_probe import presented_certificate
from energy_assets.settings import DataHome
from energy_assets.tls.ca import CertificateAuthority
from energy_assets_tests.conftest import make_data_home


@pytest.fixture
def cluster(monkeypatch) -> Iterator[ManagedCluster]:
    home = DataHome(make_data_home("energy_assets_rollover_"))
    monkeypatch.setenv("ENERGY_ASSETS_HOME", str(home.root))
    monkeypatch.delenv("ENERGY_PG_URL", raising=False)
    CertificateAuthority.init(home.ca_dir, validity_days=450)  # not yet due (due below 400 days)
    managed = ManagedCluster(home, client_cert_auth=True)
    managed.ensure_running()
    yield managed
    managed.stop()
    shutil.rmtree(home.root, ignore_errors=True)


def _client_dn(settings) -> str:
    with connect(settings) as conn:
        return conn.execute("SELECT client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


def test_clients_connect_before_during_and_after_the_overlap(cluster: ManagedCluster, capsys) -> None:
    old_root = CertificateAuthority(cluster.home.ca_dir).certificate
    old_root_only = cluster.home.root / "old-root.pem"
    shutil.copyfile(cluster.home.ca_dir / "ca.crt", old_root_only)

    # Before: everything comes from the old root.
    before = cluster.settings()
    assert _client_dn(before) == "/CN=energy_admin"
    assert presented_certificate("127.0.0.1", cluster.config.port).issuer == old_root.subject

    # During: a new root issues the server's leaf; clients trust both roots through the bundle.
    assert main(["ca", "rollover"]) == 0
    out = capsys.readouterr().out
    ca = CertificateAuthority(cluster.home.ca_dir)
    new_root = ca.certificate
    assert f"New root CA serial {new_root.serial_number:x}" in out
    assert new_root.subject != old_root.subject
    assert ca.previous_certificate == old_root
    assert len(x509.load_pem_x509_certificates(ca.trust_bundle_path.read_bytes())) == 2
    assert presented_certificate("127.0.0.1", cluster.config.port).issuer == new_root.subject
    during = cluster.settings()
    assert during.sslcert != before.sslcert  # a client certificate from the new root
    assert _client_dn(during) == "/CN=energy_admin"
    assert _client_dn(before) == "/CN=energy_admin"  # old-root client certificate still accepted
    with pytest.raises(DatabaseError, match="certificate verify failed"):
        connect(during.replace(sslrootcert=str(old_root_only)))  # why clients need the bundle
    assert main(["ca", "status"]) == 0
    assert "previous root, trusted until it expires" in capsys.readouterr().out

    # After: the old root expired, it is retired; new-root clients still connect, old-root ones do not.
    assert ca.retire_previous_if_expired(now=old_root.not_valid_after_utc + timedelta(seconds=1)) is True
    assert cluster.maintain_certificates() == ["published the trust bundle and CRL to the server"]
    assert x509.load_pem_x509_certificates(ca.trust_bundle_path.read_bytes()) == [new_root]
    assert not ca.previous_directory.exists()
    assert (ca.directory / "retired" / f"{old_root.serial_number:040x}.crt").exists()
    assert _client_dn(cluster.settings()) == "/CN=energy_admin"
    with pytest.raises(DatabaseError):
        connect(before)
    assert main(["ca", "status"]) == 0
