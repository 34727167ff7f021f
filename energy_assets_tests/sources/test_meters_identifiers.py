"""Protected identifiers: pseudonyms join across files, originals decrypt, rotate, and keys never leak."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from cryptography.fernet import Fernet

from energy_assets.sources.meters.errors import IdentifierKeyError, NmiDecryptionError
from energy_assets.sources.meters.identifiers import (
    NmiProtector,
    generate_keys,
    parse_fernet_keys,
    parse_hmac_key,
    protect_batch,
    rotate_tokens,
)
from energy_assets.sources.meters.nem12 import read_nem12_table

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nem12"
HMAC_KEY = "x0vPp3Jb0Nq8r9YV2v5b3Z3lQeUeqkqkA1P0C1m2n3o="  # 32 bytes, urlsafe base64
OLD_FERNET = Fernet.generate_key().decode()
NEW_FERNET = Fernet.generate_key().decode()


def protector(fernet_keys: str = OLD_FERNET) -> NmiProtector:
    return NmiProtector.from_text(HMAC_KEY, fernet_keys)


def test_pseudonym_is_a_keyed_hmac_and_joins_across_files() -> None:
    p = protector()
    first_file, identities_1 = protect_batch(
        read_nem12_table(FIXTURES / "nem12_30min_multiple_quality.csv").to_batches()[0], p
    )
    second_file, identities_2 = protect_batch(
        read_nem12_table(FIXTURES / "nem12_zipped.zip").to_batches()[0], p
    )
    pseudonyms_1 = set(first_file.column("nmi").to_pylist())
    assert pseudonyms_1 == set(second_file.column("nmi").to_pylist())
    assert pseudonyms_1 == {p.pseudonym("CCCC123456"), p.pseudonym("VBCD000022")}
    assert all(len(value) == 64 and "CCCC" not in value for value in pseudonyms_1)
    assert set(identities_1) == set(identities_2) == pseudonyms_1
    assert p.decrypt(identities_1[p.pseudonym("CCCC123456")]) == "CCCC123456"
    # another key gives other pseudonyms: useless without the key
    other = NmiProtector.from_text(Fernet.generate_key().decode(), OLD_FERNET)
    assert other.pseudonym("CCCC123456") != p.pseudonym("CCCC123456")


def test_protect_batch_replaces_only_the_nmi_column() -> None:
    table = read_nem12_table(FIXTURES / "nem12_mixed_intervals.csv")
    batch = table.to_batches()[0]
    protected, identities = protect_batch(batch, protector())
    assert protected.schema == batch.schema
    assert protected.drop_columns(["nmi"]).equals(batch.drop_columns(["nmi"]))
    assert len(identities) == 2
    assert protected.column("nmi").to_pylist()[0] == protector().pseudonym("QB12345678")


def test_tokens_still_decrypt_after_a_key_rotation_and_rotate_to_the_new_key() -> None:
    old = protector(OLD_FERNET)
    token = old.encrypt("NEM1201009")
    rotated_keys = protector(f"{NEW_FERNET},{OLD_FERNET}")
    assert rotated_keys.decrypt(token) == "NEM1201009"
    assert not rotated_keys.is_current(token)

    [rotated] = rotate_tokens([token], rotated_keys)
    assert rotated_keys.is_current(rotated)
    assert protector(NEW_FERNET).decrypt(rotated) == "NEM1201009"
    with pytest.raises(NmiDecryptionError) as caught:
        protector(NEW_FERNET).decrypt(token)  # old key retired too early
    assert token not in str(caught.value) and "NEM1201009" not in str(caught.value)


def test_pseudonyms_survive_a_fernet_rotation() -> None:
    assert protector(OLD_FERNET).pseudonym("NMI1") == protector(f"{NEW_FERNET},{OLD_FERNET}").pseudonym(
        "NMI1"
    )


@pytest.mark.parametrize(
    ("hmac_key", "fernet_keys", "message"),
    [
        (None, OLD_FERNET, "ENERGY_METERS_NMI_HMAC_KEY is not set"),
        ("c2hvcnQ=", OLD_FERNET, "ENERGY_METERS_NMI_HMAC_KEY: key is 5 bytes"),
        ("not base64 at all!!", OLD_FERNET, "ENERGY_METERS_NMI_HMAC_KEY: not urlsafe base64"),
        (HMAC_KEY, "", "ENERGY_METERS_NMI_FERNET_KEYS is not set"),
        (
            HMAC_KEY,
            f"{OLD_FERNET},c2VjcmV0LXNob3J0",
            "ENERGY_METERS_NMI_FERNET_KEYS (key 2): a Fernet key is 32",
        ),
    ],
)
def test_key_errors_name_the_setting_never_the_key(
    hmac_key: str | None, fernet_keys: str, message: str
) -> None:
    with pytest.raises(IdentifierKeyError) as caught:
        NmiProtector.from_text(hmac_key, fernet_keys)
    assert message in str(caught.value)
    for secret in (hmac_key, OLD_FERNET, "c2VjcmV0LXNob3J0", "c2hvcnQ="):
        if secret:
            assert secret not in str(caught.value)


def test_repr_hides_the_keys() -> None:
    text = repr(protector(f"{NEW_FERNET},{OLD_FERNET}"))
    assert text == "NmiProtector(keys hidden, fernet_keys=2)"


def test_generated_keys_parse() -> None:
    hmac_key, fernet_key = generate_keys()
    assert len(parse_hmac_key(hmac_key)) == 32
    assert parse_fernet_keys(f" {fernet_key} ,") == [fernet_key.encode()]
    assert (
        NmiProtector.from_text(hmac_key, fernet_key).decrypt(
            NmiProtector.from_text(hmac_key, fernet_key).encrypt("A1")
        )
        == "A1"
    )


def test_protect_batch_on_an_empty_batch() -> None:
    table = read_nem12_table(FIXTURES / "nem12_mixed_intervals.csv").slice(0, 0)
    batch = pa.RecordBatch.from_pylist([], schema=table.schema)
    protected, identities = protect_batch(batch, protector())
    assert protected.num_rows == 0 and identities == {}
