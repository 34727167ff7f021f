"""Tests for energy_assets.tls.ca: certificate profiles, verification, file safety, CRL and status."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.general_name import DNSName, IPAddress
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from energy_assets.errors import CertificateError
from energy_assets.files import write_atomic
from energy_assets.tls.ca import (
    CertificateAuthority,
    CorruptKeyFileError,
    InsecureKeyFileError,
    certificate_serial_from_pem,
    crl_next_update,
    load_private_key,
    write_private_key,
)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority, created = CertificateAuthority.init(tmp_path / "ca")
    assert created is True
    return authority


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _verify_server(ca: CertificateAuthority, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(name)
    verifier.verify(leaf, [])


# -- the CA itself ---------------------------------------------------------------------------------------


def test_ca_extensions_follow_the_profile(ca: CertificateAuthority) -> None:
    cert = ca.certificate
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "energy_assets local CA"

    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical is True
    assert basic.value.ca is True
    assert basic.value.path_length == 0

    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert usage.value.key_cert_sign is True
    assert usage.value.crl_sign is True
    assert usage.value.digital_signature is True
    assert usage.value.key_encipherment is False

    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(public_key)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc) == timedelta(days=3650)
    assert cert.serial_number.bit_length() > 64


def test_ca_files_and_directory_modes(ca: CertificateAuthority) -> None:
    assert ca.ca_cert_path == ca.directory / "ca.crt"
    assert ca.ca_key_path == ca.directory / "ca.key"
    assert ca.crl_path == ca.directory / "crl.pem"
    assert _mode(ca.directory) == 0o700
    assert _mode(ca.ca_key_path) == 0o600
    assert _mode(ca.ca_cert_path) == 0o644
    assert certificate_serial_from_pem(ca.ca_cert_path) == ca.certificate.serial_number
    # No temp files left behind by the atomic writes.
    assert sorted(p.name for p in ca.directory.iterdir() if p.name.endswith(".tmp")) == []


def test_second_init_keeps_the_same_ca(ca: CertificateAuthority) -> None:
    cert_bytes = ca.ca_cert_path.read_bytes()
    key_bytes = ca.ca_key_path.read_bytes()
    again, created = CertificateAuthority.init(ca.directory, common_name="another name")
    assert created is False
    assert again.certificate.serial_number == ca.certificate.serial_number
    assert again.ca_cert_path.read_bytes() == cert_bytes
    assert again.ca_key_path.read_bytes() == key_bytes


def test_loading_a_missing_ca_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="energy-assets ca init"):
        CertificateAuthority(tmp_path / "nothing-here")


def test_init_refuses_an_expired_ca(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    CertificateAuthority.init(directory, validity_days=1)
    key = load_private_key(directory / "ca.key")
    old = _load_cert(directory / "ca.crt")
    expired = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=timezone.utc))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=timezone.utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_atomic(directory / "ca.crt", expired.public_bytes(serialization.Encoding.PEM))
    before = (directory / "ca.crt").read_bytes()
    with pytest.raises(CertificateError, match=r"expired on 2021-01-01.*energy-assets ca init"):
        CertificateAuthority.init(directory)
    assert (directory / "ca.crt").read_bytes() == before


def test_init_refuses_a_key_that_does_not_match(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    CertificateAuthority.init(directory)
    write_private_key(directory / "ca.key", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError, match=r"ca\.key does not match the CA certificate"):
        CertificateAuthority.init(directory)


def test_init_refuses_a_half_written_ca(tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    CertificateAuthority.init(directory)
    (directory / "ca.crt").unlink()
    with pytest.raises(CertificateError, match=r"ca\.key exists but ca\.crt is missing"):
        CertificateAuthority.init(directory)
    assert not (directory / "ca.crt").exists()


# -- server certificates ---------------------------------------------------------------------------------


def test_server_certificate_profile_and_storage(ca: CertificateAuthority) -> None:
    issued = ca.issue_server_certificate(["db.local", "localhost"], ["127.0.0.1", "::1"])
    cert = _load_cert(issued.cert_path)

    assert issued.kind == "server"
    assert issued.subject_cn == "db.local"
    assert cert.serial_number == issued.serial
    assert issued.cert_path == ca.directory / "issued" / f"{issued.serial:040x}.crt"
    assert issued.key_path == ca.directory / "issued" / f"{issued.serial:040x}.key"
    assert _mode(issued.key_path) == 0o600
    assert _mode(ca.directory / "issued") == 0o700
    assert issued.not_after - issued.not_before == timedelta(days=397)
    assert issued.not_before.tzinfo is not None
    assert cert.not_valid_after_utc == issued.not_after

    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert cert.issuer == ca.certificate.subject

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is False
    assert san.value.get_values_for_type(DNSName) == ["db.local", "localhost"]
    assert san.value.get_values_for_type(IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical is True
    assert usage.value.digital_signature is True
    assert usage.value.key_cert_sign is False
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical is True
    assert basic.value.ca is False
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value.key_identifier == ca_ski.value.digest

    key = load_private_key(issued.key_path)
    assert key.public_key() == public_key


def test_server_certificate_verifies_for_every_san_and_nothing_else(ca: CertificateAuthority) -> None:
    issued = ca.issue_server_certificate(["localhost", "db.local"], ["127.0.0.1", "::1"])
    leaf = _load_cert(issued.cert_path)
    for name in ["localhost", "db.local"]:
        _verify_server(ca, leaf, DNSName(name))
    for address in ["127.0.0.1", "::1"]:
        _verify_server(ca, leaf, IPAddress(ipaddress.ip_address(address)))

    with pytest.raises(VerificationError):
        _verify_server(ca, leaf, DNSName("other.example"))
    with pytest.raises(VerificationError):
        _verify_server(ca, leaf, IPAddress(ipaddress.ip_address("10.0.0.1")))
    # A serverAuth-only certificate must not pass as a client certificate.
    with pytest.raises(VerificationError):
        PolicyBuilder().store(Store([ca.certificate])).build_client_verifier().verify(leaf, [])


def test_server_certificate_with_ip_only_uses_the_ip_as_cn(ca: CertificateAuthority) -> None:
    issued = ca.issue_server_certificate([], ["10.1.2.3"])
    assert issued.subject_cn == "10.1.2.3"
    _verify_server(ca, _load_cert(issued.cert_path), IPAddress(ipaddress.ip_address("10.1.2.3")))


def test_server_certificate_validity_limit(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="between 1 and 397, got 398"):
        ca.issue_server_certificate(["localhost"], validity_days=398)
    with pytest.raises(CertificateError, match="between 1 and 397"):
        ca.issue_client_certificate("loader", validity_days=398)
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="longer than 397 days"):
        ca.issue_server_certificate(["localhost"], not_before=start, not_after=start + timedelta(days=398))
    assert ca.issue_server_certificate(["localhost"], validity_days=30).days_left() == pytest.approx(
        30, abs=0.01
    )


def test_server_certificate_rejects_bad_names(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="at least one DNS name or IP address"):
        ca.issue_server_certificate([])
    with pytest.raises(ValueError, match="'not-an-ip' is not an IPv4 or IPv6 address"):
        ca.issue_server_certificate(["localhost"], ["not-an-ip"])
    with pytest.raises(ValueError, match="lists of strings"):
        ca.issue_server_certificate("localhost")


def test_already_expired_certificate_can_be_issued_for_tests(ca: CertificateAuthority) -> None:
    now = datetime.now(timezone.utc)
    issued = ca.issue_server_certificate(
        ["localhost"], not_before=now - timedelta(days=10), not_after=now - timedelta(days=1)
    )
    assert issued.days_left(now) == pytest.approx(-1, abs=0.001)
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(DNSName("localhost"))
    with pytest.raises(VerificationError, match="not valid at validation time"):
        verifier.verify(_load_cert(issued.cert_path), [])


# -- client certificates ---------------------------------------------------------------------------------


def test_client_certificate_profile(ca: CertificateAuthority) -> None:
    issued = ca.issue_client_certificate("energy_loader")
    cert = _load_cert(issued.cert_path)
    assert issued.kind == "client"
    assert issued.subject_cn == "energy_loader"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "energy_loader"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _mode(issued.key_path) == 0o600
    verifier = PolicyBuilder().store(Store([ca.certificate])).build_client_verifier()
    verified = verifier.verify(cert, [])
    assert verified.chain[-1] == ca.certificate
    assert verified.subjects == [x509.DirectoryName(cert.subject)]


def test_client_certificate_rejects_invalid_role(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="Invalid database role"):
        ca.issue_client_certificate("")
    with pytest.raises(ValueError, match="at most 63 bytes"):
        ca.issue_client_certificate("r" * 64)


# -- index, revocation, CRL ------------------------------------------------------------------------------


def test_index_lists_issued_certificates(ca: CertificateAuthority) -> None:
    server = ca.issue_server_certificate(["localhost"])
    client = ca.issue_client_certificate("reader")
    assert ca.issued() == [server, client]
    assert ca.get(client.serial) == client
    assert _mode(ca.directory / "index.json") == 0o600

    index = json.loads((ca.directory / "index.json").read_text())
    entries = {entry["serial"]: entry for entry in index["certificates"]}
    assert entries[f"{client.serial:040x}"]["kind"] == "client"
    assert entries[f"{client.serial:040x}"]["subject_cn"] == "reader"
    assert entries[f"{client.serial:040x}"]["revoked_at"] is None

    reloaded = CertificateAuthority(ca.directory)
    assert reloaded.issued() == [server, client]
    with pytest.raises(CertificateError, match="No certificate with serial 0+2a in .*index.json"):
        ca.get(42)


def test_revoke_writes_a_signed_crl(ca: CertificateAuthority) -> None:
    kept = ca.issue_server_certificate(["localhost"])
    revoked = ca.issue_client_certificate("old_role")
    crl_path = ca.revoke(revoked.serial, reason=x509.ReasonFlags.key_compromise)
    assert crl_path == ca.crl_path

    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert crl.issuer == ca.certificate.subject
    entry = crl.get_revoked_certificate_by_serial_number(revoked.serial)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert crl.get_revoked_certificate_by_serial_number(kept.serial) is None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=30)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1

    # Revoking again is idempotent; a later CRL gets a higher number and keeps the serial.
    ca.revoke(revoked.serial)
    second = x509.load_pem_x509_crl(ca.write_crl(next_update_days=7).read_bytes())
    assert [r.serial_number for r in second] == [revoked.serial]
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    assert second.next_update_utc - second.last_update_utc == timedelta(days=7)

    with pytest.raises(CertificateError, match="No certificate with serial"):
        ca.revoke(12345)


def test_status_reports_days_left_and_expiring(ca: CertificateAuthority) -> None:
    now = datetime.now(timezone.utc)
    long_lived = ca.issue_server_certificate(["localhost"], validity_days=300)
    short_lived = ca.issue_client_certificate("short", validity_days=10)
    revoked_short = ca.issue_client_certificate("gone", validity_days=5)
    ca.revoke(revoked_short.serial)

    statuses = {status.serial: status for status in ca.status(warn_days=30, now=now)}
    assert len(statuses) == 4

    ca_status = statuses[ca.certificate.serial_number]
    assert ca_status.kind == "ca"
    assert ca_status.subject_cn == "energy_assets local CA"
    assert ca_status.days_left == pytest.approx(3650, abs=0.01)
    assert ca_status.expiring is False

    assert statuses[long_lived.serial].days_left == pytest.approx(300, abs=0.01)
    assert statuses[long_lived.serial].expiring is False
    assert statuses[short_lived.serial].days_left == pytest.approx(10, abs=0.01)
    assert statuses[short_lived.serial].expiring is True
    assert statuses[short_lived.serial].revoked is False
    assert statuses[revoked_short.serial].revoked is True
    assert statuses[revoked_short.serial].expiring is False

    later = ca.status(warn_days=30, now=now + timedelta(days=280))
    assert {s.serial for s in later if s.expiring} == {long_lived.serial, short_lived.serial}


# -- key file safety -------------------------------------------------------------------------------------


def test_write_private_key_is_atomic_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "server.key"
    path.write_text("old content")
    path.chmod(0o644)
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_key(path, key)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(path).private_numbers() == key.private_numbers()
    assert [p.name for p in tmp_path.iterdir()] == ["server.key"]


def test_world_readable_key_is_refused(ca: CertificateAuthority) -> None:
    issued = ca.issue_client_certificate("loader")
    issued.key_path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError) as raised:
        load_private_key(issued.key_path)
    assert str(issued.key_path) in str(raised.value)
    assert f"chmod 600 {issued.key_path}" in str(raised.value)

    issued.key_path.chmod(0o640)
    with pytest.raises(InsecureKeyFileError, match="0640"):
        load_private_key(issued.key_path)

    ca.ca_key_path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError, match="ca.key"):
        CertificateAuthority(ca.directory)


def test_corrupt_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.key"
    write_atomic(path, b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n", 0o600)
    with pytest.raises(CorruptKeyFileError) as raised:
        load_private_key(path)
    assert str(path) in str(raised.value)
    assert "not a valid PEM private key" in str(raised.value)

    with pytest.raises(CertificateError, match="does not exist"):
        load_private_key(tmp_path / "missing.key")


def test_corrupt_certificate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.crt"
    write_atomic(path, b"garbage")
    with pytest.raises(CorruptKeyFileError, match="broken.crt is not a valid PEM certificate"):
        certificate_serial_from_pem(path)


def test_ed25519_keys_are_refused(tmp_path: Path) -> None:
    for key in [ed25519.Ed25519PrivateKey.generate(), ed448.Ed448PrivateKey.generate()]:
        with pytest.raises(CertificateError, match="channel binding"):
            write_private_key(tmp_path / "ed.key", key)
    assert not (tmp_path / "ed.key").exists()


def test_no_ed25519_key_anywhere(ca: CertificateAuthority) -> None:
    ca.issue_server_certificate(["localhost"])
    ca.issue_client_certificate("loader")
    key_files = sorted(ca.directory.rglob("*.key"))
    assert len(key_files) == 3
    for path in key_files:
        key = load_private_key(path)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.curve.name == "secp256r1"
    for path in sorted(ca.directory.rglob("*.crt")):
        assert isinstance(_load_cert(path).public_key(), ec.EllipticCurvePublicKey)


# -- CRL renewal and root rollover -----------------------------------------------------------------------


def test_crl_is_renewed_only_when_due(ca: CertificateAuthority, monkeypatch) -> None:
    assert ca.renew_crl_if_due() is True  # missing
    assert ca.crl_status().days_left == pytest.approx(30, abs=0.01)
    assert ca.renew_crl_if_due() is False
    written = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=11)
    monkeypatch.setattr("energy_assets.tls.ca._now", lambda: written)
    ca.write_crl()
    monkeypatch.undo()
    status = ca.crl_status()
    assert status.days_left == pytest.approx(19, abs=0.01) and status.renewal_due and not status.expired
    assert ca.renew_crl_if_due() is True
    assert crl_next_update(ca.crl_path) == ca.crl_status().next_update
    assert ca.crl_status().days_left == pytest.approx(30, abs=0.01)


def test_a_root_due_for_rollover_is_rolled_over_by_maintain(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.init(tmp_path / "ca", validity_days=399)
    old_root = ca.certificate
    old_leaf = ca.issue_client_certificate("loader", validity_days=30)
    ca.revoke(old_leaf.serial)
    done = ca.maintain()
    assert done[0].startswith("rolled the root CA over to serial ")
    assert ca.certificate != old_root and ca.previous_certificate == old_root
    assert ca.certificate.subject.rfc4514_string().startswith("CN=energy_assets local CA (rollover ")
    assert (ca.certificate.not_valid_after_utc - ca.certificate.not_valid_before_utc) == timedelta(days=3650)
    assert x509.load_pem_x509_certificates(ca.trust_bundle_path.read_bytes()) == [ca.certificate, old_root]
    # One CRL per trusted root; the old root's CRL still lists what it revoked.
    crls = [x509.load_pem_x509_crl(block) for block in _pem_blocks(ca.crl_path.read_bytes())]
    assert [crl.issuer for crl in crls] == [ca.certificate.subject, old_root.subject]
    assert crls[0].is_signature_valid(ca.certificate.public_key())
    assert crls[1].is_signature_valid(old_root.public_key())
    assert crls[1].get_revoked_certificate_by_serial_number(old_leaf.serial) is not None
    assert crls[0].get_revoked_certificate_by_serial_number(old_leaf.serial) is None
    # New leaves come from the new root; the status shows the previous root without flagging it.
    new_leaf = ca.issue_server_certificate(["localhost"])
    assert _load_cert(new_leaf.cert_path).issuer == ca.certificate.subject
    statuses = {status.kind: status for status in ca.status()}
    assert statuses["ca-prev"].serial == old_root.serial_number and statuses["ca-prev"].expiring is False
    assert statuses["ca"].expiring is False
    assert CertificateAuthority(ca.directory).previous_certificate == old_root
    assert ca.maintain() == []


def test_previous_root_is_retired_when_it_expires(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.init(tmp_path / "ca", validity_days=399)
    old_root = ca.certificate
    ca.rollover()
    assert ca.retire_previous_if_expired() is False
    assert ca.retire_previous_if_expired(now=old_root.not_valid_after_utc + timedelta(seconds=1)) is True
    assert ca.previous_certificate is None and not ca.previous_directory.exists()
    assert x509.load_pem_x509_certificates(ca.trust_bundle_path.read_bytes()) == [ca.certificate]
    retired = ca.directory / "retired" / f"{old_root.serial_number:040x}.crt"
    assert _load_cert(retired) == old_root
    assert len(_pem_blocks(ca.crl_path.read_bytes())) == 1


def test_an_interrupted_rollover_is_finished_on_load(tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.init(tmp_path / "ca")
    old_root = ca.certificate
    new_key = ec.generate_private_key(ec.SECP256R1())
    staging = ca.directory / "next"
    staging.mkdir(mode=0o700)
    write_private_key(staging / "ca.key", new_key)
    new_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "new root")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "new root")]))
        .public_key(new_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(timezone.utc))
        .not_valid_after(datetime.now(timezone.utc) + timedelta(days=3650))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(new_key.public_key()), critical=False)
        .sign(new_key, hashes.SHA256())
    )
    write_atomic(staging / "ca.crt", new_cert.public_bytes(serialization.Encoding.PEM))
    (ca.directory / "previous").mkdir(mode=0o700)
    shutil.copy2(ca.ca_cert_path, ca.directory / "previous" / "ca.crt")
    shutil.copy2(ca.ca_key_path, ca.directory / "previous" / "ca.key")
    # Crash after the key was moved into place but before the certificate.
    os.replace(staging / "ca.key", ca.ca_key_path)
    reloaded = CertificateAuthority(ca.directory)
    assert reloaded.certificate == new_cert
    assert reloaded.previous_certificate == old_root
    assert not staging.exists()


def _pem_blocks(data: bytes) -> list[bytes]:
    marker = b"-----END X509 CRL-----"
    return [part + marker for part in data.split(marker) if b"BEGIN X509 CRL" in part]
