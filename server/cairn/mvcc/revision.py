"""Revisions: (main, sub) pairs and their byte encoding as LevelDB keys.

`main` is the store revision a client sees (one per write request or txn); `sub` orders the
changes inside it. Big-endian fixed-width encoding makes LevelDB's byte order equal revision
order, so history scans are plain range iterations.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

_PAIR = struct.Struct(">QQ")


class Revision(NamedTuple):
    """One change's position in history."""

    main: int
    sub: int = 0

    def to_bytes(self) -> bytes:
        return _PAIR.pack(self.main, self.sub)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Revision:
        main, sub = _PAIR.unpack(raw)
        return cls(main, sub)
