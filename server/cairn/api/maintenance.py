"""The etcdserverpb.Maintenance service: Status (what `etcdctl endpoint status` shows) and
MoveLeader (`etcdctl move-leader`).

The other Maintenance RPCs (Alarm, Defragment, Hash, HashKV, Snapshot, Downgrade) are not
implemented yet and answer UNIMPLEMENTED.
"""

from __future__ import annotations

from cairn.errors import ErrBadLeaderTransferee, ErrNotLeader
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb

# The etcd server version cairn reports. Clients read it as an etcd version, not as cairn's
# own: clientv3's RejectOldCluster refuses a major.minor below 3.2, and operators compare it
# with their etcd fleet. cairn speaks the etcd v3.4 API, hence 3.4.0 (no patch level: cairn
# does not mimic a particular etcd release's bug fixes). cairn's own version is in its logs.
ETCD_API_VERSION = "3.4.0"


class MaintenanceService:
    """Status of this member, answered from local state (no Raft round, as in etcd)."""

    def __init__(self, member: RaftMember) -> None:
        self._member = member

    async def Status(self, request: pb.StatusRequest, context: object) -> pb.StatusResponse:
        member = self._member
        db_size = member.backend.size_on_disk()
        response = pb.StatusResponse(
            version=ETCD_API_VERSION,
            dbSize=db_size,
            # Without defragmentation there is no measure of free space inside LevelDB files;
            # compaction frees it lazily. Reporting the on-disk size is an upper bound.
            dbSizeInUse=db_size,
            raftAppliedIndex=member.store.applied_index,
        )
        status = member.node.status()
        response.leader = member.leader
        # etcd reports the committed index here (not the last appended one).
        response.raftIndex = status.commit
        response.raftTerm = status.term
        response.isLearner = member.is_learner
        member.fill_header(response.header)
        return response

    async def MoveLeader(
        self, request: pb.MoveLeaderRequest, context: object
    ) -> pb.MoveLeaderResponse:
        """Hand leadership to another voter; answered once this member sees the new leader.

        As in etcd 3.4.23: only the leader accepts it (`etcdserver: not leader`, which
        etcdctl avoids by picking the leader's endpoint), a target that is not a voter is
        refused (`etcdserver: bad leader transferee`), and moving to the current leader is an
        immediate success.
        """
        member = self._member
        response = pb.MoveLeaderResponse()
        if not member.is_leader:
            raise ErrNotLeader()
        if request.targetID not in member.node.status().conf_state.voters:
            raise ErrBadLeaderTransferee()
        await member.move_leader(request.targetID)
        member.fill_header(response.header)
        return response
