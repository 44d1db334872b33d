"""Three Raft members in one process, over the real peer transport on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.errors import ErrNoLeader, ErrTimeout
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

NAMES = ("m1", "m2", "m3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """Members share one event loop; each has its own data dir and peer port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.peer_urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES}
        self.members: dict[str, RaftMember] = {}

    def config(self, name: str) -> tuple[MemberConfig, ClusterSettings]:
        member = MemberConfig(
            name=name,
            data_dir=str(self.base / name),
            initial_cluster={n: [url] for n, url in self.peer_urls.items()},
        )
        settings = ClusterSettings(
            listen_peer_urls=[self.peer_urls[name]],
            heartbeat_interval_ms=20,
            election_timeout_ms=200,
            request_timeout_s=5.0,
            seed=hash(name) & 0xFFFF,
        )
        return member, settings

    async def start(self, name: str) -> RaftMember:
        member = RaftMember(*self.config(name))
        member.open()
        await member.start()
        self.members[name] = member
        return member

    async def stop(self, name: str) -> None:
        await self.members.pop(name).stop()

    async def leader(self, timeout: float = 10.0) -> RaftMember:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            leaders = [m for m in self.members.values() if m.is_leader]
            if len(leaders) == 1 and all(
                m.leader == leaders[0].identity.member_id for m in self.members.values()
            ):
                return leaders[0]
            await asyncio.sleep(0.02)
        raise AssertionError("the members did not agree on one leader")


def put(key: bytes, value: bytes) -> InternalRequest:
    return InternalRequest(put=pb.PutRequest(key=key, value=value))


async def put_retrying(member: RaftMember, key: bytes, value: bytes) -> int:
    """A client retries while an election is under way, as etcd clients do."""
    for _ in range(100):
        try:
            applied = await member.propose(put(key, value))
            return applied.response.header.revision  # type: ignore[attr-defined]
        except (ErrNoLeader, ErrTimeout):
            await asyncio.sleep(0.05)
    raise AssertionError("the write never went through")


def run(tmp_path: Path, body: Callable[[Cluster], Awaitable[None]]) -> None:
    async def main() -> None:
        cluster = Cluster(tmp_path)
        for name in NAMES:
            await cluster.start(name)
        try:
            await asyncio.wait_for(body(cluster), timeout=60)
        finally:
            for name in list(cluster.members):
                await cluster.stop(name)

    asyncio.run(main())


def test_three_members_elect_exactly_one_leader(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        assert all(m.leader == leader.identity.member_id for m in cluster.members.values())

    run(tmp_path, body)


def test_a_write_on_a_follower_is_replicated_to_every_member(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        follower = next(m for m in cluster.members.values() if m is not leader)
        revision = await put_retrying(follower, b"k", b"v")
        for member in cluster.members.values():
            response = await member.range(pb.RangeRequest(key=b"k"))
            assert [kv.value for kv in response.kvs] == [b"v"]
            assert response.header.revision == revision

    run(tmp_path, body)


def test_linearizable_read_on_a_follower_sees_a_write_acknowledged_by_the_leader(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        followers = [m for m in cluster.members.values() if m is not leader]
        for i in range(20):
            await put_retrying(leader, b"counter", b"%d" % i)
            response = await followers[i % 2].range(pb.RangeRequest(key=b"counter"))
            assert response.kvs[0].value == b"%d" % i

    run(tmp_path, body)


def test_losing_the_leader_elects_another_and_keeps_acknowledged_writes(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        for i in range(10):
            await put_retrying(leader, b"k%d" % i, b"before")
        old_name = leader.identity.name
        await cluster.stop(old_name)
        new_leader = await cluster.leader()
        assert new_leader.identity.name != old_name
        await put_retrying(new_leader, b"after", b"x")
        response = await new_leader.range(pb.RangeRequest(key=b"k", range_end=b"l"))
        assert response.count == 10
        restarted = await cluster.start(old_name)
        await cluster.leader()
        response = await restarted.range(pb.RangeRequest(key=b"after"))
        assert [kv.value for kv in response.kvs] == [b"x"]

    run(tmp_path, body)


def test_a_minority_member_refuses_writes_instead_of_acknowledging_them(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader()
        survivor = next(m for m in cluster.members.values() if m is not leader)
        for name in [n for n in NAMES if cluster.members[n] is not survivor]:
            await cluster.stop(name)
        with pytest.raises((ErrNoLeader, ErrTimeout)):
            for _ in range(50):
                await survivor.propose(put(b"lonely", b"x"))
                await asyncio.sleep(0.05)
        response = await asyncio.wait_for(
            survivor.range(pb.RangeRequest(key=b"lonely", serializable=True)), 5
        )
        assert response.count == 0

    run(tmp_path, body)
