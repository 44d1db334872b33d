"""Drive the MVCC store the way a member does, with requests built in one line each.

`KV` wraps an `MVCCStore` on a real LevelDB directory and the `Applier` over it. Every request
first passes the same validation the gRPC KV service applies; every write is one applied log
entry (the applied index grows by one) and is flushed at once unless the caller asks to batch;
a compaction flushes, then (unless told to stop half-way) deletes the dropped history and
records the compaction as finished — the member's order of events. `restart()` closes the
LevelDB handle and opens a new store on the same directory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from cairn.api.validation import check_delete_range, check_put, check_range, check_txn
from cairn.member.applier import Applied, Applier, is_write_txn
from cairn.mvcc.backend import HISTORY, Backend
from cairn.mvcc.revision import Revision
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.sealing import Keyring

MAX_TXN_OPS = 128  # etcd's default --max-txn-ops

EVERYTHING = (b"\x00", b"\x00")  # key "\0" with range_end "\0": every key


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with `prefix`".

    The last byte below 0xff is incremented and the rest dropped; a prefix of only 0xff bytes
    has no such bound, so it becomes "\\0" (every key >= prefix), as in clientv3.
    """
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\x00"


# ---- request builders ----------------------------------------------------------------------


def range_request(key: bytes, range_end: bytes = b"", **fields: Any) -> pb.RangeRequest:
    return pb.RangeRequest(key=key, range_end=range_end, **fields)


def put_op(key: bytes, value: bytes = b"", **fields: Any) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, **fields))


def get_op(key: bytes, range_end: bytes = b"", **fields: Any) -> pb.RequestOp:
    return pb.RequestOp(request_range=range_request(key, range_end, **fields))


def delete_op(key: bytes, range_end: bytes = b"", **fields: Any) -> pb.RequestOp:
    return pb.RequestOp(
        request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end, **fields)
    )


def txn_request(
    compare: Iterable[pb.Compare] = (),
    success: Iterable[pb.RequestOp] = (),
    failure: Iterable[pb.RequestOp] = (),
) -> pb.TxnRequest:
    return pb.TxnRequest(compare=list(compare), success=list(success), failure=list(failure))


def txn_op(
    compare: Iterable[pb.Compare] = (),
    success: Iterable[pb.RequestOp] = (),
    failure: Iterable[pb.RequestOp] = (),
) -> pb.RequestOp:
    return pb.RequestOp(request_txn=txn_request(compare, success, failure))


_TARGETS = {
    "version": (pb.Compare.VERSION, "version"),
    "create": (pb.Compare.CREATE, "create_revision"),
    "mod": (pb.Compare.MOD, "mod_revision"),
    "value": (pb.Compare.VALUE, "value"),
    "lease": (pb.Compare.LEASE, "lease"),
}
_RESULTS = {
    "==": pb.Compare.EQUAL,
    "!=": pb.Compare.NOT_EQUAL,
    ">": pb.Compare.GREATER,
    "<": pb.Compare.LESS,
}


def compare(
    key: bytes, target: str, result: str, operand: int | bytes, range_end: bytes = b""
) -> pb.Compare:
    """`compare(b"k", "version", "==", 0)` — target is version/create/mod/value/lease."""
    target_enum, field_name = _TARGETS[target]
    c = pb.Compare(key=key, range_end=range_end, target=target_enum, result=_RESULTS[result])
    setattr(c, field_name, operand)
    return c


# ---- the store under test --------------------------------------------------------------------


