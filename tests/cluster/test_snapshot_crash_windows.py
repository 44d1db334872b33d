"""Crashes inside the install of a received snapshot image, on in-process members.

Installing an image takes three durable steps: the image is written to a directory of its
own, it is swapped in for member/db by two renames (`snapshot_image.swap_in`), and Raft's
Ready then records the snapshot with a WAL marker (`RaftMember._install_snapshot`). A crash
between the swap and the marker leaves a state applied beyond the whole WAL; a crash between
the two renames' completion and the removal of db.old leaves both directories. Each test stops
the member at one such point by making the next step raise, restarts it on what is on disk,
and checks it starts, records the snapshot, serves every key and keeps replicating. The member
is a follower left behind by log compaction, or a learner whose first state is the image.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.cluster.test_raft_member import free_port, put_retrying
from tests.cluster.test_raft_snapshots import (
    CATCH_UP,
    SNAPSHOT_COUNT,
    SnapshottingCluster,
    everything,
    run,
    wait_applied,
)

from cairn.api.cluster import ClusterService
from cairn.member import snapshot_image
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.mvcc.backend import Backend
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.wal import WAL
from cairn.wal.replay import Replay


class SimulatedCrash(Exception):
    """Raised where the member would have crashed; nothing after it runs."""


async def left_behind(cluster: SnapshottingCluster) -> tuple[RaftMember, str]:
    """Stop a follower and write until the leader's log no longer reaches back to it."""
    leader = await cluster.leader()
    await put_retrying(leader, b"early", b"1")
    await wait_applied(list(cluster.members.values()))
    lagging = next(n for n, m in cluster.members.items() if m is not leader)
    old_last = cluster.members[lagging]._storage.last_index()
    await cluster.stop(lagging)
    for i in range(120):
        await put_retrying(leader, b"written/%03d" % i, b"v%d" % i)
    await put_retrying(leader, b"early", b"2")
    assert leader._storage.first_index() > old_last + 1  # it can only catch up by image
    return leader, lagging


