"""A private certificate authority for PostgreSQL TLS, in pure Python (`cryptography`, no openssl).

What belongs here: creating and loading the CA, issuing server and client certificates, revocation and
the CRL (re-signed well before its next update), rolling the root over before it expires, the on-disk
index of issued certificates, expiry status, and the safe file helpers for keys and PEM files (atomic
writes, 0600 keys, refusing group/world-readable keys). What does not: PostgreSQL configuration,
connection strings and anything Dagster; those import this module.

Profile (see shared/reference/security.md, section 3.2): ECDSA P-256 + SHA-256 for the whole chain, never
Ed25519 (it breaks libpq SCRAM channel binding), root with BasicConstraints(ca=True, path_length=0),
leaves of at most 397 days with a non-critical SAN and one EKU each.

Root rollover: `CA_ROLLOVER_WITHIN_DAYS` before the root expires, `rollover()` makes a new root (a new
subject, so OpenSSL never confuses the two) and keeps the old one in `previous/` while it is still
valid. Clients and the server trust `trust.pem`, both roots, during that overlap; `crl.pem` holds one
CRL per trusted root (OpenSSL needs a CRL for every issuer it checks). When the old root expires,
`retire_previous()` removes its key and keeps its certificate under `retired/`.

Layout of a CA directory (mode 0700)::

    ca.crt, ca.key (0600)        the active root, which issues every new certificate
    previous/ca.crt, ca.key      the previous root during a rollover overlap
    trust.pem                    every trusted root (what sslrootcert and ssl_ca_file name)
    crl.pem, index.json
    issued/<serial as 40 hex digits>.crt and .key (0600)
    retired/<serial>.crt         roots whose overlap ended
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from energy_assets.errors import CertificateError, InsecureFileError
from energy_assets.files import exclusive_lock, read_private_file, write_atomic

MAX_LEAF_VALIDITY_DAYS = 397
"""Longest validity accepted for server and client certificates (the CA/Browser Forum limit)."""

CA_VALIDITY_DAYS = 3650
CA_ROLLOVER_WITHIN_DAYS = 400
"""A new root is made this long before the old one expires: longer than any leaf lives, so every leaf
the old root issued expires before it, and clients trust both roots during the overlap."""

CRL_VALIDITY_DAYS = 30
CRL_RENEW_WITHIN_DAYS = 20
"""The CRL is re-signed once its next update is this close (so about every 10 days): a daily job, every
start and every connection that finds it stale renew it long before clients would refuse it."""

INDEX_VERSION = 1
SERIAL_HEX_DIGITS = 40
"""`x509.random_serial_number()` returns up to 159 bits, so 40 hex digits always fit a serial."""

_UNSAFE_KEY_TYPES = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


class InsecureKeyFileError(CertificateError, InsecureFileError):
    """A private key file is readable by the group or by others."""


class CorruptKeyFileError(CertificateError):
    """A private key or certificate file cannot be parsed."""


class CertificateRequestError(CertificateError, ValueError):
    """A certificate was requested with invalid parameters (validity, names, dates)."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A server or client certificate issued by the CA, as recorded in `index.json`."""

    serial: int
    kind: str
    subject_cn: str
    cert_path: Path
    key_path: Path
    not_before: datetime
    not_after: datetime

    def days_left(self, now: datetime | None = None) -> float:
        """Days until `not_after` (negative once expired)."""
        return _days_between(_aware_utc(now, "now"), self.not_after)


@dataclass(frozen=True)
class CertificateStatus:
    """Expiry and revocation state of one certificate (the CA itself has kind "ca")."""

    serial: int
    kind: str
    subject_cn: str
    not_after: datetime
    days_left: float
    revoked: bool
    expiring: bool
    issuer_serial: int | None = None

    @property
    def expired(self) -> bool:
        return self.days_left <= 0


@dataclass(frozen=True)
class CrlStatus:
    """When the published CRL (one per trusted root) must be re-signed by."""

    path: Path
    next_update: datetime | None
    days_left: float | None

    @property
    def expired(self) -> bool:
        return self.days_left is None or self.days_left <= 0

    @property
    def renewal_due(self) -> bool:
        return self.days_left is None or self.days_left < CRL_RENEW_WITHIN_DAYS


