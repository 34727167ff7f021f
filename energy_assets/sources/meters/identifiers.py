"""Protected identifiers: NMIs as keyed pseudonyms, the originals encrypted with rotating keys.

With protection on (`settings.ENV_PROTECT_NMI`), every stored `nmi` is `HMAC-SHA256(key, nmi)` in hex:
deterministic, so the same NMI joins across files and tables, but useless without the key. The original NMI
is kept once per pseudonym as a Fernet token (`tables.PROTECTED_NMIS`), encrypted under a `MultiFernet`
key list, newest first: tokens made under an older key still decrypt, and `rotate` re-encrypts them under
the newest one, so keys change without re-ingesting any file.

Keys arrive as text (urlsafe base64 of 32 bytes, as `Fernet.generate_key()` prints; `generate_keys()`
makes a fresh pair). No key, no NMI and no token ever appears in an exception message or a `repr`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from energy_assets.sources.meters.errors import IdentifierKeyError, NmiDecryptionError
from energy_assets.sources.meters.settings import ENV_NMI_FERNET_KEYS, ENV_NMI_HMAC_KEY

MIN_HMAC_KEY_BYTES = 32
PSEUDONYM_HEX_CHARS = 64


def _decode_key(text: str, setting: str, position: str = "") -> bytes:
    try:
        return base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise IdentifierKeyError(
            f"{setting}{position}: not urlsafe base64 (generate one with"
            " `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
        ) from None


def parse_hmac_key(text: str | None, setting: str = ENV_NMI_HMAC_KEY) -> bytes:
    """The pseudonym key from its text form (urlsafe base64, at least 32 bytes once decoded)."""
    if not text or not text.strip():
        raise IdentifierKeyError(f"{setting} is not set; protected identifiers need it")
    key = _decode_key(text, setting)
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise IdentifierKeyError(f"{setting}: key is {len(key)} bytes, needs at least {MIN_HMAC_KEY_BYTES}")
    return key


def parse_fernet_keys(text: str | None, setting: str = ENV_NMI_FERNET_KEYS) -> list[bytes]:
    """Fernet keys from a comma-separated list, newest first (the first encrypts, all decrypt)."""
    if not text or not text.strip():
        raise IdentifierKeyError(f"{setting} is not set; protected identifiers need at least one Fernet key")
    keys = []
    for index, part in enumerate(p for p in text.split(",") if p.strip()):
        position = f" (key {index + 1})"
        raw = _decode_key(part, setting, position)
        if len(raw) != 32:
            raise IdentifierKeyError(f"{setting}{position}: a Fernet key is 32 bytes, this one is {len(raw)}")
        keys.append(part.strip().encode("ascii"))
    return keys


def generate_keys() -> tuple[str, str]:
    """A fresh (HMAC key, Fernet key) pair in the text form the settings expect."""
    return Fernet.generate_key().decode("ascii"), Fernet.generate_key().decode("ascii")


class NmiProtector:
    """Pseudonymizes, encrypts, decrypts and re-encrypts NMIs with the configured keys."""

    def __init__(self, hmac_key: bytes, fernet_keys: Sequence[bytes]) -> None:
        if len(hmac_key) < MIN_HMAC_KEY_BYTES:
            raise IdentifierKeyError(f"{ENV_NMI_HMAC_KEY}: key needs at least {MIN_HMAC_KEY_BYTES} bytes")
        if not fernet_keys:
            raise IdentifierKeyError(f"{ENV_NMI_FERNET_KEYS}: at least one Fernet key is needed")
        self._hmac_key = hmac_key
        try:
            self._fernet = MultiFernet([Fernet(key) for key in fernet_keys])
            self._newest = Fernet(fernet_keys[0])
        except (ValueError, TypeError):
            raise IdentifierKeyError(f"{ENV_NMI_FERNET_KEYS}: not a valid Fernet key") from None
        self.key_count = len(fernet_keys)

    @classmethod
    def from_text(cls, hmac_key: str | None, fernet_keys: str | None) -> NmiProtector:
        """From the settings' text values (e.g. `EnvVar(...).get_value()` in the Dagster layer)."""
        return cls(parse_hmac_key(hmac_key), parse_fernet_keys(fernet_keys))

    def __repr__(self) -> str:
        return f"NmiProtector(keys hidden, fernet_keys={self.key_count})"

    def pseudonym(self, nmi: str) -> str:
        """`HMAC-SHA256(key, nmi)` as 64 hex characters: the same NMI always gives the same pseudonym."""
        return hmac.new(self._hmac_key, nmi.encode("utf-8"), hashlib.sha256).hexdigest()

    def encrypt(self, nmi: str) -> str:
        """A Fernet token of the NMI under the newest key (a new token each call)."""
        return self._fernet.encrypt(nmi.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The NMI in `token`, trying every configured key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise NmiDecryptionError(
                "an encrypted NMI does not decrypt with any configured key (key removed too early, or damaged)"
            ) from None

    def is_current(self, token: str) -> bool:
        """True if `token` is encrypted under the newest key (nothing to rotate)."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """`token` re-encrypted under the newest key (decrypting with any configured key)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise NmiDecryptionError(
                "an encrypted NMI does not decrypt with any configured key; cannot re-encrypt it"
            ) from None

    def protect_identities(self, nmis: Iterable[str]) -> dict[str, str]:
        """`{pseudonym: token}` for each distinct NMI (rows for `tables.PROTECTED_NMIS`)."""
        return {self.pseudonym(nmi): self.encrypt(nmi) for nmi in sorted(set(nmis))}


def protect_batch(batch: pa.RecordBatch, protector: NmiProtector) -> tuple[pa.RecordBatch, dict[str, str]]:
    """`batch` with its `nmi` column replaced by pseudonyms, and `{pseudonym: token}` for its NMIs.

    Works per distinct NMI (a batch holds few), so the cost does not grow with the number of rows.
    """
    index = batch.schema.get_field_index("nmi")
    nmis = batch.column(index)
    distinct = pc.unique(nmis)
    originals = distinct.to_pylist()
    pseudonyms = pa.array([protector.pseudonym(nmi) for nmi in originals], pa.string())
    replaced = pseudonyms.take(pc.index_in(nmis, value_set=distinct))
    identities = {
        pseudonym: protector.encrypt(nmi)
        for pseudonym, nmi in zip(pseudonyms.to_pylist(), originals, strict=True)
    }
    return batch.set_column(index, batch.schema.field(index), replaced), identities


def rotate_tokens(tokens: Sequence[str], protector: NmiProtector) -> list[str]:
    """Every token re-encrypted under the newest key (for the re-encrypt command)."""
    return [protector.rotate(token) for token in tokens]
