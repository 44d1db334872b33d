"""The waiting queue that the Lock and Election services share, run inside the member.

etcd serves v3lock and v3election by running its client-side `concurrency` recipes against
itself. cairn keeps the same data model, so that `etcdctl lock` / `etcdctl elect` (which run
the recipes in the client) and the gRPC services interoperate on the same keys:

- a contender owns the key `<name>/<lease ID in hex>`, attached to its lease (its session);
  the key's create revision is its place in the queue;
- the contender with the smallest create revision under `<name>/` holds the lock (leads);
- a contender waits for the deletion of the key created just before its own, then checks
  again, so each waiter watches one key and a release wakes one waiter, not all.

Here the recipe calls the member directly (Raft proposals, linearizable reads, the watch
hub), without a gRPC round trip to itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from cairn.api.auth_identity import CALLER
from cairn.errors import EtcdError
from cairn.member import auth_checks
from cairn.member.raft_member import RaftMember
from cairn.mvcc.watch import SinkClosed, WatchEvents, WatchSink
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest
from cairn.proto.kv_pb2 import Event

# etcd's concurrency.Session default TTL: a Lock or Campaign without a lease gets one this long.
DEFAULT_SESSION_TTL_S = 60


class RecipeError(EtcdError):
    """An error the Lock and Election services answer.

    etcd's services return the errors of the client they run on unchanged, which gRPC then
    sends as UNKNOWN with etcd's text (`etcdserver: requested lease not found` included), so
    these services answer every error with that code.
    """

    code = "UNKNOWN"


def as_recipe_error(error: EtcdError) -> RecipeError:
    """The same text, with the code etcd's Lock and Election services give it."""
    return RecipeError(error.message)


