"""Raft snapshots on in-process members: WAL release, restart from a snapshot, catch-up by image.

A small --snapshot-count, a small catch-up margin and small WAL segments make every member
snapshot, compact and release segments within a few hundred writes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.cluster.test_raft_member import NAMES, Cluster, free_port, put_retrying

from cairn.api.cluster import ClusterService
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.proto import rpc_pb2 as pb

SNAPSHOT_COUNT = 20
CATCH_UP = 5


class SnapshottingCluster(Cluster):
    def config(self, name: str) -> tuple[MemberConfig, ClusterSettings]:
        member, settings = super().config(name)
        member.snapshot_count = SNAPSHOT_COUNT
        member.wal_segment_bytes = 4096
        settings.snapshot_catch_up_entries = CATCH_UP
        return member, settings


def run(tmp_path: Path, body: Callable[[SnapshottingCluster], Awaitable[None]]) -> None:
    async def main() -> None:
        cluster = SnapshottingCluster(tmp_path)
        for name in NAMES:
            await cluster.start(name)
        try:
            await asyncio.wait_for(body(cluster), timeout=90)
        finally:
            for name in list(cluster.members):
                await cluster.stop(name)

    asyncio.run(main())


Row = tuple[bytes, bytes, int, int, int]


async def everything(member: RaftMember) -> tuple[int, tuple[Row, ...]]:
    """The whole keyspace as one member serves it (linearizable), with revisions."""
    response = await member.range(pb.RangeRequest(key=b"\0", range_end=b"\0"))
    rows = tuple(
        (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in response.kvs
    )
    return response.header.revision, rows


async def wait_applied(members: list[RaftMember], timeout: float = 20.0) -> None:
    """Until every member has applied as far as the most advanced one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        indexes = {m.store.applied_index for m in members}
        if len(indexes) == 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"applied indexes never converged: {[m.store.applied_index for m in members]}"
    )


def segments(member: RaftMember) -> list[str]:
    return sorted(f for f in os.listdir(member.config.wal_dir) if f.endswith(".wal"))


def test_snapshots_release_wal_segments_and_a_restart_restores_identical_state(
    tmp_path: Path,
) -> None:
    async def body(cluster: SnapshottingCluster) -> None:
        leader = await cluster.leader()
        for i in range(150):
            await put_retrying(leader, b"key/%03d" % (i % 40), b"value-%d" % i * 20)
        await wait_applied(list(cluster.members.values()))
        before = {name: await everything(m) for name, m in cluster.members.items()}
        assert len({state for state in before.values()}) == 1
        for member in cluster.members.values():
            snapshot = member._storage.snapshot()
            assert snapshot.index >= 150 - SNAPSHOT_COUNT
            assert member._storage.first_index() > 1  # the log was compacted
            first = segments(member)[0]
            assert not first.startswith("0000000000000000-"), segments(member)
        for name in NAMES:
            await cluster.stop(name)
        for name in NAMES:
            await cluster.start(name)
        leader = await cluster.leader()
        after = {name: await everything(m) for name, m in cluster.members.items()}
        assert after == before
        await put_retrying(leader, b"after-restart", b"x")
        await wait_applied(list(cluster.members.values()))
        states = {await everything(m) for m in cluster.members.values()}
        assert len(states) == 1

    run(tmp_path, body)


