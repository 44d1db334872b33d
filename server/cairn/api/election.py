"""The v3electionpb.Election service: Campaign, Proclaim, Leader, Observe and Resign.

Candidates queue on `<name>/<lease hex>` keys exactly as lock owners do (`cairn.api.recipes`);
the leader is the oldest key and its value is the leader's proclamation. What a client sees
follows etcd 3.4 (checked against etcd 3.4.23 by
tests/differential/test_lock_election_grpc_matches_etcd.py):

- Campaign blocks until the caller leads and answers its LeaderKey (name, key, create revision,
  lease) with the header of the txn that queued it. Campaigning again with the same lease
  returns the same key; a different value is proclaimed first.
- Proclaim and Resign act only if the key still exists with the LeaderKey's create revision:
  Proclaim otherwise fails with `election: not leader`, Resign succeeds doing nothing.
  Neither checks that the key is the oldest (etcd does not either).
- Leader answers the oldest key, or fails with `election: no leader`.
- Observe streams the leader's key-value now, then every change of its value, and when it
  goes, the next leader (waiting for one if there is none).
- A request without its LeaderKey fails with `"leader" field must be provided`; every error
  is UNKNOWN (see RecipeError).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from cairn.api.recipes import (
    Compacted,
    Queue,
    RecipeError,
    as_recipe_error,
    created_at,
    first_created,
    prefix_end,
)
from cairn.errors import EtcdError
from cairn.member.applier import store_range_end
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto import v3election_pb2 as electionpb
from cairn.proto.kv_pb2 import Event, KeyValue

ERR_NOT_LEADER = "election: not leader"
ERR_NO_LEADER = "election: no leader"
ERR_MISSING_LEADER_KEY = '"leader" field must be provided'


class ElectionService:
    """Serves leader elections from the member's own keys, leases and watches."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member
        self._queue = Queue(member)

    async def Campaign(
        self, request: electionpb.CampaignRequest, context: object
    ) -> electionpb.CampaignResponse:
        queue = self._queue
        try:
            lease = await queue.session_lease(request.lease)
            key, rev, stale_value, queued = await queue.enqueue(request.name, lease, request.value)
            if stale_value and not await self._proclaim(key, rev, lease, request.value):
                await queue.delete_if_created_at(key, rev)
                raise RecipeError(ERR_NOT_LEADER)
        except EtcdError as error:
            raise as_recipe_error(error) from None
        try:
            await queue.wait_predecessors(request.name + b"/", rev - 1)
        except EtcdError as error:
            raise as_recipe_error(error) from None
        except asyncio.CancelledError:
            self._resign_later(key, rev)
            raise
        response = electionpb.CampaignResponse(
            leader=electionpb.LeaderKey(name=request.name, key=key, rev=rev, lease=lease)
        )
        response.header.CopyFrom(queued.header)
        self._member.fill_header(response.header)
        return response

    def _resign_later(self, key: bytes, rev: int) -> None:
        """A candidate that gave up while waiting leaves the queue (in a task of its own: the
        call's task is being cancelled)."""
        self._queue.clean_up_later(self._queue.delete_if_created_at(key, rev), "election-abandon")

    async def _proclaim(
        self, key: bytes, rev: int, lease: int, value: bytes
    ) -> pb.TxnResponse | None:
        """Set the value if `key` is still the one created at `rev`; None if it is not."""
        response = await self._queue.txn(
            pb.TxnRequest(
                compare=[created_at(key, rev)],
                success=[
                    pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, lease=lease))
                ],
            )
        )
        return response if response.succeeded else None

    async def Proclaim(
        self, request: electionpb.ProclaimRequest, context: object
    ) -> electionpb.ProclaimResponse:
        if not request.HasField("leader"):
            raise RecipeError(ERR_MISSING_LEADER_KEY)
        leader = request.leader
        try:
            done = await self._proclaim(leader.key, leader.rev, leader.lease, request.value)
        except EtcdError as error:
            raise as_recipe_error(error) from None
        if done is None:
            raise RecipeError(ERR_NOT_LEADER)
        response = electionpb.ProclaimResponse()
        response.header.CopyFrom(done.header)
        self._member.fill_header(response.header)
        return response

    async def Resign(
        self, request: electionpb.ResignRequest, context: object
    ) -> electionpb.ResignResponse:
        if not request.HasField("leader"):
            raise RecipeError(ERR_MISSING_LEADER_KEY)
        try:
            done = await self._queue.delete_if_created_at(request.leader.key, request.leader.rev)
        except EtcdError as error:
            raise as_recipe_error(error) from None
        response = electionpb.ResignResponse()
        response.header.CopyFrom(done.header)
        self._member.fill_header(response.header)
        return response

    async def Leader(
        self, request: electionpb.LeaderRequest, context: object
    ) -> electionpb.LeaderResponse:
        try:
            found = await self._queue.get(first_created(request.name + b"/"))
        except EtcdError as error:
            raise as_recipe_error(error) from None
        if not found.kvs:
            raise RecipeError(ERR_NO_LEADER)
        return self._leader_response(found.kvs[0], found.header.revision)

    def _leader_response(self, kv: KeyValue, revision: int) -> electionpb.LeaderResponse:
        response = electionpb.LeaderResponse(kv=kv)
        response.header.revision = revision
        self._member.fill_header(response.header)
        return response

    async def Observe(
        self, request: electionpb.LeaderRequest, context: object
    ) -> AsyncIterator[electionpb.LeaderResponse]:
        """The leader now, each value it proclaims, then its successor, until the client
        goes. An event the watch hub could not deliver (compacted history) makes the stream
        start over from a fresh read, as a client resuming would."""
        prefix = request.name + b"/"
        queue = self._queue
        try:
            while True:
                found = await queue.get(first_created(prefix))
                try:
                    if found.kvs:
                        kv, revision = found.kvs[0], found.header.revision
                    else:
                        kv, revision = await self._first_put(prefix, found.header.revision + 1)
                    yield self._leader_response(kv, revision)
                    changes = queue.events(kv.key, None, revision + 1)
                    async with contextlib.aclosing(changes) as events:
                        async for event, at in events:
                            if event.type == Event.DELETE:
                                break
                            yield self._leader_response(event.kv, at)
                except Compacted:
                    continue
        except EtcdError as error:
            raise as_recipe_error(error) from None

    async def _first_put(self, prefix: bytes, from_rev: int) -> tuple[KeyValue, int]:
        """The first key put under `prefix` from `from_rev` on, and its revision."""
        puts = self._queue.events(prefix, store_range_end(prefix_end(prefix)), from_rev)
        async with contextlib.aclosing(puts) as events:
            async for event, _ in events:
                if event.type == Event.PUT:
                    return event.kv, event.kv.mod_revision
        raise AssertionError("a watch only ends by raising")
