"""A private certificate authority for PostgreSQL TLS, in pure Python (`cryptography`, no openssl).

What belongs here: creating and loading the CA, issuing server and client certificates, revocation and
the CRL, the on-disk index of issued certificates, expiry status, and the safe file helpers for keys and
PEM files (atomic writes, 0600 keys, refusing group/world-readable keys). What does not: PostgreSQL
configuration, connection strings and anything Dagster; those import this module.

Profile (see shared/reference/security.md, section 3.2): ECDSA P-256 + SHA-256 for the whole chain, never
Ed25519 (it breaks libpq SCRAM channel binding), root with BasicConstraints(ca=True, path_length=0),
leaves of at most 397 days with a non-critical SAN and one EKU each.

Layout of a CA directory (mode 0700)::

    ca.crt, ca.key (0600), crl.pem, index.json
    issued/<serial as 40 hex digits>.crt and .key (0600)
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import stat
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

from energy_assets.errors import CertificateError
from energy_assets.files import write_atomic

MAX_LEAF_VALIDITY_DAYS = 397
"""Longest validity accepted for server and client certificates (the CA/Browser Forum limit)."""

INDEX_VERSION = 1
SERIAL_HEX_DIGITS = 40
"""`x509.random_serial_number()` returns up to 159 bits, so 40 hex digits always fit a serial."""

_UNSAFE_KEY_TYPES = (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


class InsecureKeyFileError(CertificateError):
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


class CertificateAuthority:
    """A CA stored in one directory; see the module docstring for the layout."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.ca_cert_path.exists() or not self.ca_key_path.exists():
            raise CertificateError(
                f"No certificate authority in {self.directory} (missing {self.ca_cert_path.name} or "
                f"{self.ca_key_path.name}); run `energy-assets ca init` to create one."
            )
        self._certificate = _load_certificate(self.ca_cert_path)
        self._key = load_private_key(self.ca_key_path)
        _check_key_matches(self._key, self._certificate, self.ca_key_path, self.ca_cert_path)

    # -- creation -----------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        common_name: str = "energy_assets local CA",
        validity_days: int = 3650,
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
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=validity_days))
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
        # Key first: a crash between the two writes leaves a key without a certificate, which `init`
        # reports instead of silently replacing.
        write_private_key(key_path, key)
        write_pem_atomic(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
        ca = cls(directory)
        with ca._locked():
            ca._write_index(ca._read_index())
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
                f"{ca.certificate.not_valid_after_utc.isoformat()}. Move {directory} away, run "
                "`energy-assets ca init` to create a new CA, then re-issue and deploy every certificate."
            )
        return ca

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
            write_pem_atomic(issued.cert_path, certificate.public_bytes(serialization.Encoding.PEM))
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

    def write_crl(self, *, next_update_days: int = 30) -> Path:
        """Write a CA-signed CRL of every revoked certificate, valid for `next_update_days`."""
        if next_update_days <= 0:
            raise CertificateRequestError(f"next_update_days must be positive, got {next_update_days}.")
        with self._locked():
            index = self._read_index()
            index["crl_number"] += 1
            now = _now()
            ca_ski = self._certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self._certificate.subject)
                .last_update(now)
                .next_update(now + timedelta(days=next_update_days))
                .add_extension(x509.CRLNumber(index["crl_number"]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
                )
            )
            for entry in index["certificates"]:
                if entry["revoked_at"] is None:
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
            crl = builder.sign(self._key, hashes.SHA256())
            write_pem_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM))
            self._write_index(index)
        return self.crl_path

    # -- queries ------------------------------------------------------------------------------------

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate this CA issued, oldest first (revoked ones included)."""
        return [self._entry_to_issued(entry) for entry in self._read_index()["certificates"]]

    def get(self, serial: int) -> IssuedCertificate:
        """The issued certificate with this serial; CertificateError if unknown."""
        return self._entry_to_issued(self._find_entry(self._read_index(), serial))

    def status(self, *, warn_days: int = 30, now: datetime | None = None) -> list[CertificateStatus]:
        """Days left and revocation state of the CA and every issued certificate."""
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
                expiring=ca_days_left < warn_days,
            )
        ]
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
        """Serialise index updates between processes (read-modify-write of index.json)."""
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


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
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as error:
        raise CertificateError(f"Private key {path} does not exist; check the path.") from error
    except PermissionError as error:
        raise CertificateError(
            f"Cannot read private key {path}: permission denied; run as the file's owner."
        ) from error
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & 0o077:
            raise InsecureKeyFileError(
                f"Private key {path} has mode {mode:04o}, readable by group or others; "
                f"run `chmod 600 {path}` (and check who could have copied it)."
            )
        data = file.read()
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


def write_pem_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically with the given mode (temp file, fsync, os.replace)."""
    write_atomic(Path(path), data, mode)


def certificate_serial_from_pem(path: Path) -> int:
    """Serial number of the PEM certificate at `path`."""
    return _load_certificate(Path(path)).serial_number


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
