"""Request semantics on top of the MVCC store: what Range, Put, DeleteRange, Txn and Compaction
mean, exactly as etcd's applier defines them.

The same code serves reads (against the store) and the apply of committed log entries (against
a WriteTxn), so a read inside a txn and a plain read can never disagree. Everything here is
deterministic: every member applying the same entry to the same state gets the same result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cairn.errors import (
    ErrCompacted,
    ErrCorrupt,
    ErrFutureRev,
    ErrKeyNotFound,
    ErrLeaseExist,
    ErrLeaseNotFound,
    ErrLeaseTTLTooLarge,
    ErrNoSpace,
)
from cairn.member.alarms import AlarmTable
from cairn.member.auth_checks import check_applied
from cairn.member.auth_store import AUTH_KINDS, AuthStore
from cairn.member.auth_tokens import SimpleTokens
from cairn.mvcc.revision import Revision
from cairn.mvcc.store import MVCCStore, RangeResult, TxnChanges, WriteTxn
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest
from cairn.proto.kv_pb2 import KeyValue

RangeRequest = pb.RangeRequest


class ReadView(Protocol):
    """Either the store (plain reads) or a WriteTxn (reads inside a txn)."""

    def range(
        self, key: bytes, end: bytes | None, rev: int = 0, limit: int = 0, count_only: bool = False
    ) -> RangeResult: ...


def store_range_end(range_end: bytes) -> bytes | None:
    """The wire's range_end to the store's: absent = one key, "\\0" = no upper bound."""
    if not range_end:
        return None
    if range_end == b"\x00":
        return b""
    return range_end


_SORT_KEYS: dict[int, Callable[[KeyValue], object]] = {
    RangeRequest.KEY: lambda kv: kv.key,
    RangeRequest.VERSION: lambda kv: kv.version,
    RangeRequest.CREATE: lambda kv: kv.create_revision,
    RangeRequest.MOD: lambda kv: kv.mod_revision,
    RangeRequest.VALUE: lambda kv: kv.value,
}


def _keep(kv: KeyValue, r: pb.RangeRequest) -> bool:
    """The min/max revision filters; a zero bound is no bound."""
    return not (
        (r.max_mod_revision and kv.mod_revision > r.max_mod_revision)
        or (r.min_mod_revision and kv.mod_revision < r.min_mod_revision)
        or (r.max_create_revision and kv.create_revision > r.max_create_revision)
        or (r.min_create_revision and kv.create_revision < r.min_create_revision)
    )


def do_range(view: ReadView, r: pb.RangeRequest) -> pb.RangeResponse:
    """Serve a RangeRequest from a view.

    Sorting (other than by key, which is the store's order) and the revision filters need
    every match before the limit applies; otherwise one extra key is fetched to learn `more`.
    """
    filtered = bool(
        r.min_mod_revision or r.max_mod_revision or r.min_create_revision or r.max_create_revision
    )
    order = r.sort_order
    if order == RangeRequest.NONE and r.sort_target != RangeRequest.KEY:
        order = RangeRequest.ASCEND
    fetch_all = filtered or r.sort_order != RangeRequest.NONE
    fetch_limit = 0 if fetch_all or r.limit <= 0 else r.limit + 1
    result = view.range(
        r.key, store_range_end(r.range_end), r.revision, fetch_limit, count_only=r.count_only
    )
    kvs = result.kvs
    if filtered:
        kvs = [kv for kv in kvs if _keep(kv, r)]
    if order != RangeRequest.NONE and not (
        order == RangeRequest.ASCEND and r.sort_target == RangeRequest.KEY
    ):
        # Stable, so equal sort values keep key order in both directions.
        kvs = sorted(kvs, key=_SORT_KEYS[r.sort_target], reverse=order == RangeRequest.DESCEND)
    more = False
    if r.limit > 0 and len(kvs) > r.limit:
        kvs = kvs[: r.limit]
        more = True
    if r.keys_only:
        for kv in kvs:
            kv.ClearField("value")
    response = pb.RangeResponse(kvs=kvs, more=more, count=result.count)
    response.header.revision = result.rev
    return response


# What a CORRUPT alarm refuses at apply time: every request kind that changes the keyspace
# or the leases (etcd's corrupt applier). Alarms still apply, so the alarm can be disarmed;
# reads and read-only txns never reach the applier's write path and keep working.
REFUSED_WHEN_CORRUPT = frozenset(
    ("put", "delete_range", "txn", "compaction", "lease_grant", "lease_revoke")
)

# etcd's upper bound on a granted TTL, in seconds (lease.MaxLeaseTTL).
MAX_LEASE_TTL = 9_000_000_000


@dataclass(slots=True)
class Applied:
    """The response to a committed request, and what it changed."""

    response: object
    changes: TxnChanges | None = None
    compaction: tuple[int, list[Revision]] | None = None


class Applier:
    """Applies committed requests to the store."""

    def __init__(self, store: MVCCStore, tokens: SimpleTokens | None = None) -> None:
        self.store = store
        # The store owns the lease table: its writes move attachments, its flushes persist it.
        self.leases = store.leases
        self.alarms = AlarmTable(store)
        # Tokens are the member's (they outlive a swapped-in image); users and roles the store's.
        self.auth = AuthStore(store, tokens if tokens is not None else SimpleTokens())

    # ---- reads -----------------------------------------------------------------------

    def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        return do_range(self.store, r)

    def readonly_txn(self, r: pb.TxnRequest) -> pb.TxnResponse:
        """A txn with no writes anywhere in it: served like a read, without the log."""
        counters = self.store.counters
        ranges_before = counters.ranges
        path = self._compare_path(self.store, r)
        self._check_ranges(r, path)
        response = pb.TxnResponse()
        self._run_txn(self.store, r, path, response)
        response.header.revision = self.store.current_rev
        if counters.ranges - ranges_before > 1:
            counters.txns += 1  # as a write txn's end() counts one with several operations
        return response

    # ---- writes ----------------------------------------------------------------------

    def apply(self, request: InternalRequest, index: int = 0) -> Applied:
        """Apply one committed request (the kinds every member type replicates) at log
        `index`; when auth is enabled, the request's user must be allowed to make it."""
        kind = request.WhichOneof("request")
        if kind in REFUSED_WHEN_CORRUPT and self.alarms.has(pb.CORRUPT):
            raise ErrCorrupt()
        check_applied(self.auth, self.leases, request)
        if kind in AUTH_KINDS:
            return Applied(self.auth.apply(request, index))
        if kind == "put":
            return self.put(request.put)
        if kind == "delete_range":
            return self.delete_range(request.delete_range)
        if kind == "txn":
            return self.txn(request.txn)
        if kind == "compaction":
            return self.compaction(request.compaction)
        if kind == "lease_grant":
            return self.lease_grant(request.lease_grant)
        if kind == "lease_revoke":
            return self.lease_revoke(request.lease_revoke)
        if kind == "alarm":
            return Applied(self.alarms.apply(request.alarm))
        raise ValueError(f"unknown request kind {kind!r} in request {request.header.ID:x}")

    def _refuse_when_out_of_space(self) -> None:
        """While a NOSPACE alarm is active, what would grow the database is refused.

        Checked at apply time, on every member alike (the alarm is replicated state), as etcd's
        capped applier does: puts, txns with a put in any branch and lease grants fail; deletes,
        delete-only txns, compaction and lease revokes still go through, so an operator can
        free space.
        """
        if self.alarms.has(pb.NOSPACE):
            raise ErrNoSpace()

    def put(self, r: pb.PutRequest) -> Applied:
        self._refuse_when_out_of_space()
        if r.lease and not self.leases.exists(r.lease):
            raise ErrLeaseNotFound()
        txn = self.store.write()
        response = self._put(txn, r)
        return Applied(response, txn.end())

    def delete_range(self, r: pb.DeleteRangeRequest) -> Applied:
        txn = self.store.write()
        response = self._delete_range(txn, r)
        return Applied(response, txn.end())

    def txn(self, r: pb.TxnRequest) -> Applied:
        if txn_has_puts(r):
            self._refuse_when_out_of_space()
        path = self._compare_path(self.store, r)
        if is_write_txn(r):
            self._check_puts(self.store, r, path)
        self._check_ranges(r, path)
        txn = self.store.write()
        response = pb.TxnResponse()
        try:
            self._run_txn(txn, r, path, response)
        except BaseException:
            # etcd's checks before the txn cannot foresee every op failure (a put with
            # ignore_value of a key an earlier op of the same txn deleted): refuse the whole
            # txn with the op's error and leave the store exactly as it was.
            txn.abort()
            raise
        changes = txn.end()
        response.header.revision = txn.rev
        return Applied(response, changes)

    def compaction(self, r: pb.CompactionRequest) -> Applied:
        obsolete = self.store.compact(r.revision)
        response = pb.CompactionResponse()
        response.header.revision = self.store.current_rev
        return Applied(response, compaction=(r.revision, obsolete))

    def lease_grant(self, r: pb.LeaseGrantRequest) -> Applied:
        """Record a lease with the TTL the proposer settled (the minimum is applied before
        proposing, so every member records the same TTL); the checks come in etcd's order."""
        self._refuse_when_out_of_space()
        if r.ID == 0:
            raise ErrLeaseNotFound()
        if r.TTL > MAX_LEASE_TTL:
            raise ErrLeaseTTLTooLarge()
        if self.leases.exists(r.ID):
            raise ErrLeaseExist()
        lease = self.leases.grant(r.ID, r.TTL)
        response = pb.LeaseGrantResponse(ID=lease.id, TTL=lease.ttl)
        response.header.revision = self.store.current_rev
        return Applied(response)

    def lease_revoke(self, r: pb.LeaseRevokeRequest) -> Applied:
        """Delete every key the lease holds, in one revision and in key order (so every
        member writes identical history), then forget the lease."""
        lease = self.leases.get(r.ID)
        if lease is None:
            raise ErrLeaseNotFound()
        txn = self.store.write()
        for key in sorted(lease.keys):
            txn.delete_range(key, None)
        changes = txn.end()
        self.leases.remove(r.ID)
        response = pb.LeaseRevokeResponse()
        response.header.revision = self.store.current_rev
        return Applied(response, changes if changes.events else None)

    # ---- the pieces ------------------------------------------------------------------

    def _put(self, txn: WriteTxn, r: pb.PutRequest) -> pb.PutResponse:
        previous: KeyValue | None = None
        if r.prev_kv or r.ignore_value or r.ignore_lease:
            found = txn.range(r.key, None).kvs
            previous = found[0] if found else None
        if (r.ignore_value or r.ignore_lease) and previous is None:
            raise ErrKeyNotFound()
        value = previous.value if r.ignore_value and previous is not None else r.value
        lease = previous.lease if r.ignore_lease and previous is not None else r.lease
        txn.put(r.key, value, lease)
        response = pb.PutResponse()
        response.header.revision = txn.rev
        if r.prev_kv and previous is not None:
            response.prev_kv.CopyFrom(previous)
        return response

    def _delete_range(self, txn: WriteTxn, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        end = store_range_end(r.range_end)
        response = pb.DeleteRangeResponse()
        if r.prev_kv:
            response.prev_kvs.extend(txn.range(r.key, end).kvs)
        response.deleted = txn.delete_range(r.key, end)
        response.header.revision = txn.rev
        return response

    def _compare_path(self, view: ReadView, r: pb.TxnRequest) -> list[bool]:
        """Which branch every txn on the executed path takes, depth first.

        All compares, nested ones included, see the state before the txn runs.
        """
        succeeded = all(compare_holds(view, c) for c in r.compare)
        path = [succeeded]
        for op in r.success if succeeded else r.failure:
            if op.WhichOneof("request") == "request_txn":
                path.extend(self._compare_path(view, op.request_txn))
        return path

    def _walk(
        self, r: pb.TxnRequest, path: list[bool], visit: Callable[[pb.RequestOp], None]
    ) -> int:
        """Visit every op on the executed path; returns how many path entries were used."""
        used = 1
        for op in r.success if path[0] else r.failure:
            if op.WhichOneof("request") == "request_txn":
                used += self._walk(op.request_txn, path[used:], visit)
            else:
                visit(op)
        return used

    def _check_puts(self, view: ReadView, r: pb.TxnRequest, path: list[bool]) -> None:
        def check(op: pb.RequestOp) -> None:
            if op.WhichOneof("request") != "request_put":
                return
            put = op.request_put
            if (put.ignore_value or put.ignore_lease) and not view.range(put.key, None).kvs:
                raise ErrKeyNotFound()
            if put.lease and not self.leases.exists(put.lease):
                raise ErrLeaseNotFound()

        self._walk(r, path, check)

    def _check_ranges(self, r: pb.TxnRequest, path: list[bool]) -> None:
        current, compacted = self.store.current_rev, self.store.compact_rev

        def check(op: pb.RequestOp) -> None:
            if op.WhichOneof("request") != "request_range":
                return
            rev = op.request_range.revision
            if rev == 0:
                return
            if rev > current:
                raise ErrFutureRev()
            if rev < compacted:
                raise ErrCompacted()

        self._walk(r, path, check)

    def _run_txn(
        self, view: ReadView, r: pb.TxnRequest, path: list[bool], response: pb.TxnResponse
    ) -> int:
        """Execute the chosen branch into `response`; returns how many path entries it used."""
        response.succeeded = path[0]
        used = 1
        for op in r.success if path[0] else r.failure:
            kind = op.WhichOneof("request")
            out = response.responses.add()
            if kind == "request_range":
                out.response_range.CopyFrom(do_range(view, op.request_range))
            elif kind == "request_put":
                assert isinstance(view, WriteTxn)
                out.response_put.CopyFrom(self._put(view, op.request_put))
            elif kind == "request_delete_range":
                assert isinstance(view, WriteTxn)
                out.response_delete_range.CopyFrom(
                    self._delete_range(view, op.request_delete_range)
                )
            elif kind == "request_txn":
                nested = out.response_txn
                nested.header.SetInParent()
                used += self._run_txn(view, op.request_txn, path[used:], nested)
        return used


def is_write_txn(r: pb.TxnRequest) -> bool:
    """Whether any branch at any depth writes; read-only txns skip the log."""
    return _txn_has(r, ("request_put", "request_delete_range"))


def txn_has_puts(r: pb.TxnRequest) -> bool:
    """Whether any branch at any depth puts: what makes a txn cost space (etcd's quota)."""
    return _txn_has(r, ("request_put",))


def _txn_has(r: pb.TxnRequest, kinds: tuple[str, ...]) -> bool:
    for op in (*r.success, *r.failure):
        kind = op.WhichOneof("request")
        if kind in kinds or (kind == "request_txn" and _txn_has(op.request_txn, kinds)):
            return True
    return False


def compare_holds(view: ReadView, c: pb.Compare) -> bool:
    """A compare over a key or range holds when every key in it satisfies it.

    A missing key (or an empty range) compares as a zero KeyValue, except on VALUE, which fails.
    """
    kvs: Sequence[KeyValue] = view.range(c.key, store_range_end(c.range_end)).kvs
    if not kvs:
        if c.target == pb.Compare.VALUE:
            return False
        kvs = [KeyValue()]
    return all(_compare_one(kv, c) for kv in kvs)


def _compare_one(kv: KeyValue, c: pb.Compare) -> bool:
    target = c.target
    ours: object
    theirs: object
    if target == pb.Compare.VALUE:
        ours, theirs = kv.value, c.value
    elif target == pb.Compare.VERSION:
        ours, theirs = kv.version, c.version
    elif target == pb.Compare.CREATE:
        ours, theirs = kv.create_revision, c.create_revision
    elif target == pb.Compare.MOD:
        ours, theirs = kv.mod_revision, c.mod_revision
    elif target == pb.Compare.LEASE:
        ours, theirs = kv.lease, c.lease
    else:
        return False
    result = c.result
    if result == pb.Compare.EQUAL:
        return ours == theirs
    if result == pb.Compare.NOT_EQUAL:
        return ours != theirs
    if result == pb.Compare.GREATER:
        return ours > theirs  # type: ignore[operator]
    if result == pb.Compare.LESS:
        return ours < theirs  # type: ignore[operator]
    return False
