"""The sealed-record format: what opens, and what is refused."""

from __future__ import annotations

import pytest
from tests.sealing.keys import keyring, secret

from cairn.sealing import Keyring, TamperedRecordError, UnknownKeyError, is_sealed, key_id_of


def test_a_sealed_record_opens_to_its_plaintext_with_the_same_context() -> None:
    ring = keyring("k1", "k1")
    sealed = ring.seal(b"the value", b"r-context")
    assert ring.open(sealed, b"r-context") == b"the value"


def test_a_sealed_record_names_its_key_and_hides_the_plaintext() -> None:
    ring = keyring("key-2026.11_a", "key-2026.11_a")
    sealed = ring.seal(b"distinctive-plaintext", b"ctx")
    assert is_sealed(sealed)
    assert key_id_of(sealed) == "key-2026.11_a"
    assert b"distinctive-plaintext" not in sealed


def test_every_seal_uses_a_fresh_nonce() -> None:
    ring = keyring("k1", "k1")
    assert ring.seal(b"same", b"ctx") != ring.seal(b"same", b"ctx")


def test_a_flipped_ciphertext_bit_is_refused() -> None:
    ring = keyring("k1", "k1")
    sealed = bytearray(ring.seal(b"the value", b"ctx"))
    sealed[-20] ^= 0x01
    with pytest.raises(TamperedRecordError, match="fails authentication"):
        ring.open(bytes(sealed), b"ctx")


def test_a_record_moved_to_another_context_is_refused() -> None:
    ring = keyring("k1", "k1")
    sealed = ring.seal(b"the value", b"r\x00\x00\x00\x01")
    with pytest.raises(TamperedRecordError):
        ring.open(sealed, b"r\x00\x00\x00\x02")


def test_a_header_edited_to_name_another_known_key_is_refused() -> None:
    ring = keyring("k1", "k1", "k2")
    sealed = ring.seal(b"the value", b"ctx")
    edited = sealed.replace(b"k1", b"k2", 1)
    assert key_id_of(edited) == "k2"
    with pytest.raises(TamperedRecordError):
        ring.open(edited, b"ctx")


def test_a_different_secret_under_the_same_id_is_refused() -> None:
    sealed = keyring("k1", "k1").seal(b"the value", b"ctx")
    with pytest.raises(TamperedRecordError):
        keyring("k1", "k1").open(sealed, b"ctx")


def test_a_record_sealed_with_a_key_not_in_the_keyring_names_that_key() -> None:
    sealed = keyring("old", "old").seal(b"the value", b"ctx")
    with pytest.raises(UnknownKeyError, match=r"'old'.*keys there: 'new'") as raised:
        keyring("new", "new").open(sealed, b"ctx")
    assert raised.value.key_id == "old"


def test_an_empty_keyring_writes_in_clear_and_cannot_open_a_sealed_record() -> None:
    empty = Keyring.empty()
    assert empty.seal(b"plain", b"ctx") == b"plain"
    with pytest.raises(UnknownKeyError, match="keys there: none"):
        empty.open(keyring("k1", "k1").seal(b"x", b"ctx"), b"ctx")


def test_a_truncated_record_is_refused() -> None:
    sealed = keyring("k1", "k1").seal(b"the value", b"ctx")
    with pytest.raises(TamperedRecordError, match="truncated"):
        keyring("k1", "k1").open(sealed[:20], b"ctx")


def test_replacing_a_keyring_changes_the_active_key_and_keeps_old_records_readable() -> None:
    old, new = secret(), secret()
    ring = Keyring("k1", {"k1": old})
    sealed_before = ring.seal(b"before", b"ctx")
    ring.replace(Keyring("k2", {"k1": old, "k2": new}))
    assert key_id_of(ring.seal(b"after", b"ctx")) == "k2"
    assert ring.open(sealed_before, b"ctx") == b"before"
