"""A watch on a member that is caught up by a snapshot image keeps its events exact.

Installing an image replaces the member's store under its watch hub: every watcher must then
re-read the revisions it has not received from the new store, so the image's revisions (which
this member never applied itself) reach it once each, in order, followed by live ones.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cluster.test_raft_member import put_retrying
from tests.cluster.test_raft_snapshots import SnapshottingCluster, run, wait_applied

from cairn.member.raft_member import RaftMember
from cairn.mvcc.watch import WatchEvents, WatchSink
from cairn.proto.kv_pb2 import Event

Change = tuple[int, int, bytes, bytes]


def history(member: RaftMember, first: int) -> list[Change]:
    """Every change to any key from revision `first` on, by Range at each revision."""
    store = member.store
    out: list[Change] = []
    before = {kv.key for kv in store.range(b"\x00", b"", rev=first - 1).kvs}
    for rev in range(first, store.current_rev + 1):
        now = {kv.key: kv for kv in store.range(b"\x00", b"", rev=rev).kvs}
        for key in sorted(set(now) | before):
            if key in now and now[key].mod_revision == rev:
                out.append((rev, Event.PUT, key, now[key].value))
            elif key in before and key not in now:
                out.append((rev, Event.DELETE, key, b""))
        before = set(now)
    return out


def test_a_watch_on_a_member_caught_up_by_an_image_gets_every_revision_once(
    tmp_path: Path,
) -> None:
    async def body(cluster: SnapshottingCluster) -> None:
        leader = await cluster.leader()
        await put_retrying(leader, b"early", b"1")
        lagging = next(n for n, m in cluster.members.items() if m is not leader)
        await wait_applied(list(cluster.members.values()))
        start = cluster.members[lagging].store.current_rev + 1
        await cluster.stop(lagging)
        for i in range(120):
            await put_retrying(leader, b"while-down/%03d" % (i % 50), b"v%d" % i)

        restarted = await cluster.start(lagging)
        assert restarted.images_installed == 0
        sink = WatchSink(capacity=10_000)
        watcher = restarted.watches.watch(1, b"\x00", b"", start, sink)
        changes: list[Change] = []

        async def read() -> None:
            while True:
                item = await sink.get()
                assert isinstance(item, WatchEvents)
                for e in item.events:
                    changes.append((e.kv.mod_revision, e.type, e.kv.key, e.kv.value))

        reading = asyncio.create_task(read())
        deadline = asyncio.get_running_loop().time() + 30
        while restarted.images_installed == 0:
            assert asyncio.get_running_loop().time() < deadline, "no image was installed"
            await asyncio.sleep(0.02)
        for i in range(20):  # live, after the image
            await put_retrying(leader, b"after/%d" % i, b"a")
        await wait_applied(list(cluster.members.values()))
        expected = history(leader, start)
        for _ in range(200):
            if len(changes) >= len(expected):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
        reading.cancel()
        assert watcher.synced
        assert changes == expected

    run(tmp_path, body)
