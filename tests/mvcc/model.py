"""A reference model of etcd's KV semantics, written for clarity rather than speed.

The whole history is a dict: key → every change ever made to it, oldest first. A change records
the revision, the value (None for a delete), and the create revision, version and lease the key
had afterwards. Nothing is ever forgotten: compaction only moves the line below which reads are
refused, which is all a client can observe of it (the store's physical clean-up is checked by
the unit tests). A restart changes nothing here.

Each method takes the protobuf request and returns the protobuf response etcd would send, or
raises the error etcd would answer with.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

from cairn.errors import ErrCompacted, ErrFutureRev, ErrKeyNotFound, ErrLeaseNotFound
from cairn.proto import rpc_pb2 as pb
from cairn.proto.kv_pb2 import KeyValue

R = pb.RangeRequest


class FailedMidTxn(ErrKeyNotFound):
    """An ignore_value/ignore_lease put found its key deleted by an earlier op of its txn.

    The pre-txn check passed, so the txn fails half-way. etcd panics on this; the model expects
    the request to be refused with nothing changed, as cairn does.
    """


@dataclass(frozen=True)
class Change:
    revision: int
    value: bytes | None  # None: the key was deleted
    create_revision: int
    version: int
    lease: int = 0


class Model:
    def __init__(self) -> None:
        self.history: dict[bytes, list[Change]] = {}
        self.revision = 1  # a fresh store is at revision 1
        self.compacted = -1  # etcd accepts a first compaction even at revision 0

    # ---- looking things up ------------------------------------------------------------------

    def value_at(self, key: bytes, revision: int) -> KeyValue | None:
        """The key as a read at `revision` sees it; None if it did not exist then."""
        latest = None
        for change in self.history.get(key, []):
            if change.revision <= revision:
                latest = change
        if latest is None or latest.value is None:
            return None
        return KeyValue(
            key=key,
            value=latest.value,
            create_revision=latest.create_revision,
            mod_revision=latest.revision,
            version=latest.version,
            lease=latest.lease,
        )

    def keys_in(self, key: bytes, range_end: bytes) -> list[bytes]:
        """Keys ever written that the wire's (key, range_end) covers, in byte order."""
        if range_end == b"":
            return [key] if key in self.history else []
        if range_end == b"\x00":
            return sorted(k for k in self.history if k >= key)
        return sorted(k for k in self.history if key <= k < range_end)

    def values_in(self, key: bytes, range_end: bytes, revision: int) -> list[KeyValue]:
        found = (self.value_at(k, revision) for k in self.keys_in(key, range_end))
        return [kv for kv in found if kv is not None]

    # ---- requests ---------------------------------------------------------------------------

    def range(self, r: pb.RangeRequest) -> pb.RangeResponse:
        return self._range(r, self.revision)

    def _range(self, r: pb.RangeRequest, current: int) -> pb.RangeResponse:
        """`current` is the revision of the view: the store's, or a txn's once it wrote."""
        if r.revision > current:
            raise ErrFutureRev()
        revision = r.revision if r.revision > 0 else current
        if revision < self.compacted:
            raise ErrCompacted()
        kvs = self.values_in(r.key, r.range_end, revision)
        response = pb.RangeResponse(count=len(kvs))
        response.header.revision = current
        if r.count_only:
            return response

        filtered = bool(
            r.min_mod_revision
            or r.max_mod_revision
            or r.min_create_revision
            or r.max_create_revision
        )
        # etcd fetches every match when it must sort (any explicit order) or filter; otherwise
        # it fetches limit + 1 in key order, and a sort_target without an order sorts just those.
        if r.limit > 0 and not filtered and r.sort_order == R.NONE:
            kvs = kvs[: r.limit + 1]
        if r.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= r.min_mod_revision]
        if r.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= r.max_mod_revision]
        if r.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= r.min_create_revision]
        if r.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= r.max_create_revision]

        order = r.sort_order
        if order == R.NONE and r.sort_target != R.KEY:
            order = R.ASCEND
        if order != R.NONE:
            sort_value = {
                R.KEY: lambda kv: kv.key,
                R.VERSION: lambda kv: kv.version,
                R.CREATE: lambda kv: kv.create_revision,
                R.MOD: lambda kv: kv.mod_revision,
                R.VALUE: lambda kv: kv.value,
            }[r.sort_target]
            # Python's sort is stable, also with reverse=True: ties stay in key order.
            kvs = sorted(kvs, key=sort_value, reverse=order == R.DESCEND)

        if r.limit > 0 and len(kvs) > r.limit:
            kvs = kvs[: r.limit]
            response.more = True
        for kv in kvs:
            if r.keys_only:
                kv.value = b""
            response.kvs.append(kv)
        return response

    def put(self, r: pb.PutRequest) -> pb.PutResponse:
        if r.lease:
            raise ErrLeaseNotFound()  # no lease is ever granted in this model
        return _Write(self).put(r)

    def delete_range(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        return _Write(self).delete_range(r)

    def txn(self, r: pb.TxnRequest) -> pb.TxnResponse:
        # Every compare on the path, nested ones too, is decided before anything runs.
        path = self._choose_branches(r)
        ops = self._ops_on_path(r, path)
        # Then the puts on the path, against the state before the txn, in order...
        for op in ops:
            if op.WhichOneof("request") != "request_put":
                continue
            put = op.request_put
            missing = self.value_at(put.key, self.revision) is None
            if (put.ignore_value or put.ignore_lease) and missing:
                raise ErrKeyNotFound()
            if put.lease:
                raise ErrLeaseNotFound()
        # ...then the revisions of the ranges on the path.
        for op in ops:
            if op.WhichOneof("request") != "request_range" or op.request_range.revision == 0:
                continue
            if op.request_range.revision > self.revision:
                raise ErrFutureRev()
            if op.request_range.revision < self.compacted:
                raise ErrCompacted()

        saved = (copy.deepcopy(self.history), self.revision)
        write = _Write(self)
        response = pb.TxnResponse()
        try:
            write.run_txn(r, iter(path), response)
        except ErrKeyNotFound as half_done:
            self.history, self.revision = saved
            raise FailedMidTxn() from half_done
        response.header.revision = write.revision
        return response

    def compaction(self, r: pb.CompactionRequest) -> pb.CompactionResponse:
        if r.revision <= self.compacted:
            raise ErrCompacted()
        if r.revision > self.revision:
            raise ErrFutureRev()
        self.compacted = r.revision
        response = pb.CompactionResponse()
        response.header.revision = self.revision
        return response

    # ---- txn helpers ------------------------------------------------------------------------

    def _choose_branches(self, r: pb.TxnRequest) -> list[bool]:
        """Whether each txn on the executed path succeeds, outer first, depth first."""
        succeeded = all(self._holds(c) for c in r.compare)
        path = [succeeded]
        for op in r.success if succeeded else r.failure:
            if op.WhichOneof("request") == "request_txn":
                path += self._choose_branches(op.request_txn)
        return path

    def _ops_on_path(self, r: pb.TxnRequest, path: list[bool]) -> list[pb.RequestOp]:
        """The non-txn ops that will run, in order."""
        ops: list[pb.RequestOp] = []
        branches = iter(path)

        def walk(txn: pb.TxnRequest) -> None:
            for op in txn.success if next(branches) else txn.failure:
                if op.WhichOneof("request") == "request_txn":
                    walk(op.request_txn)
                else:
                    ops.append(op)

        walk(r)
        return ops

    def _holds(self, c: pb.Compare) -> bool:
        kvs = self.values_in(c.key, c.range_end, self.revision)
        if not kvs:
            if c.target == pb.Compare.VALUE:
                return False
            kvs = [KeyValue()]  # a missing key compares as all zeros
        return all(_compare(kv, c) for kv in kvs)


def _compare(kv: KeyValue, c: pb.Compare) -> bool:
    ours, theirs = {
        pb.Compare.VERSION: (kv.version, c.version),
        pb.Compare.CREATE: (kv.create_revision, c.create_revision),
        pb.Compare.MOD: (kv.mod_revision, c.mod_revision),
        pb.Compare.VALUE: (kv.value, c.value),
        pb.Compare.LEASE: (kv.lease, c.lease),
    }[c.target]
    if c.result == pb.Compare.EQUAL:
        return ours == theirs
    if c.result == pb.Compare.NOT_EQUAL:
        return ours != theirs
    if c.result == pb.Compare.GREATER:
        return ours > theirs  # type: ignore[operator]
    return ours < theirs  # type: ignore[operator]


class _Write:
    """One write request or txn: all its changes get revision model.revision + 1."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.new_revision = model.revision + 1

    @property
    def revision(self) -> int:
        """What the txn's reads see: the model moves to the new revision at the first change."""
        return self.model.revision

    def _record(self, key: bytes, change: Change) -> None:
        self.model.history.setdefault(key, []).append(change)
        self.model.revision = self.new_revision

    def put(self, r: pb.PutRequest) -> pb.PutResponse:
        previous = self.model.value_at(r.key, self.revision)
        if (r.ignore_value or r.ignore_lease) and previous is None:
            raise ErrKeyNotFound()
        value = previous.value if r.ignore_value and previous is not None else r.value
        lease = previous.lease if r.ignore_lease and previous is not None else r.lease
        if previous is None:
            create_revision, version = self.new_revision, 1
        else:
            create_revision, version = previous.create_revision, previous.version + 1
        self._record(r.key, Change(self.new_revision, value, create_revision, version, lease))
        response = pb.PutResponse()
        response.header.revision = self.revision
        if r.prev_kv and previous is not None:
            response.prev_kv.CopyFrom(previous)
        return response

    def delete_range(self, r: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
        doomed = self.model.values_in(r.key, r.range_end, self.revision)
        for kv in doomed:
            self._record(kv.key, Change(self.new_revision, None, 0, 0))
        response = pb.DeleteRangeResponse(deleted=len(doomed))
        if r.prev_kv:
            response.prev_kvs.extend(doomed)
        response.header.revision = self.revision
        return response

    def run_txn(self, r: pb.TxnRequest, branches: Iterator[bool], response: pb.TxnResponse) -> None:
        """Run the branch the path says (`branches` iterates over it), into `response`."""
        succeeded = next(branches)
        response.succeeded = succeeded
        for op in r.success if succeeded else r.failure:
            out = response.responses.add()
            kind = op.WhichOneof("request")
            if kind == "request_range":
                out.response_range.CopyFrom(self.model._range(op.request_range, self.revision))
            elif kind == "request_put":
                out.response_put.CopyFrom(self.put(op.request_put))
            elif kind == "request_delete_range":
                out.response_delete_range.CopyFrom(self.delete_range(op.request_delete_range))
            elif kind == "request_txn":
                out.response_txn.header.SetInParent()  # etcd: an empty header on nested txns
                self.run_txn(op.request_txn, branches, out.response_txn)
