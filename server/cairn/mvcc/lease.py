"""The lease store: which leases exist, their granted TTL, and which keys each one holds.

This is the replicated, deterministic half of leases: every member applies the same grants and
revokes in log order and ends with the same table. Time plays no part here; when a lease runs
out is the leader's business (`cairn.member.lessor`), which then proposes a revoke.

Leases are LevelDB records under the LEASES prefix, staged into the same WriteBatch as the
applied index that covers them, so WAL replay after a crash neither loses nor repeats a grant.
Which keys a lease holds is not stored: it follows from the `lease` field of every live key's
latest value, so it is rebuilt from the history at start (`attached`) and kept up to date from
the events of every write (`follow`), which covers put, delete, txn and revoke alike.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cairn.mvcc.backend import LEASES, Backend
from cairn.proto.internal_pb2 import LeaseRecord
from cairn.proto.kv_pb2 import Event

_ID = struct.Struct(">q")


def lease_key(lease_id: int) -> bytes:
    """The LevelDB key of a lease record (IDs are int64 on the wire, so signed)."""
    return LEASES + _ID.pack(lease_id)


class Staging(Protocol):
    """Where lease records go until the next flush (the MVCC store's WriteBatch)."""

    def stage_raw(self, key: bytes, value: bytes) -> None: ...

    def stage_delete(self, key: bytes) -> None: ...


@dataclass(slots=True)
class Lease:
    """One granted lease: its ID, its TTL in seconds, and the keys attached to it."""

    id: int
    ttl: int
    keys: set[bytes] = field(default_factory=set)


class LeaseStore:
    """The lease table of one member's state machine."""

    def __init__(self, backend: Backend, staging: Staging, attached: Mapping[bytes, int]) -> None:
        """Load the lease records and attach every key whose latest value names a lease.

        A key naming a lease that has no record can only come from a state written before
        leases were stored; it is left unattached (etcd logs and ignores such keys too).
        """
        self._staging = staging
        self._leases: dict[int, Lease] = {}
        self._key_lease: dict[bytes, int] = {}
        # Bumped by every grant and removal: lets the leader's clocks skip an unchanged table.
        self.generation = 0
        for _, raw in backend.scan(LEASES):
            record = LeaseRecord.FromString(raw)
            self._leases[record.ID] = Lease(record.ID, record.TTL)
        for key, lease_id in attached.items():
            self._attach(key, lease_id)

    def __len__(self) -> int:
        return len(self._leases)

    def all(self) -> list[Lease]:
        """Every lease, in ID order (a stable order for listings)."""
        return [self._leases[i] for i in sorted(self._leases)]

    def unordered(self) -> list[Lease]:
        """Every lease, in no particular order (cheaper than all() for bookkeeping)."""
        return list(self._leases.values())

    def exists(self, lease_id: int) -> bool:
        return lease_id in self._leases

    def get(self, lease_id: int) -> Lease | None:
        return self._leases.get(lease_id)

    def lease_of(self, key: bytes) -> int:
        """The lease a live key is attached to, 0 for none."""
        return self._key_lease.get(key, 0)

    def grant(self, lease_id: int, ttl: int) -> Lease:
        """Record a new lease; the caller checked that the ID is free."""
        if lease_id in self._leases:
            raise ValueError(f"lease {lease_id:x} already exists")
        lease = Lease(lease_id, ttl)
        self._leases[lease_id] = lease
        self.generation += 1
        self._staging.stage_raw(
            lease_key(lease_id), LeaseRecord(ID=lease_id, TTL=ttl).SerializeToString()
        )
        return lease

    def remove(self, lease_id: int) -> None:
        """Forget a revoked lease. Its keys must already be deleted (their events followed)."""
        lease = self._leases.pop(lease_id)
        self.generation += 1
        for key in lease.keys:
            # Only reachable if a caller skipped deleting the keys; keep the map consistent.
            self._key_lease.pop(key, None)
        self._staging.stage_delete(lease_key(lease_id))

    def follow(self, events: Iterable[Event]) -> None:
        """Move attachments as a committed write changed keys (events in revision order).

        A put attaches the key to the lease its new value names (or to none) and detaches it
        from the lease it had; a delete detaches it.
        """
        for event in events:
            key = event.kv.key
            self._detach(key)
            if event.type == Event.PUT and event.kv.lease:
                self._attach(key, event.kv.lease)

    def _attach(self, key: bytes, lease_id: int) -> None:
        lease = self._leases.get(lease_id)
        if lease is None:
            return
        lease.keys.add(key)
        self._key_lease[key] = lease_id

    def _detach(self, key: bytes) -> None:
        lease_id = self._key_lease.pop(key, None)
        if lease_id is None:
            return
        lease = self._leases.get(lease_id)
        if lease is not None:
            lease.keys.discard(key)