async def wait_failed(member: RaftMember, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while member.failure is None:
        assert asyncio.get_running_loop().time() < deadline, "the crash point was never reached"
        await asyncio.sleep(0.02)


def on_disk(member_dir: Path) -> tuple[int, Replay]:
    """(applied index in member/db, WAL replay) of a stopped member."""
    backend = Backend(str(member_dir / "db"))
    try:
        applied = MVCCStore(backend).applied_index
    finally:
        backend.close()
    wal, replay = WAL.open(str(member_dir / "wal"))
    wal.close()
    return applied, replay


Start = Callable[[], Awaitable[RaftMember]]


async def restarted_and_serving(
    cluster: SnapshottingCluster,
    leader: RaftMember,
    name: str,
    image_index: int,
    start: Start | None = None,
) -> None:
    """Restart `name` on its disk state; it must record the snapshot, serve and replicate."""
    start = start or (lambda: cluster.start(name))
    member = await start()
    assert member.failure is None
    assert member._storage.snapshot().index == image_index
    # The marker is in the WAL now: a second restart replays it from there.
    await cluster.stop(name)
    _, replay = on_disk(Path(member.config.member_dir))
    assert replay.snapshot is not None and replay.snapshot.index == image_index
    member = await start()
    await put_retrying(leader, b"after-restart", b"z")
    await wait_applied(list(cluster.members.values()))
    states = [await everything(m) for m in cluster.members.values()]
    assert all(state == states[0] for state in states), "members differ"
    keys = {row[0] for row in states[0][1]}
    assert {b"written/%03d" % i for i in range(120)} | {b"early", b"after-restart"} <= keys
    local = await member.range(pb.RangeRequest(key=b"after-restart", serializable=True))
    assert [kv.value for kv in local.kvs] == [b"z"]
    assert member.failure is None


def test_crash_between_image_swap_and_wal_marker_restarts_and_writes_the_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashing: set[str] = set()
    install = RaftMember._install_snapshot

    def crash_before_marker(self: RaftMember, snapshot: Any) -> None:
        if self.config.name in crashing:
            raise SimulatedCrash(f"crash before the WAL marker at {snapshot.index}")
        install(self, snapshot)

    monkeypatch.setattr(RaftMember, "_install_snapshot", crash_before_marker)

    async def body(cluster: SnapshottingCluster) -> None:
        leader, lagging = await left_behind(cluster)
        crashing.add(lagging)
        member = await cluster.start(lagging)
        await wait_failed(member)
        assert isinstance(member.failure, SimulatedCrash)
        assert member.images_installed == 1
        await cluster.stop(lagging)
        crashing.clear()

        applied, replay = on_disk(Path(member.config.member_dir))
        wal_last = replay.entries[-1].index if replay.entries else replay.snapshot_index
        assert applied > wal_last  # the image is in member/db, the WAL knows nothing of it
        assert replay.snapshot is None or replay.snapshot.index < applied
        await restarted_and_serving(cluster, leader, lagging, applied)

    run(tmp_path, body)


def test_crash_after_the_swap_renames_before_db_old_is_removed_restarts_on_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashing: set[str] = set()
    remove_tree = snapshot_image.shutil.rmtree

    def crash_before_removing_db_old(path: str, *args: Any, **kwargs: Any) -> None:
        if any(str(path).endswith(f"{name}/member/db.old") for name in crashing):
            raise SimulatedCrash(f"crash before removing {path}")
        remove_tree(path, *args, **kwargs)

    monkeypatch.setattr(snapshot_image.shutil, "rmtree", crash_before_removing_db_old)

    async def body(cluster: SnapshottingCluster) -> None:
        leader, lagging = await left_behind(cluster)
        crashing.add(lagging)
        member = await cluster.start(lagging)
        member_dir = Path(member.config.member_dir)
        deadline = asyncio.get_running_loop().time() + 20
        while not (member_dir / "db.old").exists():
            assert asyncio.get_running_loop().time() < deadline, "the swap never happened"
            await asyncio.sleep(0.005)
        await cluster.stop(lagging)
        crashing.clear()

        assert (member_dir / "db").is_dir() and (member_dir / "db.old").is_dir()
        applied, replay = on_disk(member_dir)
        wal_last = replay.entries[-1].index if replay.entries else replay.snapshot_index
        assert applied > wal_last  # member/db is the image already
        # Opening the member runs snapshot_image.recover: it must keep the image.
        await restarted_and_serving(cluster, leader, lagging, applied)
        assert not (member_dir / "db.old").exists()

    run(tmp_path, body)


def test_new_member_crashed_between_its_first_image_and_the_wal_marker_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The joining member's WAL has no entries at all: only the image says where it stands."""
    crashing: set[str] = set()
    install = RaftMember._install_snapshot

    def crash_before_marker(self: RaftMember, snapshot: Any) -> None:
        if self.config.name in crashing:
            raise SimulatedCrash(f"crash before the WAL marker at {snapshot.index}")
        install(self, snapshot)

    monkeypatch.setattr(RaftMember, "_install_snapshot", crash_before_marker)

    async def body(cluster: SnapshottingCluster) -> None:
        leader = await cluster.leader()
        await put_retrying(leader, b"early", b"1")
        for i in range(120):
            await put_retrying(leader, b"written/%03d" % i, b"v%d" % i)
        assert leader._storage.first_index() > 1  # the founding entries are compacted
        url = f"http://127.0.0.1:{free_port()}"
        await ClusterService(leader).MemberAdd(
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

        async def start_m4() -> RaftMember:
            settings = ClusterSettings(
                listen_peer_urls=[url],
                heartbeat_interval_ms=20,
                election_timeout_ms=200,
                request_timeout_s=5.0,
                seed=7,
                snapshot_catch_up_entries=CATCH_UP,
            )
            m4 = RaftMember(config, settings)
            await m4.resolve_identity()
            m4.open()
            await m4.start()
            cluster.members["m4"] = m4
            return m4

        crashing.add("m4")
        m4 = await start_m4()
        await wait_failed(m4)
        assert isinstance(m4.failure, SimulatedCrash)
        await cluster.stop("m4")
        crashing.clear()

        applied, replay = on_disk(Path(config.member_dir))
        assert replay.entries == [] and replay.snapshot is None
        assert applied > 0
        await restarted_and_serving(cluster, leader, "m4", applied, start_m4)

    run(tmp_path, body)
