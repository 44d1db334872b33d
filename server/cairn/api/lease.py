"""The etcdserverpb.Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive, LeaseTimeToLive and
LeaseLeases, with etcd's answers.

Grant and revoke go through Raft from any member. Keep-alives and TimeToLive need the leader's
clocks (`cairn.member.lessor`), so a follower forwards them to the leader over the peer
transport (peer TLS applies), as etcd's does over its peer /leases endpoints. While there is no
leader, the leader cannot be reached, or it stopped leading before it answered, the follower
tries again until the request timeout.

etcd's answers for a lease that does not exist, reproduced here: a keep-alive answers TTL 0
(etcdctl then says `requested lease not found`), TimeToLive answers TTL -1 (etcdctl: `already
expired`), revoke fails with `requested lease not found`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from cairn.api.auth_identity import Authenticator
from cairn.errors import ErrNoLeader, ErrNotLeader, ErrTimeout
from cairn.member.raft_member import RaftMember
from cairn.peer import PeerUnavailable
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import Forwarded, RequestHeader

_T = TypeVar("_T")

# How long a follower waits between attempts to reach the leader.
RETRY_INTERVAL_S = 0.05


class LeaseService:
    """Serves leases from the member's lessor; errors propagate as EtcdError."""

    def __init__(self, member: RaftMember, authenticator: Authenticator | None = None) -> None:
        self._member = member
        self._auth = authenticator if authenticator is not None else Authenticator(member)

    async def LeaseGrant(
        self, request: pb.LeaseGrantRequest, context: object
    ) -> pb.LeaseGrantResponse:
        # etcd 3.4 lets anyone grant, but an unknown token still fails.
        await self._auth.caller(context)
        response = await self._member.lessor.grant(request.TTL, request.ID)
        self._member.fill_header(response.header)
        return response

    async def LeaseRevoke(
        self, request: pb.LeaseRevokeRequest, context: object
    ) -> pb.LeaseRevokeResponse:
        # WRITE on every attached key, checked when applied.
        header = RequestHeader()
        (await self._auth.caller(context)).stamp(header)
        response = await self._member.lessor.revoke(request.ID, header)
        self._member.fill_header(response.header)
        return response

    async def LeaseKeepAlive(
        self,
        requests: AsyncIterator[pb.LeaseKeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.LeaseKeepAliveResponse]:
        """One answer per keep-alive, in order, until the client closes the stream (an
        EtcdError ends it with etcd's status: the gRPC server maps it, as for unary calls)."""
        async for request in requests:
            response = await self._keep_alive(request)
            self._member.fill_header(response.header)
            yield response

    async def _keep_alive(self, request: pb.LeaseKeepAliveRequest) -> pb.LeaseKeepAliveResponse:
        lessor = self._member.lessor

        async def remote() -> pb.LeaseKeepAliveResponse:
            answer = await lessor.forward(Forwarded(keep_alive=request))
            return answer.keep_alive

        return await self._on_leader(lambda: lessor.keep_alive(request.ID), remote)

    async def LeaseTimeToLive(
        self, request: pb.LeaseTimeToLiveRequest, context: object
    ) -> pb.LeaseTimeToLiveResponse:
        lessor = self._member.lessor

        async def remote() -> pb.LeaseTimeToLiveResponse:
            answer = await lessor.forward(Forwarded(time_to_live=request))
            return answer.time_to_live

        response = await self._on_leader(lambda: lessor.time_to_live_response(request), remote)
        # A forwarded answer keeps the leader's revision (etcd's does too); the rest of the
        # header says who answered the client: this member.
        self._member.fill_header(response.header)
        return response

    async def LeaseLeases(
        self, request: pb.LeaseLeasesRequest, context: object
    ) -> pb.LeaseLeasesResponse:
        """Every lease this member knows of (no forwarding, as in etcd)."""
        response = pb.LeaseLeasesResponse()
        response.leases.extend(pb.LeaseStatus(ID=i) for i in self._member.lessor.lease_ids())
        self._member.fill_header(response.header)
        return response

    async def _on_leader(
        self, local: Callable[[], Awaitable[_T]], remote: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Run `local` if this member leads, else `remote` (the leader answers); retry until
        the request timeout while there is no leader or it cannot be asked."""
        member = self._member
        loop = asyncio.get_running_loop()
        deadline = loop.time() + member.cluster.request_timeout_s
        while True:
            try:
                return await (local() if member.is_leader else remote())
            except (ErrNotLeader, PeerUnavailable):
                pass
            if loop.time() > deadline:
                raise ErrNoLeader() if member.leader == 0 else ErrTimeout()
            await asyncio.sleep(RETRY_INTERVAL_S)