def prefix_end(prefix: bytes) -> bytes:
    """The range_end covering every key that starts with `prefix` (as `--prefix` does)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def own_key(name: bytes, lease: int) -> bytes:
    """The contender's key: the recipes format the lease ID as Go's %x (signed, lower case)."""
    return name + b"/" + format(lease, "x").encode()


def first_created(prefix: bytes) -> pb.RangeRequest:
    """The key under `prefix` with the smallest create revision: the holder or leader."""
    return pb.RangeRequest(
        key=prefix,
        range_end=prefix_end(prefix),
        sort_target=pb.RangeRequest.CREATE,
        sort_order=pb.RangeRequest.ASCEND,
        limit=1,
    )


def created_at(key: bytes, revision: int) -> pb.Compare:
    """A txn guard: `key` exists with this create revision (0: `key` does not exist)."""
    return pb.Compare(
        key=key,
        target=pb.Compare.CREATE,
        result=pb.Compare.EQUAL,
        create_revision=revision,
    )


class Queue:
    """The recipe's steps (txns, linearizable reads, waits on the watch hub) on one member,
    shared by the Lock and Election services."""

    def __init__(self, member: RaftMember) -> None:
        self.member = member
        # Clean-ups running after their call ended (the call's own task is being cancelled).
        self._cleanups: set[asyncio.Task[None]] = set()

    def clean_up_later(self, step: Coroutine[Any, Any, object], name: str) -> None:
        """Run a clean-up step (leaving the queue) in a task of its own; an error is harmless:
        the caller's lease expiry removes its key in the end."""

        async def run() -> None:
            with contextlib.suppress(EtcdError):
                await step

        task = asyncio.get_running_loop().create_task(run(), name=name)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def session_lease(self, lease: int) -> int:
        """`lease`, or a new lease of etcd's default session TTL when 0 (what etcd's services
        do when the request names no lease; the lease is not kept alive by the server)."""
        if lease != 0:
            return lease
        granted = await self.member.lessor.grant(DEFAULT_SESSION_TTL_S, 0)
        return granted.ID

    async def txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        """A txn with writes in it, through Raft, as the caller (checked when applied)."""
        internal = InternalRequest(txn=request)
        CALLER.get().stamp(internal.header)
        applied = await self.member.propose(internal)
        response: pb.TxnResponse = applied.response  # type: ignore[assignment]
        return response

    async def get(self, request: pb.RangeRequest) -> pb.RangeResponse:
        """A linearizable read as the caller, its header at the store revision it saw."""
        response = await self.member.range(request)
        auth_checks.check_range(self.member.applier.auth, CALLER.get().username, request)
        if response.header.revision == 0:
            response.header.revision = self.member.store.current_rev
        return response

    async def enqueue(
        self, name: bytes, lease: int, value: bytes
    ) -> tuple[bytes, int, bool, pb.TxnResponse]:
        """Create the contender's key unless it exists already (the same lease asked again).

        Returns (key, its create revision, whether it already holds a different value, the
        txn's response). The txn also reads the queue's head, so that an uncontended caller
        knows it holds the lock without a second read.
        """
        key = own_key(name, lease)
        head = pb.RequestOp(request_range=first_created(name + b"/"))
        response = await self.txn(
            pb.TxnRequest(
                compare=[created_at(key, 0)],
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, lease=lease)),
                    head,
                ],
                failure=[pb.RequestOp(request_range=pb.RangeRequest(key=key)), head],
            )
        )
        if response.succeeded:
            return key, response.header.revision, False, response
        existing = response.responses[0].response_range.kvs[0]
        return key, existing.create_revision, existing.value != value, response

    async def delete_if_created_at(self, key: bytes, revision: int) -> pb.TxnResponse:
        """Delete `key` if it still is the one created at `revision` (resign, give up)."""
        return await self.txn(
            pb.TxnRequest(
                compare=[created_at(key, revision)],
                success=[pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key))],
            )
        )

    async def wait_predecessors(self, prefix: bytes, before: int) -> pb.ResponseHeader:
        """Wait until no key under `prefix` has a create revision up to `before`.

        Waits for the youngest such key to go, then looks again: a key created earlier may
        still be there (its owner waits too, or holds). Returns the header of the read that
        found none.
        """
        while True:
            response = await self.get(
                pb.RangeRequest(
                    key=prefix,
                    range_end=prefix_end(prefix),
                    sort_target=pb.RangeRequest.CREATE,
                    sort_order=pb.RangeRequest.DESCEND,
                    limit=1,
                    max_create_revision=before,
                )
            )
            if not response.kvs:
                return response.header
            await self.wait_deleted(response.kvs[0].key, response.header.revision + 1)

    async def wait_deleted(self, key: bytes, from_rev: int) -> None:
        """Return once `key` is deleted at `from_rev` or later, or when that history is
        compacted (the caller reads the queue again, so nothing is lost)."""
        try:
            async with contextlib.aclosing(self.events(key, None, from_rev)) as events:
                async for event, _ in events:
                    if event.type == Event.DELETE:
                        return
        except Compacted:
            return

    async def events(
        self, key: bytes, end: bytes | None, from_rev: int
    ) -> AsyncIterator[tuple[Event, int]]:
        """Every event on `key` (or [key, end)) from `from_rev` on, each with the revision of
        the delivery that carried it (a watch response's header revision). Raises Compacted
        when `from_rev` is compacted: the caller then reads the state again."""
        hub = self.member.watches
        sink = WatchSink()
        watcher = hub.watch(0, key, end, from_rev, sink)
        try:
            while True:
                try:
                    item = await sink.get()
                except SinkClosed as closed:
                    raise closed.error from None
                if not isinstance(item, WatchEvents):
                    continue
                if item.compact_revision:
                    raise Compacted(item.compact_revision)
                for event in item.events:
                    yield event, item.revision
        finally:
            hub.cancel(watcher)


class Compacted(Exception):
    """The history a wait needed is compacted away; the caller reads the state again."""

    def __init__(self, revision: int) -> None:
        super().__init__(revision)
        self.revision = revision
