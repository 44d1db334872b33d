"""Network partitions between in-process Raft members: the majority carries on, the minority
refuses writes, and a healed member converges without losing anything the majority acked."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.errors import ErrLeaderChanged, ErrNoLeader, ErrTimeout, ErrTimeoutDueToLeaderFail
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.peer import PeerFaults
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

NAMES = ("m1", "m2", "m3")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def put(key: bytes) -> InternalRequest:
    return InternalRequest(put=pb.PutRequest(key=key, value=key))


class Cluster:
    def __init__(self, base: Path) -> None:
        urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES}
        self.members: dict[str, RaftMember] = {}
        self.faults: dict[str, PeerFaults] = {}
        for name in NAMES:
            self.faults[name] = PeerFaults()
            self.members[name] = RaftMember(
                MemberConfig(
                    name=name,
                    data_dir=str(base / name),
                    initial_cluster={n: [u] for n, u in urls.items()},
                ),
                ClusterSettings(
                    listen_peer_urls=[urls[name]],
                    heartbeat_interval_ms=20,
                    election_timeout_ms=200,
                    request_timeout_s=1.5,
                    faults=self.faults[name],
                ),
            )

    async def start(self) -> None:
        for member in self.members.values():
            member.open()
            await member.start()

    async def stop(self) -> None:
        for member in self.members.values():
            await member.stop()

    def isolate(self, name: str) -> None:
        """Cut `name` off from everyone, in both directions."""
        alone = self.members[name].identity.member_id
        others = [m.identity.member_id for n, m in self.members.items() if n != name]
        self.faults[name].partition(others)
        for other in (n for n in NAMES if n != name):
            self.faults[other].partition([alone])

    def heal(self) -> None:
        for faults in self.faults.values():
            faults.heal()

    async def leader_among(self, names: list[str], timeout: float = 10.0) -> RaftMember:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            group = [self.members[n] for n in names]
            leaders = [m for m in group if m.is_leader]
            if len(leaders) == 1 and all(m.leader == leaders[0].identity.member_id for m in group):
                return leaders[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"{names} did not agree on a leader")


async def put_retrying(member: RaftMember, key: bytes) -> int:
    for _ in range(100):
        try:
            applied = await member.propose(put(key))
            return applied.response.header.revision  # type: ignore[attr-defined]
        except (ErrNoLeader, ErrTimeout):
            await asyncio.sleep(0.05)
    raise AssertionError(f"{key!r} was never acknowledged")


def run(tmp_path: Path, body: Callable[[Cluster], Awaitable[None]]) -> None:
    async def main() -> None:
        cluster = Cluster(tmp_path)
        await cluster.start()
        try:
            await asyncio.wait_for(body(cluster), timeout=60)
        finally:
            await cluster.stop()

    asyncio.run(main())


def test_isolated_leader_steps_down_and_the_majority_elects_another(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.leader_among(list(NAMES))
        old_name = old.identity.name
        cluster.isolate(old_name)
        rest = [n for n in NAMES if n != old_name]
        new = await cluster.leader_among(rest)
        assert new is not old
        await put_retrying(new, b"majority-write")
        # check-quorum: the cut-off leader notices it lost the quorum and stops leading.
        for _ in range(200):
            if not old.is_leader:
                break
            await asyncio.sleep(0.02)
        assert not old.is_leader

    run(tmp_path, body)


def test_minority_member_refuses_writes_while_the_majority_accepts_them(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader_among(list(NAMES))
        minority = next(n for n in NAMES if cluster.members[n] is not leader)
        cluster.isolate(minority)
        with pytest.raises((ErrNoLeader, ErrTimeout)):
            await cluster.members[minority].propose(put(b"from-the-minority"))
        await put_retrying(leader, b"from-the-majority")
        response = await cluster.members[minority].range(
            pb.RangeRequest(key=b"from-the-minority", serializable=True)
        )
        assert response.count == 0

    run(tmp_path, body)


def test_healed_member_converges_on_everything_the_majority_acknowledged(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        leader = await cluster.leader_among(list(NAMES))
        cut = next(n for n in NAMES if cluster.members[n] is not leader)
        cluster.isolate(cut)
        acked = {b"k%03d" % i: await put_retrying(leader, b"k%03d" % i) for i in range(30)}
        cluster.heal()
        await cluster.leader_among(list(NAMES))
        response = await cluster.members[cut].range(pb.RangeRequest(key=b"k", range_end=b"l"))
        assert {kv.key: kv.mod_revision for kv in response.kvs} == acked

    run(tmp_path, body)


def test_a_linearizable_read_waiting_on_a_lost_leader_fails_with_leader_changed(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.leader_among(list(NAMES))
        follower = next(m for m in cluster.members.values() if m is not old)
        cluster.isolate(old.identity.name)
        # The follower asks the old leader for a ReadIndex that never comes back; once the
        # other two elect a new leader the read fails at once, well before the 1.5 s timeout.
        started = asyncio.get_running_loop().time()
        with pytest.raises(ErrLeaderChanged):
            await follower.linearizable_barrier()
        assert asyncio.get_running_loop().time() - started < follower.cluster.request_timeout_s
        assert follower.leader not in (0, old.identity.member_id)

    run(tmp_path, body)


def test_a_write_lost_with_its_leader_times_out_naming_the_leader_failure(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.leader_among(list(NAMES))
        follower = next(m for m in cluster.members.values() if m is not old)
        cluster.isolate(old.identity.name)
        # Forwarded to the cut-off leader and lost with it; a new leader is elected within
        # two election timeouts of the request, which is how etcd tells this case apart.
        await asyncio.sleep(0.1)
        with pytest.raises(ErrTimeoutDueToLeaderFail):
            await follower.propose(put(b"lost-with-the-leader"))
        cluster.heal()
        await put_retrying(follower, b"after")

    run(tmp_path, body)


def test_a_write_whose_client_gave_up_leaves_no_waiter_behind(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        old = await cluster.leader_among(list(NAMES))
        cluster.isolate(old.identity.name)
        # The cut-off leader appends the entry but can never commit it; the client cancels.
        pending = asyncio.ensure_future(old.propose(put(b"abandoned")))
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert not old._waiters and not old._proposed_at

    run(tmp_path, body)
