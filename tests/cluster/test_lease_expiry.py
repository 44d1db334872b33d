"""Lease expiry in a three-member cluster in one process (real peer transport on loopback,
real LevelDB): the leader alone decides when a lease ran out, and every member deletes its
keys at the same revision because the deletion is a replicated revoke.

The cluster ticks every 20 ms with a 200 ms election timeout, so etcd's minimum TTL is 1 s
and the leader extends every lease by 0.2 s when it takes over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cluster.test_raft_member import Cluster, put_retrying, run
from tests.cluster.test_raft_snapshots import SnapshottingCluster, wait_applied
from tests.cluster.test_raft_snapshots import run as run_snapshotting

from cairn.errors import ErrNotLeader
from cairn.member.raft_member import RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest


async def put_with_lease(member: RaftMember, key: bytes, lease_id: int) -> int:
    applied = await member.propose(InternalRequest(put=pb.PutRequest(key=key, lease=lease_id)))
    return applied.response.header.revision  # type: ignore[attr-defined,no-any-return]


def count(member: RaftMember, key: bytes, end: bytes | None = None) -> int:
    """How many of the keys this member holds now (its local state, no ReadIndex)."""
    return member.store.range(key, end).count


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait for `condition()` to hold; returns how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        if loop.time() - started > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def primary_leader(cluster: Cluster) -> RaftMember:
    leader = await cluster.leader()
    await until(lambda: leader.lessor.primary, 5, "the leader's lessor became primary")
    return leader


def test_keys_of_an_expired_lease_vanish_on_every_member_at_the_same_revision(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(1)).ID
        for key in (b"a", b"b"):
            await put_with_lease(leader, key, lease_id)
        last = await put_with_lease(leader, b"c", 0)
        members = list(cluster.members.values())
        await until(lambda: all(count(m, b"a", b"d") == 1 for m in members), 5, "no expiry yet")
        await until(lambda: all(count(m, b"a", b"c") == 0 for m in members), 5, "keys expired")
        for member in members:
            for key in (b"a", b"b"):
                history = member.store.index.history(key)
                assert history is not None
                assert (history.mains[-1], history.tombstones[-1]) == (last + 1, True)
            assert member.store.current_rev == last + 1
            assert not member.store.leases.exists(lease_id)

    run(tmp_path, body)


@pytest.mark.slow
def test_a_lease_does_not_expire_before_its_ttl(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(2)).ID
        await put_with_lease(leader, b"k", lease_id)
        await asyncio.sleep(1.5)
        assert all(count(m, b"k") == 1 for m in cluster.members.values())
        took = await until(lambda: count(leader, b"k") == 0, 5, "the lease expired")
        assert took < 2.0  # deadline 2 s after the grant, checked every 0.5 s

    run(tmp_path, body)


@pytest.mark.slow
def test_renewing_on_the_leader_keeps_a_lease_past_its_ttl(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(1)).ID
        await put_with_lease(leader, b"k", lease_id)
        for _ in range(10):
            await asyncio.sleep(0.3)
            assert await leader.lessor.renew(lease_id) == 1
        assert count(leader, b"k") == 1
        await until(lambda: count(leader, b"k") == 0, 3, "expiry once renewals stopped")

    run(tmp_path, body)


def test_a_member_that_does_not_lead_refuses_to_renew(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(60)).ID
        follower = next(m for m in cluster.members.values() if m is not leader)
        with pytest.raises(ErrNotLeader):
            await follower.lessor.renew(lease_id)
        assert not follower.lessor.primary

    run(tmp_path, body)


@pytest.mark.slow
def test_a_new_leader_restarts_every_lease_from_its_full_ttl(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(3)).ID
        await put_with_lease(leader, b"k", lease_id)
        await asyncio.sleep(1.5)  # half the TTL gone on the old leader's clock
        await cluster.stop(leader.identity.name)
        new_leader = await primary_leader(cluster)
        ttl = await new_leader.lessor.time_to_live(lease_id)
        assert (ttl.remaining, ttl.granted, ttl.keys) == (3, 3, [b"k"])
        await asyncio.sleep(2.0)  # past the old leader's deadline
        assert all(count(m, b"k") == 1 for m in cluster.members.values())
        await until(lambda: count(new_leader, b"k") == 0, 3, "expiry on the new leader's clock")

    run(tmp_path, body)


def test_leases_survive_a_restart_of_every_member(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        lease_id = (await leader.lessor.grant(30)).ID
        await put_with_lease(leader, b"k", lease_id)
        names = list(cluster.members)
        for name in names:
            await cluster.stop(name)
        for name in names:
            await cluster.start(name)
        leader = await primary_leader(cluster)
        ttl = await leader.lessor.time_to_live(lease_id)
        assert (ttl.remaining, ttl.granted, ttl.keys) == (30, 30, [b"k"])
        await leader.lessor.revoke(lease_id)
        members = list(cluster.members.values())
        await until(lambda: all(count(m, b"k") == 0 for m in members), 5, "revoke applied")

    run(tmp_path, body)


def test_a_member_caught_up_by_an_image_knows_the_leases_and_their_keys(tmp_path: Path) -> None:
    async def body(cluster: SnapshottingCluster) -> None:
        leader = await primary_leader(cluster)
        lagging = next(n for n, m in cluster.members.items() if m is not leader)
        await wait_applied(list(cluster.members.values()))
        await cluster.stop(lagging)
        kept = (await leader.lessor.grant(600)).ID
        await put_with_lease(leader, b"held", kept)
        dropped = (await leader.lessor.grant(600)).ID
        await put_with_lease(leader, b"dropped", dropped)
        await leader.lessor.revoke(dropped)
        for i in range(60):  # past the snapshot count and the catch-up margin
            await put_retrying(leader, b"filler/%02d" % i, b"x")
        restarted = await cluster.start(lagging)
        await until(lambda: restarted.images_installed > 0, 30, "an image was installed")
        await wait_applied(list(cluster.members.values()))
        lease = restarted.store.leases.get(kept)
        assert lease is not None and (lease.ttl, lease.keys) == (600, {b"held"})
        assert not restarted.store.leases.exists(dropped)
        await leader.lessor.revoke(kept)
        await wait_applied(list(cluster.members.values()))
        assert count(restarted, b"held") == 0

    run_snapshotting(tmp_path, body)


def test_a_takeover_with_many_leases_spreads_their_deadlines(tmp_path: Path) -> None:
    """1000 leases of one TTL would all fall due in the same instant after a takeover; the
    new leader postpones some (at most 750 a second, as etcd) instead of revoking all at once."""

    async def body(cluster: Cluster) -> None:
        leader = await primary_leader(cluster)
        grants = await asyncio.gather(*(leader.lessor.grant(60) for _ in range(1000)))
        await cluster.stop(leader.identity.name)
        new_leader = await primary_leader(cluster)
        # Equal deadlines keep grant order: the last one is postponed by 999/750 s.
        first = await new_leader.lessor.time_to_live(grants[0].ID)
        last = await new_leader.lessor.time_to_live(grants[-1].ID)
        assert last.remaining - first.remaining in (1, 2)

    run(tmp_path, body)
