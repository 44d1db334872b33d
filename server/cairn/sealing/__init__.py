"""Encryption at rest: the sealed-record format, the keyring and the key file.

The lowest layer after the protos: the WAL (`cairn.wal`) and the MVCC backend
(`cairn.mvcc.backend`) both seal what they write with a `Keyring` the member loaded from
`--encryption-key-file`, and open what they read with it.
"""

from cairn.sealing.envelope import (
    MARKER,
    SealError,
    TamperedRecordError,
    UnknownKeyError,
    is_sealed,
    key_id_of,
)
from cairn.sealing.keyfile import KeyFileError, load_key_file
from cairn.sealing.keyring import PLAINTEXT, Keyring

__all__ = [
    "MARKER",
    "PLAINTEXT",
    "KeyFileError",
    "Keyring",
    "SealError",
    "TamperedRecordError",
    "UnknownKeyError",
    "is_sealed",
    "key_id_of",
    "load_key_file",
]
