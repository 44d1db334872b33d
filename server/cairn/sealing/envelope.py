"""The format of one sealed record: AES-GCM with a header that names its key.

Layout (all lengths in bytes)::

    marker    1   0xC5: tells a sealed record from a plaintext one (cairn's plaintext
                  history records start with b"p" or b"t", WAL entries have their own type)
    version   1   1
    id length 1   1..64
    key id    n   ASCII, the id of the key in the key file
    nonce     12  random for every record (os.urandom): never reused under one key
    sealed    *   AES-GCM ciphertext followed by its 16-byte tag

The associated data is the header (marker through key id) followed by the record's context,
which the caller chooses: the LevelDB key for a stored record, the index, term and kind for a
WAL entry. So a sealed value moved under another key, or its header edited to name another
key, fails authentication instead of decrypting into the wrong place.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MARKER = 0xC5
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
MAX_KEY_ID_BYTES = 64


class SealError(Exception):
    """A sealed record cannot be opened."""


class UnknownKeyError(SealError):
    """The record was sealed with a key id the keyring does not hold."""

    def __init__(self, key_id: str, known: list[str]) -> None:
        self.key_id = key_id
        have = ", ".join(repr(k) for k in known) if known else "none"
        super().__init__(
            f"a record is sealed with encryption key {key_id!r}, which is not in the key file "
            f"(keys there: {have}); put that key back into --encryption-key-file"
        )


class TamperedRecordError(SealError):
    """Authentication failed: the record, its header or its context was altered."""


def header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    if not 0 < len(raw) <= MAX_KEY_ID_BYTES:
        raise ValueError(f"key id must be 1..{MAX_KEY_ID_BYTES} ASCII bytes: {key_id!r}")
    return bytes((MARKER, VERSION, len(raw))) + raw


def seal(aead: AESGCM, head: bytes, plaintext: bytes, context: bytes) -> bytes:
    """`head` (from header()) + a fresh nonce + the AES-GCM sealed plaintext."""
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + aead.encrypt(nonce, plaintext, head + context)


def is_sealed(value: bytes) -> bool:
    return bool(value) and value[0] == MARKER


def key_id_of(sealed: bytes) -> str:
    """The key id a sealed record names (its header is checked, not its tag)."""
    return _split(sealed)[1]


def _split(sealed: bytes) -> tuple[int, str]:
    """(offset of the nonce, key id); raises TamperedRecordError for a malformed header."""
    if len(sealed) < 3 or sealed[0] != MARKER:
        raise TamperedRecordError("not a sealed record (bad marker)")
    if sealed[1] != VERSION:
        raise TamperedRecordError(f"sealed record has unknown format version {sealed[1]}")
    n = sealed[2]
    start = 3 + n
    if n == 0 or len(sealed) < start + NONCE_BYTES + TAG_BYTES:
        raise TamperedRecordError("sealed record is truncated")
    try:
        key_id = sealed[3:start].decode("ascii")
    except UnicodeDecodeError:
        raise TamperedRecordError("sealed record has a key id that is not ASCII") from None
    return start, key_id


def open_sealed(aead_for: dict[str, AESGCM], sealed: bytes, context: bytes) -> bytes:
    """The plaintext of `sealed`, decrypted with the key its header names."""
    start, key_id = _split(sealed)
    aead = aead_for.get(key_id)
    if aead is None:
        raise UnknownKeyError(key_id, sorted(aead_for))
    nonce = sealed[start : start + NONCE_BYTES]
    try:
        return aead.decrypt(nonce, sealed[start + NONCE_BYTES :], sealed[:start] + context)
    except InvalidTag:
        raise TamperedRecordError(
            f"a record sealed with encryption key {key_id!r} fails authentication: it was "
            "altered, moved, or the key with that id is not the one that sealed it"
        ) from None
