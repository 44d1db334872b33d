"""A member started with --initial-cluster-state existing asks the cluster who it is.

In-process Raft members on loopback (real gRPC, real LevelDB, real WAL), as in
test_membership_changes; the Cluster service is called directly, as etcdctl would.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.cluster.test_membership_changes import eventually, join, service
from tests.cluster.test_raft_member import Cluster, free_port, put_retrying, run

from cairn.errors import ErrLearnerNotReady
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember, RaftMemberError
from cairn.proto import rpc_pb2 as pb
from cairn.wal import WAL


def joining(
    base: Path, name: str, url: str, initial: dict[str, list[str]]
) -> tuple[RaftMember, MemberConfig]:
    config = MemberConfig(
        name=name,
        data_dir=str(base / name),
        initial_cluster=initial,
        initial_cluster_state="existing",
    )
    settings = ClusterSettings(listen_peer_urls=[url], heartbeat_interval_ms=20, seed=7)
    return RaftMember(config, settings), config


async def promote_when_ready(cluster: Cluster, member_id: int) -> None:
    """Promote a learner once the leader counts it as caught up (etcd's 90 % rule)."""
    for _ in range(100):
        leader = await cluster.leader()
        try:
            await service(leader).MemberPromote(pb.MemberPromoteRequest(ID=member_id), None)
            return
        except ErrLearnerNotReady:
            await asyncio.sleep(0.05)
    raise AssertionError("the learner never caught up")


def test_a_member_added_with_a_removed_founders_urls_joins_under_a_new_id_and_is_promoted(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        founders_cluster_id = leader.identity.cluster_id
        await put_retrying(leader, b"before", b"1")
        victim = next(m for m in cluster.members.values() if m is not leader)
        victim_name, victim_id = victim.identity.name, victim.identity.member_id
        victim_url = cluster.peer_urls[victim_name]
        await service(leader).MemberRemove(pb.MemberRemoveRequest(ID=victim_id), None)
        await cluster.stop(victim_name)

        added = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[victim_url], isLearner=True), None
        )
        new_id = added.member.ID
        assert new_id != victim_id
        # What `etcdctl member add` prints as ETCD_INITIAL_CLUSTER: the members now, not the
        # founders, so --initial-cluster no longer derives the cluster ID.
        initial = {n: [u] for n, u in cluster.peer_urls.items() if n != victim_name}
        initial["m5"] = [victim_url]
        m5 = await join(cluster, "m5", victim_url, initial)
        assert m5.identity.member_id == new_id
        assert m5.identity.cluster_id == founders_cluster_id

        await eventually(lambda: m5.store.applied_index >= leader.store.applied_index)
        await promote_when_ready(cluster, new_id)
        await eventually(lambda: new_id in m5.node.status().conf_state.voters)
        assert not m5.membership.get(new_id).isLearner  # type: ignore[union-attr]
        await put_retrying(m5, b"after", b"2")
        for member in cluster.members.values():
            got = await member.range(pb.RangeRequest(key=b"after"))
            assert [kv.value for kv in got.kvs] == [b"2"]
        got = await m5.range(pb.RangeRequest(key=b"before"))
        assert [kv.value for kv in got.kvs] == [b"1"]

    run(tmp_path, body)


def test_a_member_whose_urls_were_never_added_refuses_to_start(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        await cluster.leader()
        url = f"http://127.0.0.1:{free_port()}"
        initial = {n: [u] for n, u in cluster.peer_urls.items()}
        initial["stranger"] = [url]
        stranger, config = joining(cluster.base, "stranger", url, initial)
        refusal = r"^error validating peerURLs \{cluster .*\}: member count is unequal$"
        with pytest.raises(RaftMemberError, match=refusal):
            await stranger.resolve_identity()
        assert not WAL.exists(config.wal_dir)

    run(tmp_path, body)


def test_a_joining_member_that_reaches_no_peer_refuses_to_start(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    initial = {"m1": [f"http://127.0.0.1:{free_port()}"], "m2": [url]}
    member, config = joining(tmp_path, "m2", url, initial)
    with pytest.raises(RaftMemberError) as raised:
        asyncio.run(member.resolve_identity())
    assert str(raised.value) == (
        "cannot fetch cluster info from peer urls: "
        "could not retrieve cluster information from the given URLs"
    )
    assert not WAL.exists(config.wal_dir)


def test_a_joining_member_cannot_open_without_asking_first(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    member, _ = joining(tmp_path, "m2", url, {"m1": ["http://127.0.0.1:1"], "m2": [url]})
    with pytest.raises(RaftMemberError, match="resolve_identity"):
        member.open()


def test_a_joined_member_restarts_from_its_wal_without_asking_anyone(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        url = f"http://127.0.0.1:{free_port()}"
        added = await service(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[url], isLearner=True), None
        )
        m4 = await join(cluster, "m4", url)
        identity = m4.identity
        assert identity.member_id == added.member.ID
        for name in list(cluster.members):
            await cluster.stop(name)
        # Every peer is down: a restart must not need one.
        settings = ClusterSettings(listen_peer_urls=[url], heartbeat_interval_ms=20, seed=7)
        again = RaftMember(m4.config, settings)
        await again.resolve_identity()
        again.open()
        await again.start()
        cluster.members["m4"] = again
        assert again.identity == identity

    run(tmp_path, body)


def test_cairn_serve_joining_with_no_peer_answering_exits_with_etcds_error(tmp_path: Path) -> None:
    own = f"http://127.0.0.1:{free_port()}"
    other = f"http://127.0.0.1:{free_port()}"  # nobody listens
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn",
            "serve",
            "--name=m2",
            f"--data-dir={tmp_path / 'm2'}",
            f"--listen-client-urls=http://127.0.0.1:{free_port()}",
            f"--advertise-client-urls=http://127.0.0.1:{free_port()}",
            f"--listen-peer-urls={own}",
            f"--initial-advertise-peer-urls={own}",
            f"--initial-cluster=m1={other},m2={own}",
            "--initial-cluster-state=existing",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETCD_")},
    )
    assert result.returncode == 1
    assert (
        "cairn serve: cannot fetch cluster info from peer urls: could not retrieve cluster "
        "information from the given URLs" in result.stderr
    )