class CertificateAuthority:
    """A CA stored in one directory; see the module docstring for the layout."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.ca_cert_path.exists() or not self.ca_key_path.exists():
            raise CertificateError(
                f"No certificate authority in {self.directory} (missing {self.ca_cert_path.name} or "
                f"{self.ca_key_path.name}); run `energy-assets ca init` to create one."
            )
        if (self.directory / "next").exists():
            with self._locked():
                self._finish_interrupted_rollover()
        self._certificate = _load_certificate(self.ca_cert_path)
        self._key = load_private_key(self.ca_key_path)
        _check_key_matches(self._key, self._certificate, self.ca_key_path, self.ca_cert_path)
        self._previous: tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes] | None = None
        previous_cert = self.previous_directory / "ca.crt"
        previous_key = self.previous_directory / "ca.key"
        if previous_cert.exists() and previous_key.exists():
            self._previous = (_load_certificate(previous_cert), load_private_key(previous_key))

    # -- creation -----------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        common_name: str = "energy_assets local CA",
        validity_days: int = CA_VALIDITY_DAYS,
    ) -> tuple[CertificateAuthority, bool]:
        """Create the CA in `directory`, or keep an existing valid one.

        Returns the CA and whether it was created. An existing CA that is expired, half-written or whose
        key does not match its certificate is never overwritten: the error says what to do.
        """
        if validity_days <= 0:
            raise CertificateRequestError(f"CA validity_days must be positive, got {validity_days}.")
        directory = Path(directory)
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if cert_path.exists() or key_path.exists():
            return cls._keep_existing(directory), False

        _make_private_dir(directory)
        with exclusive_lock(directory / ".lock"):
            if cert_path.exists() or key_path.exists():  # another process created it meanwhile
                return cls._keep_existing(directory), False
            key, certificate = _new_root(common_name, validity_days)
            # Key first: a crash between the two writes leaves a key without a certificate, which `init`
            # reports instead of silently replacing.
            write_private_key(key_path, key)
            write_atomic(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
            ca = cls(directory)
            ca._write_index(ca._read_index())
            ca._write_trust_bundle()
        return ca, True

    @classmethod
    def _keep_existing(cls, directory: Path) -> CertificateAuthority:
        cert_path, key_path = directory / "ca.crt", directory / "ca.key"
        if not (cert_path.exists() and key_path.exists()):
            present, missing = (cert_path, key_path) if cert_path.exists() else (key_path, cert_path)
            raise CertificateError(
                f"Incomplete certificate authority in {directory}: {present.name} exists but "
                f"{missing.name} is missing. Restore {missing} from a backup, or move {directory} away "
                "and run `energy-assets ca init` again (then re-issue every certificate)."
            )
        ca = cls(directory)
        days_left = _days_between(_now(), ca.certificate.not_valid_after_utc)
        if days_left <= 0:
            raise CertificateError(
                f"The certificate authority {cert_path} expired on "
                f"{ca.certificate.not_valid_after_utc.isoformat()}. Run `energy-assets ca rollover` to make a "
                "new root and move the managed cluster to it (or move the folder away, run "
                "`energy-assets ca init`, then re-issue and deploy every certificate)."
            )
        return ca

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """The CA in `directory` even if it expired (so it can be rolled over), created if missing."""
        directory = Path(directory)
        if (directory / "ca.crt").exists() or (directory / "ca.key").exists():
            if not ((directory / "ca.crt").exists() and (directory / "ca.key").exists()):
                return cls._keep_existing(directory)  # raises, naming the missing file
            return cls(directory)
        return cls.init(directory)[0]

    # -- properties ---------------------------------------------------------------------------------

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def trust_bundle_path(self) -> Path:
        """Every trusted root: what clients use as sslrootcert and the server as ssl_ca_file."""
        return self.directory / "trust.pem"

    @property
    def previous_directory(self) -> Path:
        return self.directory / "previous"

    @property
    def previous_certificate(self) -> x509.Certificate | None:
        """The root being replaced, while the rollover overlap lasts."""
        return self._previous[0] if self._previous else None

    @property
    def index_path(self) -> Path:
        return self.directory / "index.json"

    @property
    def issued_directory(self) -> Path:
        return self.directory / "issued"

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    # -- issuing ------------------------------------------------------------------------------------

    def issue_server_certificate(
        self,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str] = (),
        *,
        common_name: str | None = None,
        validity_days: int = MAX_LEAF_VALIDITY_DAYS,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a serverAuth certificate whose SAN holds every DNS name and IP address given."""
        if isinstance(dns_names, str) or isinstance(ip_addresses, str):
            raise CertificateRequestError("dns_names and ip_addresses must be lists of strings.")
        names = _unique(name.strip() for name in dns_names)
        if any(not name for name in names):
            raise CertificateRequestError(f"Empty DNS name in {list(dns_names)!r}.")
        ips = [_parse_ip(address) for address in _unique(a.strip() for a in ip_addresses)]
        if not names and not ips:
            raise CertificateRequestError("A server certificate needs at least one DNS name or IP address.")
        general_names: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
        general_names += [x509.IPAddress(ip) for ip in ips]
        cn = common_name or (names[0] if names else str(ips[0]))
        return self._issue(
            kind="server",
            common_name=cn,
            extended_key_usage=ExtendedKeyUsageOID.SERVER_AUTH,
            subject_alternative_names=general_names,
            validity_days=validity_days,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_client_certificate(
        self,
        role: str,
        *,
        validity_days: int = MAX_LEAF_VALIDITY_DAYS,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue a clientAuth certificate whose CN is the PostgreSQL role it logs in as."""
        if not role or role != role.strip() or len(role.encode()) > 63:
            raise CertificateRequestError(
                f"Invalid database role {role!r}: it must be non-empty, without surrounding spaces and at "
                "most 63 bytes (the PostgreSQL limit)."
            )
        # PostgreSQL reads the role from the CN; the SAN only repeats the subject because
        # cryptography's client verifier requires a SAN on every leaf (measured: "missing required
        # extension 2.5.29.17"). OpenSSL accepts the DirectoryName SAN for sslclient.
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, role)])
        return self._issue(
            kind="client",
            common_name=role,
            extended_key_usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            subject_alternative_names=[x509.DirectoryName(subject)],
            validity_days=validity_days,
            not_before=not_before,
            not_after=not_after,
        )

    def _issue(
        self,
        *,
        kind: str,
        common_name: str,
        extended_key_usage: x509.ObjectIdentifier,
        subject_alternative_names: list[x509.GeneralName],
        validity_days: int,
        not_before: datetime | None,
        not_after: datetime | None,
    ) -> IssuedCertificate:
        start, end = self._validity(validity_days, not_before, not_after)
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        ca_ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([extended_key_usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
            # Not critical: the subject is non-empty (RFC 5280; cryptography's verifier rejects otherwise).
            .add_extension(x509.SubjectAlternativeName(subject_alternative_names), critical=False)
        )
        certificate = builder.sign(self._key, hashes.SHA256())
        issued = IssuedCertificate(
            serial=serial,
            kind=kind,
            subject_cn=common_name,
            cert_path=self._issued_path(serial, ".crt"),
            key_path=self._issued_path(serial, ".key"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )
        with self._locked():
            _make_private_dir(self.issued_directory)
            write_private_key(issued.key_path, key)
            write_atomic(issued.cert_path, certificate.public_bytes(serialization.Encoding.PEM))
            index = self._read_index()
            index["certificates"].append(
                {
                    "serial": _serial_hex(serial),
                    "kind": kind,
                    "subject_cn": common_name,
                    "not_before": issued.not_before.isoformat(),
                    "not_after": issued.not_after.isoformat(),
                    "revoked_at": None,
                    "reason": None,
                    "ca_serial": _serial_hex(self._certificate.serial_number),
                }
            )
            self._write_index(index)
        return issued

    def _validity(
        self, validity_days: int, not_before: datetime | None, not_after: datetime | None
    ) -> tuple[datetime, datetime]:
        if not 0 < validity_days <= MAX_LEAF_VALIDITY_DAYS:
            raise CertificateRequestError(
                f"validity_days must be between 1 and {MAX_LEAF_VALIDITY_DAYS}, got {validity_days}; "
                "issue a shorter certificate and rotate it before it expires."
            )
        start = _aware_utc(not_before, "not_before").replace(microsecond=0)
        end = (
            _aware_utc(not_after, "not_after").replace(microsecond=0)
            if not_after is not None
            else start + timedelta(days=validity_days)
        )
        if end <= start:
            raise CertificateRequestError(
                f"not_after ({end.isoformat()}) must be after not_before ({start.isoformat()})."
            )
        if end - start > timedelta(days=MAX_LEAF_VALIDITY_DAYS):
            raise CertificateRequestError(
                f"Requested validity {start.isoformat()} .. {end.isoformat()} is longer than "
                f"{MAX_LEAF_VALIDITY_DAYS} days; shorten it."
            )
        ca_end = self._certificate.not_valid_after_utc
        if end > ca_end:
            raise CertificateRequestError(
                f"The certificate would outlive the CA {self.ca_cert_path} (CA expires {ca_end.isoformat()}, "
                f"certificate {end.isoformat()}). Pass a smaller validity_days, or create a new CA."
            )
        return start, end

    # -- revocation ---------------------------------------------------------------------------------

    def revoke(self, serial: int, *, reason: x509.ReasonFlags = x509.ReasonFlags.unspecified) -> Path:
        """Record `serial` as revoked (idempotent), rewrite the CRL and return its path."""
        if reason is x509.ReasonFlags.remove_from_crl:
            raise CertificateRequestError("remove_from_crl is only for delta CRLs; pick another reason.")
        with self._locked():
            index = self._read_index()
            entry = self._find_entry(index, serial)
            if entry["revoked_at"] is None:
                entry["revoked_at"] = _now().isoformat()
                entry["reason"] = reason.value
                self._write_index(index)
        return self.write_crl()

    def write_crl(self, *, next_update_days: int = CRL_VALIDITY_DAYS) -> Path:
        """Write one CA-signed CRL per trusted root into `crl.pem`, valid for `next_update_days`."""
        if next_update_days <= 0:
            raise CertificateRequestError(f"next_update_days must be positive, got {next_update_days}.")
        with self._locked():
            index = self._read_index()
            index["crl_number"] += 1
            now = _now()
            pem = b""
            for certificate, key in self._trusted_roots():
                pem += self._sign_crl(index, certificate, key, now, next_update_days)
            write_atomic(self.crl_path, pem)
            self._write_index(index)
        return self.crl_path

    def _trusted_roots(self) -> list[tuple[x509.Certificate, CertificateIssuerPrivateKeyTypes]]:
        roots = [(self._certificate, self._key)]
        return [*roots, self._previous] if self._previous else roots

    def _sign_crl(
        self,
        index: dict[str, Any],
        certificate: x509.Certificate,
        key: CertificateIssuerPrivateKeyTypes,
        now: datetime,
        next_update_days: int,
    ) -> bytes:
        ca_ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(certificate.subject)
            .last_update(now)
            .next_update(now + timedelta(days=next_update_days))
            .add_extension(x509.CRLNumber(index["crl_number"]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
        )
        wanted_issuer = _serial_hex(certificate.serial_number)
        for entry in index["certificates"]:
            if entry["revoked_at"] is None:
                continue
            if entry.get("ca_serial", _serial_hex(self._certificate.serial_number)) != wanted_issuer:
                continue
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry["serial"], 16))
                .revocation_date(datetime.fromisoformat(entry["revoked_at"]))
            )
            reason = x509.ReasonFlags(entry["reason"])
            # RFC 5280: the "unspecified" reason code SHOULD be absent.
            if reason is not x509.ReasonFlags.unspecified:
                revoked = revoked.add_extension(x509.CRLReason(reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def crl_status(self, *, now: datetime | None = None) -> CrlStatus:
        """The published CRL's earliest next update and the days left until then."""
        next_update = crl_next_update(self.crl_path)
        days_left = None if next_update is None else _days_between(_aware_utc(now, "now"), next_update)
        return CrlStatus(path=self.crl_path, next_update=next_update, days_left=days_left)

    def renew_crl_if_due(self) -> bool:
        """Re-sign the CRL when it is missing, unreadable or within `CRL_RENEW_WITHIN_DAYS` of its next
        update, or when it does not cover every trusted root; returns True if it was rewritten."""
        with self._locked():
            if not self._crl_covers_trusted_roots() or self.crl_status().renewal_due:
                self.write_crl()
                return True
        return False

    def _crl_covers_trusted_roots(self) -> bool:
        try:
            data = self.crl_path.read_bytes()
        except FileNotFoundError:
            return False
        issuers = set()
        for block in _pem_blocks(data, b"X509 CRL"):
            try:
                issuers.add(x509.load_pem_x509_crl(block).issuer)
            except ValueError:
                return False
        return issuers == {certificate.subject for certificate, _key in self._trusted_roots()}

    # -- root rollover ------------------------------------------------------------------------------

    def rollover_due(self, *, now: datetime | None = None) -> bool:
        """True when the active root expires within `CA_ROLLOVER_WITHIN_DAYS` (or already expired)."""
        now = _aware_utc(now, "now")
        return _days_between(now, self._certificate.not_valid_after_utc) < CA_ROLLOVER_WITHIN_DAYS

    def rollover(self, *, validity_days: int = CA_VALIDITY_DAYS) -> x509.Certificate:
        """Make a new active root; the old one stays trusted in `previous/` until it expires.

        Certificates issued from now on come from the new root; the trust bundle and the CRL cover both.
        Returns the new root certificate.
        """
        with self._locked():
            now = _now()
            index = self._read_index()
            old_serial = _serial_hex(self._certificate.serial_number)
            for entry in index["certificates"]:
                entry.setdefault("ca_serial", old_serial)
            self._write_index(index)
            if self._previous is not None:
                self._retire(self._previous[0])  # a second rollover inside one overlap
            name = f"{_base_common_name(self._certificate)} (rollover {now:%Y-%m-%d})"
            key, certificate = _new_root(name, validity_days, now)
            staging = self.directory / "next"
            shutil.rmtree(staging, ignore_errors=True)
            _make_private_dir(staging)
            write_private_key(staging / "ca.key", key)
            write_atomic(staging / "ca.crt", certificate.public_bytes(serialization.Encoding.PEM))
            previous = self.previous_directory
            shutil.rmtree(previous, ignore_errors=True)
            _make_private_dir(previous)
            write_private_key(previous / "ca.key", self._key)
            write_atomic(previous / "ca.crt", self.ca_cert_path.read_bytes())
            self._finish_interrupted_rollover()
            self._previous = (self._certificate, self._key)
            self._certificate, self._key = certificate, key
            if _days_between(now, self._previous[0].not_valid_after_utc) <= 0:
                self._retire(self._previous[0])  # expired already: there is no overlap to keep
            self._write_trust_bundle()
            self.write_crl()
        return certificate

    def retire_previous_if_expired(self, *, now: datetime | None = None) -> bool:
        """End the overlap once the previous root has expired; returns True if it was retired."""
        with self._locked():
            previous = self.previous_certificate
            if previous is None or _days_between(_aware_utc(now, "now"), previous.not_valid_after_utc) > 0:
                return False
            self._retire(previous)
            self._write_trust_bundle()
            self.write_crl()
        return True

    def _retire(self, certificate: x509.Certificate) -> None:
        retired = self.directory / "retired"
        _make_private_dir(retired)
        write_atomic(
            retired / f"{_serial_hex(certificate.serial_number)}.crt",
            certificate.public_bytes(serialization.Encoding.PEM),
        )
        shutil.rmtree(self.previous_directory, ignore_errors=True)
        self._previous = None

    def _finish_interrupted_rollover(self) -> None:
        """Complete a rollover that stopped after the new root and the copy of the old one were written."""
        staging = self.directory / "next"
        if not staging.exists():
            return
        previous = self.previous_directory
        if not ((previous / "ca.crt").exists() and (previous / "ca.key").exists()):
            shutil.rmtree(staging, ignore_errors=True)  # stopped before the old root was kept: undo
            return
        for name in ("ca.key", "ca.crt"):
            if (staging / name).exists():
                os.replace(staging / name, self.directory / name)
        shutil.rmtree(staging, ignore_errors=True)

    def _write_trust_bundle(self) -> None:
        pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c, _key in self._trusted_roots())
        write_atomic(self.trust_bundle_path, pem)

    def maintain(self) -> list[str]:
        """Every renewal that is due: roll the root over, retire the previous root, re-sign the CRL.

        Returns what was done, one short sentence per action (empty if nothing was due).
        """
        done: list[str] = []
        with self._locked():
            if self.rollover_due():
                new_root = self.rollover()
                done.append(f"rolled the root CA over to serial {new_root.serial_number:x}")
            if self.retire_previous_if_expired():
                done.append("retired the previous root CA (its overlap ended)")
            if not self.trust_bundle_path.exists():
                self._write_trust_bundle()
            if self.renew_crl_if_due():
                done.append("re-signed the CRL")
        return done

    # -- queries ------------------------------------------------------------------------------------

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate this CA issued, oldest first (revoked ones included)."""
        return [self._entry_to_issued(entry) for entry in self._read_index()["certificates"]]

    def get(self, serial: int) -> IssuedCertificate:
        """The issued certificate with this serial; CertificateError if unknown."""
        return self._entry_to_issued(self._find_entry(self._read_index(), serial))

    def status(self, *, warn_days: int = 30, now: datetime | None = None) -> list[CertificateStatus]:
        """Days left and revocation state of the CA (and a previous root), and every issued certificate.

        The active root counts as expiring when it is due for rollover or within `warn_days`; a previous
        root never does (it is meant to run out: that ends the overlap).
        """
        now = _aware_utc(now, "now")
        ca_days_left = _days_between(now, self._certificate.not_valid_after_utc)
        statuses = [
            CertificateStatus(
                serial=self._certificate.serial_number,
                kind="ca",
                subject_cn=_common_name(self._certificate),
                not_after=self._certificate.not_valid_after_utc,
                days_left=ca_days_left,
                revoked=False,
                expiring=ca_days_left < warn_days or self.rollover_due(now=now),
            )
        ]
        if self._previous is not None:
            previous = self._previous[0]
            statuses.append(
                CertificateStatus(
                    serial=previous.serial_number,
                    kind="ca-prev",
                    subject_cn=_common_name(previous),
                    not_after=previous.not_valid_after_utc,
                    days_left=_days_between(now, previous.not_valid_after_utc),
                    revoked=False,
                    expiring=False,
                )
            )
        active_serial = _serial_hex(self._certificate.serial_number)
        for entry in self._read_index()["certificates"]:
            issued = self._entry_to_issued(entry)
            days_left = issued.days_left(now)
            revoked = entry["revoked_at"] is not None
            statuses.append(
                CertificateStatus(
                    serial=issued.serial,
                    kind=issued.kind,
                    subject_cn=issued.subject_cn,
                    not_after=issued.not_after,
                    days_left=days_left,
                    revoked=revoked,
                    expiring=not revoked and days_left < warn_days,
                    issuer_serial=int(entry.get("ca_serial", active_serial), 16),
                )
            )
        return statuses

    # -- index --------------------------------------------------------------------------------------

    def _issued_path(self, serial: int, suffix: str) -> Path:
        return self.issued_directory / f"{_serial_hex(serial)}{suffix}"

    def _entry_to_issued(self, entry: dict[str, Any]) -> IssuedCertificate:
        serial = int(entry["serial"], 16)
        return IssuedCertificate(
            serial=serial,
            kind=entry["kind"],
            subject_cn=entry["subject_cn"],
            cert_path=self._issued_path(serial, ".crt"),
            key_path=self._issued_path(serial, ".key"),
            not_before=datetime.fromisoformat(entry["not_before"]),
            not_after=datetime.fromisoformat(entry["not_after"]),
        )

    def _find_entry(self, index: dict[str, Any], serial: int) -> dict[str, Any]:
        wanted = _serial_hex(serial)
        for entry in index["certificates"]:
            if entry["serial"] == wanted:
                return entry
        raise CertificateError(
            f"No certificate with serial {wanted} in {self.index_path}; "
            "list the issued certificates with `energy-assets ca status`."
        )

    def _read_index(self) -> dict[str, Any]:
        if not self.index_path.exists():
            return {"version": INDEX_VERSION, "crl_number": 0, "certificates": []}
        try:
            index = json.loads(self.index_path.read_text(encoding="utf-8"))
            if index.get("version") != INDEX_VERSION or not isinstance(index.get("certificates"), list):
                raise ValueError(f"expected version {INDEX_VERSION} with a 'certificates' list")
        except (ValueError, AttributeError) as error:
            raise CertificateError(
                f"Cannot read the certificate index {self.index_path}: {error}. Restore it from a backup."
            ) from error
        return index

    def _write_index(self, index: dict[str, Any]) -> None:
        data = json.dumps(index, indent=2, sort_keys=True) + "\n"
        write_atomic(self.index_path, data.encode("utf-8"), 0o600)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise changes between processes (index.json, the CRL, a rollover); re-entrant."""
        with exclusive_lock(self.directory / ".lock"):
            yield


# -- file helpers -------------------------------------------------------------------------------------


def write_private_key(path: Path, key: CertificateIssuerPrivateKeyTypes) -> None:
    """Write `key` as unencrypted PKCS#8 PEM, atomically, with mode 0600 (as PostgreSQL and libpq need)."""
    if isinstance(key, _UNSAFE_KEY_TYPES):
        raise CertificateError(
            f"Refusing to write an Ed25519/Ed448 key to {path}: it breaks PostgreSQL SCRAM channel "
            "binding. Use an ECDSA P-256 key."
        )
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(Path(path), data, 0o600)


def load_private_key(path: Path) -> CertificateIssuerPrivateKeyTypes:
    """Load an unencrypted PEM private key, refusing files readable by the group or by others."""
    path = Path(path)
    try:
        data = read_private_file(path, what="Private key", error=InsecureKeyFileError)
    except FileNotFoundError as error:
        raise CertificateError(f"Private key {path} does not exist; check the path.") from error
    except PermissionError as error:
        raise CertificateError(
            f"Cannot read private key {path}: permission denied; run as the file's owner."
        ) from error
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as error:
        raise CertificateError(
            f"Private key {path} is encrypted; store it unencrypted with mode 0600 instead."
        ) from error
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CorruptKeyFileError(
            f"Private key {path} is not a valid PEM private key ({error}); restore it from a backup or "
            "re-issue the certificate."
        ) from error
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CertificateError(
            f"Private key {path} is {type(key).__name__}; only ECDSA and RSA keys work with PostgreSQL "
            "channel binding. Re-issue the certificate (this CA uses ECDSA P-256)."
        )
    return key


def certificate_serial_from_pem(path: Path) -> int:
    """Serial number of the PEM certificate at `path`."""
    return _load_certificate(Path(path)).serial_number


def _new_root(
    common_name: str, validity_days: int, now: datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed P-256 root: BasicConstraints(ca, path_length=0), keyCertSign + cRLSign, SKI."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = _aware_utc(now, "now")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def crl_next_update(path: Path) -> datetime | None:
    """The earliest next update of the CRLs in the PEM file `path`; None if it is missing or unreadable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    updates: list[datetime] = []
    for block in _pem_blocks(data, b"X509 CRL"):
        try:
            crl = x509.load_pem_x509_crl(block)
        except ValueError:
            return None
        if crl.next_update_utc is None:
            return None
        updates.append(crl.next_update_utc)
    return min(updates) if updates else None


def _pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks, position = [], 0
    while (start := data.find(begin, position)) != -1:
        stop = data.find(end, start)
        if stop == -1:
            break
        blocks.append(data[start : stop + len(end)] + b"\n")
        position = stop + len(end)
    return blocks


def _base_common_name(certificate: x509.Certificate) -> str:
    return _common_name(certificate).split(" (rollover ")[0]


def _make_private_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        directory.chmod(0o700)  # mkdir's mode is filtered by the umask


def _load_certificate(path: Path) -> x509.Certificate:
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise CertificateError(f"Certificate {path} does not exist; check the path.") from error
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise CorruptKeyFileError(
            f"Certificate {path} is not a valid PEM certificate ({error}); restore it from a backup or "
            "re-issue it."
        ) from error


def _check_key_matches(
    key: CertificateIssuerPrivateKeyTypes, certificate: x509.Certificate, key_path: Path, cert_path: Path
) -> None:
    # Sign-and-verify rather than comparing public keys, so the check also exercises the key.
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"CA key {key_path} is not an ECDSA key; create a new CA (P-256).")
    probe = b"energy_assets CA key check"
    try:
        signature = key.sign(probe, ec.ECDSA(hashes.SHA256()))
        public_key = certificate.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidSignature
        public_key.verify(signature, probe, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise CertificateError(
            f"The CA key {key_path} does not match the CA certificate {cert_path}. Restore the matching "
            "pair from a backup; if none exists, move the directory away, run `energy-assets ca init` and "
            "re-issue every certificate."
        ) from error


def _common_name(certificate: x509.Certificate) -> str:
    attributes = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attributes[0].value) if attributes else ""


def _parse_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError as error:
        raise CertificateRequestError(f"{address!r} is not an IPv4 or IPv6 address.") from error


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _serial_hex(serial: int) -> str:
    return f"{serial:0{SERIAL_HEX_DIGITS}x}"


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def _aware_utc(value: datetime | None, name: str) -> datetime:
    if value is None:
        return _now()
    if value.tzinfo is None:
        raise CertificateRequestError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc)).")
    return value.astimezone(timezone.utc)


def _days_between(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400
