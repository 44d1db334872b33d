"""The v3lockpb.Lock service: Lock and Unlock, on the queue of `cairn.api.recipes`.

What a client sees follows etcd 3.4 (checked against etcd 3.4.23 by
tests/differential/test_lock_election_grpc_matches_etcd.py):

- Lock blocks until the caller's key `<name>/<lease hex>` is the oldest under `<name>/`, then
  answers that key; the header's revision is the revision at which the lock was seen held
  (the txn that created the key, or the read that found it still there after the wait).
- A caller whose lease expired while it waited (so its key is gone) gets `mutex: session is
  expired`, as from etcd 3.5; etcd 3.4.23 answers such a caller with its deleted key, as if
  it held the lock, which would let two callers believe they hold it.
- Lock with lease 0 grants a lease of 60 s that nobody keeps alive (etcd does the same).
- Lock again with the same lease answers the same key at once if it holds the lock.
- A caller that gives up while waiting (deadline, cancel) has its key deleted, so it does not
  block the queue until its lease expires.
- Unlock deletes the key (a missing key is no error); an empty key is refused.
- Every error is UNKNOWN with etcd's text (see RecipeError).
"""

from __future__ import annotations

from cairn.api.auth_identity import CALLER
from cairn.api.recipes import Queue, RecipeError, as_recipe_error
from cairn.errors import ErrEmptyKey, EtcdError
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto import v3lock_pb2 as lockpb
from cairn.proto.internal_pb2 import InternalRequest

# etcd 3.5's answer when the caller's key vanished (its lease expired) before its turn came.
ERR_SESSION_EXPIRED = "mutex: session is expired"


class LockService:
    """Serves distributed locks from the member's own keys, leases and watches."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member
        self._queue = Queue(member)

    async def Lock(self, request: lockpb.LockRequest, context: object) -> lockpb.LockResponse:
        try:
            lease = await self._queue.session_lease(request.lease)
            key, my_rev, _, created = await self._queue.enqueue(request.name, lease, b"")
        except EtcdError as error:
            raise as_recipe_error(error) from None
        holder = created.responses[1].response_range.kvs
        if not holder or holder[0].create_revision == my_rev:
            header = created.header
        else:
            try:
                await self._queue.wait_predecessors(request.name + b"/", my_rev - 1)
                # The caller's lease may have expired while it waited, taking its key along.
                own = await self._queue.get(pb.RangeRequest(key=key))
            except BaseException as error:
                self._abandon(key)
                if isinstance(error, EtcdError):
                    raise as_recipe_error(error) from None
                raise
            if not own.kvs:
                raise RecipeError(ERR_SESSION_EXPIRED)
            header = own.header
        response = lockpb.LockResponse(key=key)
        response.header.CopyFrom(header)
        self._member.fill_header(response.header)
        return response

    def _abandon(self, key: bytes) -> None:
        """Delete a waiter's key in the background (its own task may be cancelled)."""
        self._queue.clean_up_later(self._delete(key), "lock-abandon")

    async def _delete(self, key: bytes) -> pb.DeleteRangeResponse:
        internal = InternalRequest(delete_range=pb.DeleteRangeRequest(key=key))
        CALLER.get().stamp(internal.header)
        applied = await self._member.propose(internal)
        response: pb.DeleteRangeResponse = applied.response  # type: ignore[assignment]
        return response

    async def Unlock(self, request: lockpb.UnlockRequest, context: object) -> lockpb.UnlockResponse:
        try:
            if not request.key:
                raise ErrEmptyKey()
            deleted = await self._delete(request.key)
        except EtcdError as error:
            raise as_recipe_error(error) from None
        response = lockpb.UnlockResponse()
        response.header.CopyFrom(deleted.header)
        self._member.fill_header(response.header)
        return response
