"""The etcdserverpb.Maintenance service: Status (what `etcdctl endpoint status` shows),
MoveLeader (`etcdctl move-leader`), HashKV (`etcdctl endpoint hashkv`), Hash, Alarm
(`etcdctl alarm list` / `alarm disarm`), Defragment (`etcdctl defrag`) and Snapshot
(`etcdctl snapshot save`).

Downgrade is not implemented yet and answers UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from cairn.errors import ErrBadLeaderTransferee, ErrNotLeader
from cairn.member import hashing
from cairn.member.alarms import alarm_text
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

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
            # An estimate (see Backend.size_in_use): LevelDB's table size for all keys plus
            # its unflushed log; Defragment brings it close to the live data.
            dbSizeInUse=member.backend.size_in_use(),
            raftAppliedIndex=member.store.applied_index,
        )
        status = member.node.status()
        response.leader = member.leader
        # etcd reports the committed index here (not the last appended one).
        response.raftIndex = status.commit
        response.raftTerm = status.term
        response.isLearner = member.is_learner
        # etcd lists every active alarm of the cluster, in its text form.
        response.errors.extend(alarm_text(m, a) for m, a in member.applier.alarms.sorted())
        member.fill_header(response.header)
        return response

    async def HashKV(self, request: pb.HashKVRequest, context: object) -> pb.HashKVResponse:
        """The MVCC history hash at `request.revision` (0: current), from local state.

        No Raft round, as in etcd: an operator compares members at one revision, so each
        member answers for itself. The header revision is the current one, not the hashed one.
        Hashed in chunks that let the member go on serving (cairn.member.hashing).
        """
        member = self._member
        hashed = await hashing.hash_kv(lambda: member.store, request.revision)
        response = pb.HashKVResponse(hash=hashed.hash, compact_revision=hashed.compact_revision)
        member.fill_header(response.header)
        return response

    async def Hash(self, request: pb.HashRequest, context: object) -> pb.HashResponse:
        """A hash of every LevelDB record of this member (etcd: of its whole bolt file).

        Includes per-member bookkeeping, so it is not a cross-member check; HashKV is.
        """
        member = self._member
        response = pb.HashResponse(hash=await hashing.hash_all(lambda: member.backend))
        member.fill_header(response.header)
        return response

    async def Alarm(self, request: pb.AlarmRequest, context: object) -> pb.AlarmResponse:
        """GET, ACTIVATE and DEACTIVATE all go through the log, as in etcd: a GET then sees
        every alarm applied before it, and disarming is seen by every member.

        etcd 3.4 sends this response without a header (`alarm list -w json` shows none), so
        cairn leaves it unset too.
        """
        applied = await self._member.propose(InternalRequest(alarm=request))
        response = applied.response
        assert isinstance(response, pb.AlarmResponse)
        return response

    async def Defragment(
        self, request: pb.DefragmentRequest, context: object
    ) -> pb.DefragmentResponse:
        """Rewrite this member's LevelDB with its live records only (RaftMember.defragment).

        Local, no Raft round: `defrag --cluster` calls every member, as with etcd.
        """
        member = self._member
        await member.defragment()
        response = pb.DefragmentResponse()
        member.fill_header(response.header)
        return response

    async def Snapshot(
        self, request: pb.SnapshotRequest, context: object
    ) -> AsyncIterator[pb.SnapshotResponse]:
        """This member's whole state at one applied index, as a cairn backup file
        (cairn.member.backup), in etcd's framing: 32 KiB blobs with the bytes still to come,
        then the SHA-256 of them all as the last message.

        Local, no Raft round, as in etcd: the caller picks the member. etcd 3.4 sends these
        responses without a header (checked against 3.4.23), so cairn leaves it unset too.
        """
        async with self._member.backup() as source:
            async for remaining, blob in source.wire_chunks():
                yield pb.SnapshotResponse(remaining_bytes=remaining, blob=blob)

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