class KV:
    """One member's MVCC state on LevelDB, driven through the Applier."""

    def __init__(self, path: Path, *, autoflush: bool = True, keyring: Keyring | None = None):
        self.path = path
        self.autoflush = autoflush
        self.keyring = keyring
        self.pending_compactions: list[tuple[int, list[Revision]]] = []
        self._open()

    def _open(self) -> None:
        self.backend = Backend(str(self.path), self.keyring)
        self.store = MVCCStore(self.backend)
        self.applier = Applier(self.store)
        self.applied_index = self.store.applied_index

    # ---- lifecycle -----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        return self.store.current_rev

    def flush(self) -> None:
        self.store.flush(self.applied_index)

    def restart(self) -> None:
        """Flush, close LevelDB and rebuild the store from disk (unfinished compactions too)."""
        self.flush()
        self.close()
        self.pending_compactions.clear()
        self._open()

    def close(self) -> None:
        self.backend.close()

    def history_revisions(self) -> list[Revision]:
        """Every history record physically present in LevelDB, oldest first."""
        return [Revision.from_bytes(raw) for raw, _ in self.backend.scan(HISTORY)]

    # ---- requests ------------------------------------------------------------------------

    def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        check_range(r)
        return self.applier.range(r)

    def get(self, key: bytes, range_end: bytes = b"", **fields: Any) -> pb.RangeResponse:
        return self.range(range_request(key, range_end, **fields))

    def put(self, key: bytes, value: bytes = b"", **fields: Any) -> pb.PutResponse:
        return self.put_request(pb.PutRequest(key=key, value=value, **fields))

    def put_request(self, r: pb.PutRequest) -> pb.PutResponse:
        check_put(r)
        return cast(pb.PutResponse, self._apply(lambda: self.applier.put(r)).response)

    def delete(self, key: bytes, range_end: bytes = b"", **fields: Any) -> pb.DeleteRangeResponse:
        return self.delete_request(pb.DeleteRangeRequest(key=key, range_end=range_end, **fields))

    def delete_request(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        check_delete_range(r)
        applied = self._apply(lambda: self.applier.delete_range(r))
        return cast(pb.DeleteRangeResponse, applied.response)

    def txn(
        self,
        compare: Iterable[pb.Compare] = (),
        success: Iterable[pb.RequestOp] = (),
        failure: Iterable[pb.RequestOp] = (),
    ) -> pb.TxnResponse:
        return self.txn_request(txn_request(compare, success, failure))

    def txn_request(self, r: pb.TxnRequest) -> pb.TxnResponse:
        """A txn as the KV service serves it: read-only ones skip the log."""
        check_txn(r, MAX_TXN_OPS)
        if not is_write_txn(r):
            return self.applier.readonly_txn(r)
        return cast(pb.TxnResponse, self._apply(lambda: self.applier.txn(r)).response)

    def compact(self, revision: int, *, finish: bool = True) -> pb.CompactionResponse:
        """Compact at `revision`; finish=False stops before the history is deleted."""
        r = pb.CompactionRequest(revision=revision)
        applied = self._apply(lambda: self.applier.compaction(r))
        assert applied.compaction is not None
        self.flush()  # the member flushes before deleting: dropped records may be staged
        self.pending_compactions.append(applied.compaction)
        if finish:
            self.finish_compactions()
        return cast(pb.CompactionResponse, applied.response)

    def grant(self, lease_id: int, ttl: int = 60) -> pb.LeaseGrantResponse:
        r = pb.LeaseGrantRequest(ID=lease_id, TTL=ttl)
        return cast(
            pb.LeaseGrantResponse, self._apply(lambda: self.applier.lease_grant(r)).response
        )

    def revoke(self, lease_id: int) -> pb.LeaseRevokeResponse:
        r = pb.LeaseRevokeRequest(ID=lease_id)
        applied = self._apply(lambda: self.applier.lease_revoke(r))
        return cast(pb.LeaseRevokeResponse, applied.response)

    def lease_keys(self, lease_id: int) -> list[bytes]:
        """The keys attached to a lease, sorted; [] for an unknown lease."""
        lease = self.store.leases.get(lease_id)
        return sorted(lease.keys) if lease is not None else []

    def finish_compactions(self) -> None:
        for rev, obsolete in self.pending_compactions:
            self.store.delete_history(obsolete)
            self.store.finish_compaction(rev)
        self.pending_compactions.clear()

    def _apply(self, apply: Callable[[], Applied]) -> Applied:
        """One committed log entry: its error is the client's answer, the index moves on."""
        self.applied_index += 1
        try:
            return apply()
        finally:
            if self.autoflush:
                self.flush()


# ---- reading responses -----------------------------------------------------------------------


def keys_of(response: pb.RangeResponse) -> list[bytes]:
    return [kv.key for kv in response.kvs]


def values_of(response: pb.RangeResponse) -> list[bytes]:
    return [kv.value for kv in response.kvs]
