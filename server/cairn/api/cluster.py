"""The etcdserverpb.Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate and
MemberPromote.

Every change is a Raft conf change whose context is the `etcdserverpb.Member` it is about;
the member table and the peer transport change on every member when the entry is applied
(`RaftMember._apply`), and the response is sent once this member has applied it, listing
the table as it is then, as etcd does. The refusals are checked here, before proposing, with
etcd's texts and codes (checked against etcd 3.4.23): they depend on what this member sees of
the cluster (the leader's replication progress, which peers are connected), which is local
state and not something to replicate.
"""

from __future__ import annotations

from typing import TypeVar

from cairn.errors import (
    ErrMemberExist,
    ErrMemberNotFound,
    ErrNotEnoughStartedMembers,
    ErrPeerURLExist,
    ErrTooManyLearners,
    ErrUnhealthy,
)
from cairn.member.membership import Membership, added_member_id
from cairn.member.raft_member import RaftMember
from cairn.peer.sender import PeerState
from cairn.proto import rpc_pb2 as pb
from cairn.raft import ConfChange, ConfChangeType

# etcd 3.4 allows one learner at a time (its MaxLearners).
MAX_LEARNERS = 1


_WithMembers = TypeVar(
    "_WithMembers",
    pb.MemberAddResponse,
    pb.MemberRemoveResponse,
    pb.MemberUpdateResponse,
    pb.MemberPromoteResponse,
)


def _existing(table: Membership, member_id: int) -> pb.Member:
    """The member a request names, or etcd's not-found error."""
    target = table.get(member_id)
    if target is None:
        raise ErrMemberNotFound()
    return target


def _answer(response: _WithMembers, member: RaftMember) -> _WithMembers:
    """Every membership response carries the whole table and the usual header."""
    response.members.extend(member.membership.members())
    member.fill_header(response.header)
    return response


class ClusterService:
    """Lists the members a client can talk to; `etcdctl --cluster` discovers endpoints here."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member

    async def MemberList(
        self, request: pb.MemberListRequest, context: object
    ) -> pb.MemberListResponse:
        member = self._member
        response = pb.MemberListResponse()
        if request.linearizable:
            # etcd 3.5: a linearizable list waits until this member caught up with the log.
            await member.linearizable_barrier()
        response.members.extend(member.membership.members())
        member.fill_header(response.header)
        return response

    async def MemberAdd(
        self, request: pb.MemberAddRequest, context: object
    ) -> pb.MemberAddResponse:
        member = self._member
        table = member.membership
        urls = sorted(request.peerURLs)
        if table.peer_url_owner(urls) is not None:
            raise ErrPeerURLExist()
        new_id = added_member_id(urls)
        if table.get(new_id) is not None or table.was_removed(new_id):
            raise ErrMemberExist()
        voters = [m for m in table.members() if not m.isLearner]
        if request.isLearner:
            if sum(m.isLearner for m in table.members()) >= MAX_LEARNERS:
                raise ErrTooManyLearners()
        elif not _ready_to_add_voter(voters):
            raise ErrNotEnoughStartedMembers()
        # etcd 3.4.23 refuses any add, learner too, while a voter is unreachable.
        if _connected(member, [m.ID for m in voters]) < len(voters):
            raise ErrUnhealthy()
        added = pb.Member(ID=new_id, peerURLs=urls, isLearner=request.isLearner)
        kind = ConfChangeType.ADD_LEARNER if request.isLearner else ConfChangeType.ADD_VOTER
        await member.change_membership(ConfChange(kind, new_id, added.SerializeToString()))
        return _answer(pb.MemberAddResponse(member=added), member)

    async def MemberRemove(
        self, request: pb.MemberRemoveRequest, context: object
    ) -> pb.MemberRemoveResponse:
        member = self._member
        table = member.membership
        target = _existing(table, request.ID)
        if not target.isLearner:
            _check_voter_removal(member, target)
        change = ConfChange(ConfChangeType.REMOVE, request.ID, target.SerializeToString())
        await member.change_membership(change)
        return _answer(pb.MemberRemoveResponse(), member)

    async def MemberUpdate(
        self, request: pb.MemberUpdateRequest, context: object
    ) -> pb.MemberUpdateResponse:
        member = self._member
        table = member.membership
        target = _existing(table, request.ID)
        urls = sorted(request.peerURLs)
        if table.peer_url_owner(urls, ignore=request.ID) is not None:
            raise ErrPeerURLExist()
        updated = pb.Member(ID=request.ID, peerURLs=urls, isLearner=target.isLearner)
        # The same type the member already has: the table reads it as a peer-URL update.
        kind = ConfChangeType.ADD_LEARNER if target.isLearner else ConfChangeType.ADD_VOTER
        await member.change_membership(ConfChange(kind, request.ID, updated.SerializeToString()))
        return _answer(pb.MemberUpdateResponse(), member)

    async def MemberPromote(
        self, request: pb.MemberPromoteRequest, context: object
    ) -> pb.MemberPromoteResponse:
        member = self._member
        await member.promote_learner(request.ID)
        return _answer(pb.MemberPromoteResponse(), member)


def _ready_to_add_voter(voters: list[pb.Member]) -> bool:
    """etcd's rule: a new voter raises the quorum before it has started ("started" = has
    published its name), so the started voters must reach the new quorum, except when a
    one-member cluster grows to two (etcd allows that, so a cluster restored onto one
    member, or forced into one with --force-new-cluster, can grow again)."""
    started = sum(1 for m in voters if m.name)
    if started == 1 and len(voters) == 1:
        return True
    return started >= _quorum(len(voters) + 1)


def _quorum(voters: int) -> int:
    return voters // 2 + 1


def _check_voter_removal(member: RaftMember, target: pb.Member) -> None:
    """etcd's strict reconfiguration check for removing a voter (matches etcd 3.4.23).

    The started voters left must still form a quorum; a voter this member cannot reach may
    always go (it is not part of the working quorum); otherwise the reachable voters minus
    the removed one must still form a quorum, or the answer is `unhealthy cluster`.
    """
    voters = [m for m in member.membership.members() if not m.isLearner]
    started = sum(1 for m in voters if m.name) - (1 if target.name else 0)
    if started < _quorum(len(voters) - 1):
        raise ErrNotEnoughStartedMembers()
    own = member.identity.member_id
    if own != target.ID and member.transport.peer_state(target.ID) is not PeerState.ACTIVE:
        return
    if _connected(member, [m.ID for m in voters]) - 1 < _quorum(len(voters) - 1):
        raise ErrUnhealthy()


def _connected(member: RaftMember, voters: list[int]) -> int:
    """How many of `voters` this member reaches now (itself included)."""
    own = member.identity.member_id
    return sum(
        1
        for voter in voters
        if voter == own or member.transport.peer_state(voter) is PeerState.ACTIVE
    )
