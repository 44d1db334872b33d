"""Which key ranges a user's permissions cover, as etcd decides it.

A permission is a single key (empty range_end), a range [key, range_end), or everything from
key on (range_end "\\0"). A request on a single key is allowed when any permission of the
right type contains the key; a request on a range only when the permissions together cover
the whole range without a gap (so two adjacent grants cover their union, as in etcd). READWRITE
counts as both READ and WRITE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cairn.proto.auth_pb2 import Permission

# An interval's end; None is "no upper bound".
End = bytes | None


def _interval(key: bytes, range_end: bytes) -> tuple[bytes, End]:
    if not range_end:
        return key, key + b"\x00"  # a single key: [key, key\0)
    if range_end == b"\x00":
        return key, None
    return key, range_end


@dataclass(frozen=True, slots=True)
class Coverage:
    """The merged intervals one kind of access (read or write) reaches, sorted by start."""

    intervals: tuple[tuple[bytes, End], ...]

    @classmethod
    def of(cls, permissions: Iterable[tuple[bytes, bytes]]) -> Coverage:
        return cls(tuple(sorted(_interval(k, e) for k, e in permissions)))

    def contains_key(self, key: bytes) -> bool:
        return any(s <= key and (e is None or key < e) for s, e in self.intervals)

    def covers(self, key: bytes, range_end: bytes) -> bool:
        """Whether a request on (key, range_end), with the wire's conventions, is covered."""
        if not range_end:
            return self.contains_key(key)
        start, end = _interval(key, range_end)
        if end is not None and end <= start:
            return self.contains_key(key)  # an empty range: judged by its first key
        reached = start
        for s, e in self.intervals:
            if s > reached:
                break  # a gap before this interval
            if e is None:
                return True
            if e > reached:
                reached = e
                if end is not None and reached >= end:
                    return True
        return False


@dataclass(frozen=True, slots=True)
class UserAccess:
    """Everything one user may read and write, merged over all of its roles."""

    read: Coverage
    write: Coverage

    @classmethod
    def of(cls, permissions: Iterable[Permission]) -> UserAccess:
        reads: list[tuple[bytes, bytes]] = []
        writes: list[tuple[bytes, bytes]] = []
        for p in permissions:
            pair = (p.key, p.range_end)
            if p.permType in (Permission.READ, Permission.READWRITE):
                reads.append(pair)
            if p.permType in (Permission.WRITE, Permission.READWRITE):
                writes.append(pair)
        return cls(Coverage.of(reads), Coverage.of(writes))
