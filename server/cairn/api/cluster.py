"""The etcdserverpb.Cluster service: MemberList so far.

MemberAdd, MemberRemove, MemberUpdate and MemberPromote are not implemented yet (they answer
UNIMPLEMENTED): they need Raft configuration changes proposed from the API, with etcd's
refusals (quorum safety, learner catch-up), which is the next step of the Raft issue.
"""

from __future__ import annotations

from cairn.member.member import Member
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb


class ClusterService:
    """Lists the members a client can talk to; `etcdctl --cluster` discovers endpoints here."""

    def __init__(self, member: Member | RaftMember, advertise_client_urls: list[str]) -> None:
        # The one-voter Member has no member table: it lists itself with these client URLs.
        self._member = member
        self._client_urls = list(advertise_client_urls)

    async def MemberList(
        self, request: pb.MemberListRequest, context: object
    ) -> pb.MemberListResponse:
        member = self._member
        response = pb.MemberListResponse()
        if isinstance(member, RaftMember):
            if request.linearizable:
                # etcd 3.5: a linearizable list waits until this member caught up with the log.
                await member.linearizable_barrier()
            response.members.extend(member.membership.members())
        else:
            response.members.append(self._self_entry(member))
        member.fill_header(response.header)
        return response

    def _self_entry(self, member: Member) -> pb.Member:
        name = member.identity.name
        return pb.Member(
            ID=member.identity.member_id,
            name=name,
            peerURLs=sorted(member.config.initial_cluster.get(name, [])),
            clientURLs=self._client_urls,
        )
