"""The etcdserverpb.Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive and
LeaseLeases, with etcd's answers.

Grant and revoke go through Raft from any member. Keep-alives and TimeToLive need the leader's
clocks (`cairn.member.lessor`), so a follower forwards them to the leader, as etcd's does over
its peer /leases endpoints; cairn forwards over the leader's published client URL instead
(the same route `MemberPromote` takes), marked so that a member which is no longer leader
refuses it rather than forwarding again, and the follower retries until the request timeout
(a leader change in between is the usual reason).

etcd's answers for a lease that does not exist, reproduced here: a keep-alive answers TTL 0
(etcdctl then says `requested lease not found`), TimeToLive answers TTL -1 (etcdctl: `already
expired`), revoke fails with `requested lease not found`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import grpc

from cairn.errors import ErrLeaseNotFound, ErrNoLeader, ErrNotLeader, ErrTimeout, EtcdError
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

# Metadata on a request a follower forwards to the leader.
FORWARDED = ("cairn-forwarded-to-leader", "1")
_T = TypeVar("_T")

# How long a follower waits between attempts to reach the leader.
RETRY_INTERVAL_S = 0.05


class _Retry(Exception):
    """The leader could not be asked this time (none known, unreachable, moved on)."""


def _was_forwarded(context: grpc.aio.ServicerContext | None) -> bool:
    if context is None:
        return False
    metadata = context.invocation_metadata() or ()
    return any((item.key, item.value) == FORWARDED for item in metadata)


class LeaseService:
    """Serves leases from the member's lessor; errors propagate as EtcdError."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def LeaseGrant(
        self, request: pb.LeaseGrantRequest, context: object
    ) -> pb.LeaseGrantResponse:
        response = await self._member.lessor.grant(request.TTL, request.ID)
        self._member.fill_header(response.header)
        return response

    async def LeaseRevoke(
        self, request: pb.LeaseRevokeRequest, context: object
    ) -> pb.LeaseRevokeResponse:
        response = await self._member.lessor.revoke(request.ID)
        self._member.fill_header(response.header)
        return response

    async def LeaseKeepAlive(
        self,
        requests: AsyncIterator[pb.LeaseKeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.LeaseKeepAliveResponse]:
        """One answer per keep-alive, in order, until the client closes the stream."""
        forwarded = _was_forwarded(context)
        try:
            async for request in requests:
                ttl = await self._renew(request.ID, forwarded)
                response = pb.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl)
                self._member.fill_header(response.header)
                yield response
        except EtcdError as error:
            # Streams do not pass through the server's unary error mapping.
            await context.abort(grpc.StatusCode[error.code], error.message)

    async def LeaseTimeToLive(
        self, request: pb.LeaseTimeToLiveRequest, context: grpc.aio.ServicerContext | None
    ) -> pb.LeaseTimeToLiveResponse:
        member = self._member

        async def local() -> pb.LeaseTimeToLiveResponse:
            try:
                found = await member.lessor.time_to_live(request.ID)
            except ErrLeaseNotFound:
                return pb.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1)
            response = pb.LeaseTimeToLiveResponse(
                ID=request.ID, TTL=found.remaining, grantedTTL=found.granted
            )
            if request.keys:
                response.keys.extend(found.keys)
            response.header.revision = member.store.current_rev
            return response

        async def remote(stub: rpc_pb2_grpc.LeaseStub) -> pb.LeaseTimeToLiveResponse:
            answer: pb.LeaseTimeToLiveResponse = await stub.LeaseTimeToLive(
                request, metadata=(FORWARDED,), timeout=member.cluster.request_timeout_s
            )
            return answer

        response = await self._on_leader(local, remote, _was_forwarded(context))
        # A forwarded answer keeps the leader's revision (etcd's does too); the rest of the
        # header says who answered the client: this member.
        member.fill_header(response.header)
        return response

    async def LeaseLeases(
        self, request: pb.LeaseLeasesRequest, context: object
    ) -> pb.LeaseLeasesResponse:
        """Every lease this member knows of (no forwarding, as in etcd)."""
        response = pb.LeaseLeasesResponse()
        response.leases.extend(pb.LeaseStatus(ID=i) for i in self._member.lessor.lease_ids())
        self._member.fill_header(response.header)
        return response

    # ---- the leader's clocks -------------------------------------------------------

    async def _renew(self, lease_id: int, forwarded: bool) -> int:
        member = self._member

        async def local() -> int:
            try:
                return await member.lessor.renew(lease_id)
            except ErrLeaseNotFound:
                return 0

        async def remote(stub: rpc_pb2_grpc.LeaseStub) -> int:
            call = stub.LeaseKeepAlive(
                metadata=(FORWARDED,), timeout=member.cluster.request_timeout_s
            )
            await call.write(pb.LeaseKeepAliveRequest(ID=lease_id))
            await call.done_writing()
            answer = await call.read()
            if answer is grpc.aio.EOF:
                raise _Retry()
            return int(answer.TTL)

        return await self._on_leader(local, remote, forwarded)

    async def _on_leader(
        self,
        local: Callable[[], Awaitable[_T]],
        remote: Callable[[rpc_pb2_grpc.LeaseStub], Awaitable[_T]],
        forwarded: bool,
    ) -> _T:
        """Run `local` if this member leads, else `remote` against the leader; retry until
        the request timeout while there is no leader or it cannot be reached."""
        member = self._member
        loop = asyncio.get_running_loop()
        deadline = loop.time() + member.cluster.request_timeout_s
        while True:
            try:
                if member.is_leader:
                    return await local()
                if forwarded:
                    raise ErrNotLeader()  # the sender retries with the leader it sees next
                return await remote(self._leader_stub())
            except ErrNotLeader:
                if forwarded:
                    raise
            except _Retry:
                pass
            except grpc.aio.AioRpcError as error:
                details = error.details() or ""
                if error.code() is not grpc.StatusCode.UNAVAILABLE and details != ErrNotLeader.text:
                    forwarded_error = EtcdError(details)
                    forwarded_error.code = error.code().name
                    raise forwarded_error from None
            if loop.time() > deadline:
                raise ErrNoLeader() if member.leader == 0 else ErrTimeout()
            await asyncio.sleep(RETRY_INTERVAL_S)

    def _leader_stub(self) -> rpc_pb2_grpc.LeaseStub:
        member = self._member
        leader = member.membership.get(member.leader) if member.leader else None
        if leader is None or not leader.clientURLs:
            raise _Retry()
        target = urlsplit(leader.clientURLs[0]).netloc
        channel = self._channels.get(target)
        if channel is None:
            channel = grpc.aio.insecure_channel(target)
            self._channels[target] = channel
        return rpc_pb2_grpc.LeaseStub(channel)