def test_a_member_left_behind_by_compaction_catches_up_by_snapshot_while_writes_flow(
    tmp_path: Path,
) -> None:
    async def body(cluster: SnapshottingCluster) -> None:
        leader = await cluster.leader()
        await put_retrying(leader, b"early", b"1")
        lagging = next(n for n, m in cluster.members.items() if m is not leader)
        await wait_applied(list(cluster.members.values()))
        old_last = cluster.members[lagging]._storage.last_index()
        await cluster.stop(lagging)
        for i in range(120):
            await put_retrying(leader, b"while-down/%03d" % i, b"v%d" % i)
        await put_retrying(leader, b"early", b"2")
        assert leader._storage.first_index() > old_last + 1  # the log it needs is gone

        acked: list[bytes] = []
        stop_writing = asyncio.Event()

        async def writer() -> None:
            i = 0
            while not stop_writing.is_set():
                key = b"during/%04d" % i
                await put_retrying(leader, key, b"x" * 100)
                acked.append(key)
                i += 1

        writing = asyncio.create_task(writer())
        restarted = await cluster.start(lagging)
        deadline = asyncio.get_running_loop().time() + 30
        while restarted.images_installed == 0:
            assert asyncio.get_running_loop().time() < deadline, "no image was installed"
            await asyncio.sleep(0.02)
        written_at_install = len(acked)
        while len(acked) < written_at_install + 30:
            await asyncio.sleep(0.02)
        stop_writing.set()
        await writing
        assert acked, "writes stalled during the transfer"

        members = list(cluster.members.values())
        await wait_applied(members)
        states = [await everything(m) for m in members]
        assert all(state == states[0] for state in states), "members differ"
        revision, rows = states[0]
        keys = {row[0] for row in rows}
        assert set(acked) <= keys
        assert {b"while-down/%03d" % i for i in range(120)} <= keys
        assert revision == max(row[3] for row in rows)
        # The restarted member serves a serializable read from its own, swapped-in state.
        local = await restarted.range(pb.RangeRequest(key=b"early", serializable=True))
        assert [kv.value for kv in local.kvs] == [b"2"]

    run(tmp_path, body)


def test_a_new_member_is_caught_up_by_snapshot_promoted_and_restarts_from_it(
    tmp_path: Path,
) -> None:
    async def body(cluster: SnapshottingCluster) -> None:
        leader = await cluster.leader()
        for i in range(80):
            await put_retrying(leader, b"old/%03d" % i, b"v%d" % i)
        assert leader._storage.first_index() > 1  # the founding entries are compacted
        url = f"http://127.0.0.1:{free_port()}"
        added = await ClusterService(leader).MemberAdd(
            pb.MemberAddRequest(peerURLs=[url], isLearner=True), None
        )
        initial = {n: [u] for n, u in cluster.peer_urls.items()}
        initial["m4"] = [url]
        config = MemberConfig(
            name="m4",
            data_dir=str(cluster.base / "m4"),
            initial_cluster=initial,
            initial_cluster_state="existing",
            snapshot_count=SNAPSHOT_COUNT,
            wal_segment_bytes=4096,
        )
        settings = ClusterSettings(
            listen_peer_urls=[url],
            heartbeat_interval_ms=20,
            election_timeout_ms=200,
            request_timeout_s=5.0,
            seed=7,
            snapshot_catch_up_entries=CATCH_UP,
        )
        # m4 asks the first peer that answers for its ID: every member must have the add.
        await wait_applied(list(cluster.members.values()))
        m4 = RaftMember(config, settings)
        await m4.resolve_identity()
        m4.open()
        await m4.start()
        cluster.members["m4"] = m4
        assert m4.identity.member_id == added.member.ID
        await wait_applied(list(cluster.members.values()))
        assert m4.images_installed >= 1
        leader = await cluster.leader()
        await ClusterService(leader).MemberPromote(
            pb.MemberPromoteRequest(ID=m4.identity.member_id), None
        )
        await put_retrying(leader, b"after-promote", b"y")
        await wait_applied(list(cluster.members.values()))
        assert m4.identity.member_id in m4.node.status().conf_state.voters
        await cluster.stop("m4")
        m4 = RaftMember(config, settings)
        await m4.resolve_identity()  # a restart: reads the WAL, asks nobody
        m4.open()
        await m4.start()
        cluster.members["m4"] = m4
        await put_retrying(leader, b"after-restart", b"z")
        await wait_applied(list(cluster.members.values()))
        states = [await everything(m) for m in cluster.members.values()]
        assert all(state == states[0] for state in states)
        assert {b"after-restart", b"after-promote", b"old/079"} <= {r[0] for r in states[0][1]}

    run(tmp_path, body)
