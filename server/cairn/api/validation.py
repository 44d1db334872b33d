"""Checks a request must pass before it is proposed, with etcd's errors for each mistake.

Rejecting here means a bad request never reaches the log, so it can change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cairn.errors import (
    ErrDuplicateKey,
    ErrEmptyKey,
    ErrInvalidSortOption,
    ErrKeyNotFound,
    ErrLeaseProvided,
    ErrTooManyOps,
    ErrValueProvided,
)
from cairn.proto import rpc_pb2 as pb

_SORT_ORDERS = frozenset(pb.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(pb.RangeRequest.SortTarget.values())


def check_range(r: pb.RangeRequest) -> None:
    if not r.key:
        raise ErrEmptyKey()
    # etcd 3.5 refuses enum values it does not know (3.4 crashed on them).
    if r.sort_order not in _SORT_ORDERS or r.sort_target not in _SORT_TARGETS:
        raise ErrInvalidSortOption()


def check_put(r: pb.PutRequest) -> None:
    if not r.key:
        raise ErrEmptyKey()
    if r.ignore_value and r.value:
        raise ErrValueProvided()
    if r.ignore_lease and r.lease:
        raise ErrLeaseProvided()


def check_delete_range(r: pb.DeleteRangeRequest) -> None:
    if not r.key:
        raise ErrEmptyKey()


def check_txn(r: pb.TxnRequest, max_txn_ops: int) -> None:
    """Size and shape of a txn; then no branch may write one key twice (etcd's rules)."""
    _check_txn_shape(r, max_txn_ops)
    _Writes.of(r.success)
    _Writes.of(r.failure)


def _check_txn_shape(r: pb.TxnRequest, max_txn_ops: int) -> None:
    widest = max(len(r.compare), len(r.success), len(r.failure))
    if widest > max_txn_ops:
        raise ErrTooManyOps()
    for compare in r.compare:
        if not compare.key:
            raise ErrEmptyKey()
    # A nested txn may use only what the outer one left of the budget.
    for op in (*r.success, *r.failure):
        _check_op(op, max_txn_ops - widest)


def _check_op(op: pb.RequestOp, max_txn_ops: int) -> None:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        check_range(op.request_range)
    elif kind == "request_put":
        check_put(op.request_put)
    elif kind == "request_delete_range":
        check_delete_range(op.request_delete_range)
    elif kind == "request_txn":
        _check_txn_shape(op.request_txn, max_txn_ops)
    else:
        raise ErrKeyNotFound()  # an empty RequestOp: etcd answers with this error


@dataclass
class _Writes:
    """The keys one branch puts and the ranges it deletes, to find double writes."""

    puts: set[bytes] = field(default_factory=set)
    # [start, end) with an empty end meaning unbounded; a single key is [k, k + "\0").
    deletes: list[tuple[bytes, bytes]] = field(default_factory=list)

    def deleted(self, key: bytes) -> bool:
        return any(start <= key and (not end or key < end) for start, end in self.deletes)

    @classmethod
    def of(cls, ops: Sequence[pb.RequestOp]) -> _Writes:
        """Collect one branch's writes, raising ErrDuplicateKey on an overlap.

        The two branches of a nested txn exclude each other, so they may put the same key;
        anything else that writes a key twice in one branch is refused.
        """
        writes = cls()
        for op in ops:
            if op.WhichOneof("request") == "request_delete_range":
                d = op.request_delete_range
                end = d.range_end if d.range_end else d.key + b"\x00"
                writes.deletes.append((d.key, end))
        for op in ops:
            if op.WhichOneof("request") != "request_txn":
                continue
            then = cls.of(op.request_txn.success)
            otherwise = cls.of(op.request_txn.failure)
            for key in then.puts:
                writes._add_put(key)
            for key in otherwise.puts:
                if key in writes.puts and key in then.puts:
                    continue
                writes._add_put(key)
            writes.deletes.extend(then.deletes)
            writes.deletes.extend(otherwise.deletes)
        for op in ops:
            if op.WhichOneof("request") == "request_put":
                writes._add_put(op.request_put.key)
        return writes

    def _add_put(self, key: bytes) -> None:
        if key in self.puts or self.deleted(key):
            raise ErrDuplicateKey()
        self.puts.add(key)
