"""Membership changes and leadership transfer on three in-process Raft members.

The Cluster and Maintenance services are called directly (no gRPC), as etcdctl's
`member add/promote/remove/update` and `move-leader` would call them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.cluster.test_raft_member import Cluster, free_port, put_retrying, run

from cairn.api.cluster import ClusterService
from cairn.api.maintenance import MaintenanceService
from cairn.errors import (
    ErrBadLeaderTransferee,
    ErrLearnerNotReady,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrNotLeader,
    ErrPeerURLExist,
    ErrTooManyLearners,
    ErrUnhealthy,
)
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.peer.sender import PeerState
from cairn.proto import rpc_pb2 as pb


def service(member: RaftMember) -> ClusterService:
    return ClusterService(member)


async def join(
    cluster: Cluster, name: str, url: str, initial: dict[str, list[str]] | None = None
) -> RaftMember:
    """Start a member added with `member add`, as --initial-cluster-state existing.

    The new member takes its ID from the first peer that answers, as in etcd: like an operator,
    start it once every member has applied the add (a follower may lag the leader a little).
    `initial` is its --initial-cluster (default: the founders and itself).
    """
    await eventually(
        lambda: all(
            any(url in m.peerURLs for m in member.membership.members())
            for member in cluster.members.values()
        )
    )
    if initial is None:
        initial = {n: [u] for n, u in cluster.peer_urls.items()}
        initial[name] = [url]
    config = MemberConfig(
        name=name,
        data_dir=str(cluster.base / name),
        initial_cluster=initial,
        initial_cluster_state="existing",
    )
    settings = ClusterSettings(
        listen_peer_urls=[url],
        heartbeat_interval_ms=20,
        election_timeout_ms=200,
        request_timeout_s=5.0,
        seed=7,
    )
    member = RaftMember(config, settings)
    await member.resolve_identity()
    member.open()
    await member.start()
    cluster.members[name] = member
    return member


async def eventually(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.02)


def tables(cluster: Cluster) -> list[list[tuple[int, bool, tuple[str, ...]]]]:
    return [
        [(m.ID, m.isLearner, tuple(m.peerURLs)) for m in member.membership.members()]
        for member in cluster.members.values()
    ]


def test_add_learner_catch_up_promote_remove_founder(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        for i in range(20):
            await put_retrying(leader, b"before-%d" % i, b"x")
        url = f"http://127.0.0.1:{free_port()}"
        added = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[url], isLearner=True), None
        )
        assert added.member.isLearner and list(added.member.peerURLs) == [url]
        assert added.member.ID in [m.ID for m in added.members]
        assert len(added.members) == 4
        m4 = await join(cluster, "m4", url)
        assert m4.identity.member_id == added.member.ID
        await eventually(lambda: m4.store.applied_index >= leader.store.applied_index)
        got = await m4.range(pb.RangeRequest(key=b"before-19", serializable=True))
        assert [kv.value for kv in got.kvs] == [b"x"]

        leader = await cluster.leader()
        await service(leader).MemberPromote(pb.MemberPromoteRequest(ID=m4.identity.member_id), None)
        await eventually(lambda: len({str(t) for t in tables(cluster)}) == 1)
        assert not m4.membership.get(m4.identity.member_id).isLearner  # type: ignore[union-attr]
        assert m4.identity.member_id in m4.node.status().conf_state.voters

        leader = await cluster.leader()
        victim = next(m for m in cluster.members.values() if m not in (leader, m4))
        victim_id = victim.identity.member_id
        removed = await service(leader).MemberRemove(pb.MemberRemoveRequest(ID=victim_id), None)
        assert victim_id not in [m.ID for m in removed.members]
        await cluster.stop(victim.identity.name)
        await eventually(lambda: len({str(t) for t in tables(cluster)}) == 1)
        assert all(len(t) == 3 for t in tables(cluster))
        for member in cluster.members.values():
            listed = await service(member).MemberList(pb.MemberListRequest(), None)
            assert [m.ID for m in listed.members] == [m[0] for m in tables(cluster)[0]]
        await put_retrying(m4, b"after", b"y")
        for member in cluster.members.values():
            got = await member.range(pb.RangeRequest(key=b"after"))
            assert [kv.value for kv in got.kvs] == [b"y"]

    run(tmp_path, body)


def test_member_update_changes_peer_urls_everywhere(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        url = f"http://127.0.0.1:{free_port()}"
        added = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[url], isLearner=True), None
        )
        new_url = f"http://127.0.0.1:{free_port()}"
        follower = next(m for m in cluster.members.values() if m is not leader)
        # The follower checks against its own table: wait until it applied the add.
        await eventually(lambda: follower.membership.get(added.member.ID) is not None)
        updated = await service(follower).MemberUpdate(
            pb.MemberUpdateRequest(ID=added.member.ID, peerURLs=[new_url]), None
        )
        entry = next(m for m in updated.members if m.ID == added.member.ID)
        assert list(entry.peerURLs) == [new_url] and entry.isLearner
        await eventually(lambda: len({str(t) for t in tables(cluster)}) == 1)

    run(tmp_path, body)


def test_move_leader_hands_leadership_to_the_target(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        target = next(m for m in cluster.members.values() if m is not leader)
        request = pb.MoveLeaderRequest(targetID=target.identity.member_id)
        with pytest.raises(ErrNotLeader):
            await MaintenanceService(target).MoveLeader(request, None)
        await MaintenanceService(leader).MoveLeader(request, None)
        assert leader.leader == target.identity.member_id
        new_leader = await cluster.leader()
        assert new_leader is target
        await put_retrying(leader, b"k", b"v")

    run(tmp_path, body)


def test_refusals_match_etcd(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        svc = service(leader)
        other = next(m for m in cluster.members.values() if m is not leader)
        taken = cluster.peer_urls[other.identity.name]
        with pytest.raises(ErrPeerURLExist):
            await svc.MemberAdd(pb.MemberAddRequest(peerURLs=[taken]), None)
        with pytest.raises(ErrMemberNotFound):
            await svc.MemberRemove(pb.MemberRemoveRequest(ID=0x1234), None)
        with pytest.raises(ErrMemberNotFound):
            await svc.MemberPromote(pb.MemberPromoteRequest(ID=0x1234), None)
        with pytest.raises(ErrMemberNotFound):
            await svc.MemberUpdate(pb.MemberUpdateRequest(ID=0x1234, peerURLs=["http://x:1"]), None)
        voter = leader.identity.member_id
        with pytest.raises(ErrMemberNotLearner):
            await svc.MemberPromote(pb.MemberPromoteRequest(ID=voter), None)
        with pytest.raises(ErrPeerURLExist):
            await svc.MemberUpdate(pb.MemberUpdateRequest(ID=voter, peerURLs=[taken]), None)
        for i in range(5):
            await put_retrying(leader, b"k%d" % i, b"v")
        learner_url = f"http://127.0.0.1:{free_port()}"  # never started
        added = await svc.MemberAdd(
            pb.MemberAddRequest(peerURLs=[learner_url], isLearner=True), None
        )
        with pytest.raises(ErrLearnerNotReady):
            await svc.MemberPromote(pb.MemberPromoteRequest(ID=added.member.ID), None)
        with pytest.raises(ErrTooManyLearners):
            await svc.MemberAdd(
                pb.MemberAddRequest(peerURLs=[f"http://127.0.0.1:{free_port()}"], isLearner=True),
                None,
            )
        with pytest.raises(ErrBadLeaderTransferee):
            await MaintenanceService(leader).MoveLeader(
                pb.MoveLeaderRequest(targetID=added.member.ID), None
            )
        # Moving to the current leader is a no-op success, as in etcd.
        await MaintenanceService(leader).MoveLeader(pb.MoveLeaderRequest(targetID=voter), None)
        # The learner can still be removed (from a follower, once it applied the add); the
        # cluster keeps serving.
        await eventually(lambda: other.membership.get(added.member.ID) is not None)
        await service(other).MemberRemove(pb.MemberRemoveRequest(ID=added.member.ID), None)
        await put_retrying(leader, b"after", b"v")

    run(tmp_path, body)


def test_a_down_voter_makes_adds_and_quorum_losing_removals_unhealthy(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        down, live = [m for m in cluster.members.values() if m is not leader]
        down_id = down.identity.member_id
        await cluster.stop(down.identity.name)
        await eventually(lambda: leader.transport.peer_state(down_id) is not PeerState.ACTIVE)
        svc = service(leader)
        url = f"http://127.0.0.1:{free_port()}"
        # As etcd 3.4.23 answers: any add, and removing a live voter, while a voter is down.
        with pytest.raises(ErrUnhealthy):
            await svc.MemberAdd(pb.MemberAddRequest(peerURLs=[url], isLearner=True), None)
        with pytest.raises(ErrUnhealthy):
            await svc.MemberRemove(pb.MemberRemoveRequest(ID=live.identity.member_id), None)
        # The down voter itself may go; the two left keep serving.
        removed = await svc.MemberRemove(pb.MemberRemoveRequest(ID=down_id), None)
        assert down_id not in [m.ID for m in removed.members]
        await put_retrying(live, b"k", b"v")

    run(tmp_path, body)


def test_the_changed_table_survives_a_restart_of_every_member(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        url = f"http://127.0.0.1:{free_port()}"
        added = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[url], isLearner=True), None
        )
        m4 = await join(cluster, "m4", url)
        await eventually(lambda: m4.store.applied_index >= leader.store.applied_index)
        await service(leader).MemberPromote(pb.MemberPromoteRequest(ID=added.member.ID), None)
        victim = next(m for m in cluster.members.values() if m not in (leader, m4))
        victim_name, victim_id = victim.identity.name, victim.identity.member_id
        victim_url = cluster.peer_urls[victim_name]
        await service(leader).MemberRemove(pb.MemberRemoveRequest(ID=victim_id), None)
        await cluster.stop(victim_name)
        await eventually(lambda: len({str(t) for t in tables(cluster)}) == 1)
        before = tables(cluster)[0]
        for name in list(cluster.members):
            await cluster.stop(name)
        for name in [n for n in cluster.peer_urls if n != victim_name]:
            await cluster.start(name)
        await join(cluster, "m4", url)
        assert all(t == before for t in tables(cluster))
        leader = await cluster.leader()
        await put_retrying(leader, b"after-restart", b"z")
        # A removed member's URLs may be added again, under a new ID: its own never comes back.
        again = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[victim_url], isLearner=True), None
        )
        new_id = again.member.ID
        assert new_id != victim_id

    run(tmp_path, body)
