"""Who may do what, request by request, when auth is enabled: etcd's checks, one per kind.

Writes are checked when they are applied (every member reaches the same verdict, against the
auth state of that point in the log), reads and watches before they are served, both through
these functions. A request is refused whole: with etcd's error, the store unchanged.

- Range: READ on its key or range. Put: WRITE on the key, READ too with prev_kv, and WRITE on
  every key already attached to the lease it names (a user who could not revoke the lease must
  not attach to it). DeleteRange: WRITE on the range, READ too with prev_kv.
- Txn: READ for every compare, and for every op of every branch, nested txns included, what
  the op alone would need (etcd 3.4 did not descend into nested txns; cairn does).
- LeaseRevoke: WRITE on every key attached to the lease.
- Auth management: root; UserGet of oneself and RoleGet of one's own role are open too.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.errors import ErrAuthOldRevision, ErrUserEmpty
from cairn.member.auth_store import ADMIN_KINDS, READ, WRITE, AuthStore
from cairn.mvcc.lease import LeaseStore
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

_KV_KINDS = frozenset({"put", "delete_range", "txn", "lease_revoke"})


def check_applied(auth: AuthStore, leases: LeaseStore, request: InternalRequest) -> None:
    """The apply-time check of a committed request; raises etcd's error to refuse it.

    The member's own proposals (`header.internal`: lease expiry) and kinds etcd 3.4 leaves
    open (LeaseGrant, Compaction, Alarm, member attributes) pass.
    """
    header = request.header
    if not auth.enabled or header.internal:
        return
    kind = request.WhichOneof("request")
    user = header.username
    if kind in ADMIN_KINDS:
        auth.check_admin(user)
    elif kind == "auth_user_get":
        if request.auth_user_get.name != user:
            auth.check_admin(user)
    elif kind == "auth_role_get":
        caller = auth.user(user)
        if caller is None or request.auth_role_get.role not in caller.roles:
            auth.check_admin(user)
    elif kind in _KV_KINDS:
        if not user:
            raise ErrUserEmpty()
        if header.auth_revision < auth.revision:
            # The permissions changed between the proposal and its apply: etcd refuses, and
            # clients retry with the current state.
            raise ErrAuthOldRevision()
        if kind == "put":
            check_put(auth, leases, user, request.put)
        elif kind == "delete_range":
            check_delete_range(auth, user, request.delete_range)
        elif kind == "txn":
            check_txn(auth, user, request.txn)
        else:
            check_lease_keys(auth, leases, user, request.lease_revoke.ID)


def check_range(auth: AuthStore, user: str, r: pb.RangeRequest) -> None:
    auth.check_access(user, r.key, r.range_end, READ)


def check_put(auth: AuthStore, leases: LeaseStore, user: str, r: pb.PutRequest) -> None:
    auth.check_access(user, r.key, b"", WRITE)
    if r.lease:
        check_lease_keys(auth, leases, user, r.lease)
    if r.prev_kv:
        auth.check_access(user, r.key, b"", READ)


def check_delete_range(auth: AuthStore, user: str, r: pb.DeleteRangeRequest) -> None:
    auth.check_access(user, r.key, r.range_end, WRITE)
    if r.prev_kv:
        auth.check_access(user, r.key, r.range_end, READ)


def check_txn(auth: AuthStore, user: str, r: pb.TxnRequest) -> None:
    for compare in r.compare:
        auth.check_access(user, compare.key, compare.range_end, READ)
    _check_ops(auth, user, (*r.success, *r.failure))


def _check_ops(auth: AuthStore, user: str, ops: Iterable[pb.RequestOp]) -> None:
    for op in ops:
        kind = op.WhichOneof("request")
        if kind == "request_range":
            auth.check_access(user, op.request_range.key, op.request_range.range_end, READ)
        elif kind == "request_put":
            put = op.request_put
            auth.check_access(user, put.key, b"", WRITE)
            if put.prev_kv:
                auth.check_access(user, put.key, b"", READ)
        elif kind == "request_delete_range":
            check_delete_range(auth, user, op.request_delete_range)
        elif kind == "request_txn":
            check_txn(auth, user, op.request_txn)


def check_lease_keys(auth: AuthStore, leases: LeaseStore, user: str, lease_id: int) -> None:
    lease = leases.get(lease_id)
    if lease is None:
        return  # the request fails on its own (lease not found)
    for key in sorted(lease.keys):
        auth.check_access(user, key, b"", WRITE)
