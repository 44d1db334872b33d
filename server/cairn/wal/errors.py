"""Exceptions raised by the write-ahead log."""

from __future__ import annotations

import os


class WALError(Exception):
    """Any failure of the WAL: it is missing, locked, unusable after an I/O error, or corrupt."""


class WALCorruptError(WALError):
    """The WAL holds damage that a crash cannot explain.

    A crash can only leave an incomplete record at the very end of the newest segment; that is
    repaired on open. Anything else (a bad checksum followed by more data, a damaged older
    segment, a missing segment) means acknowledged data may be gone, so the member refuses to
    start instead of silently skipping records. The operator has to restore the member from a
    backup or re-add it to the cluster.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int, reason: str) -> None:
        self.path = os.fspath(path)
        self.offset = offset
        self.reason = reason
        super().__init__(
            f"WAL is corrupt: {self.path} at byte offset {offset}: {reason}; "
            "the member refuses to start rather than skip data"
        )
