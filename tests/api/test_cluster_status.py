"""Cluster.MemberList and Maintenance.Status on in-process members (three, and one alone).

The three-member cluster runs in one event loop over the real peer transport on loopback,
built the same way as the Raft member tests do it (copied, not imported: one suite must not
depend on another's internals).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from cairn.api.cluster import ClusterService
from cairn.api.maintenance import ETCD_API_VERSION, MaintenanceService
from cairn.errors import ErrNoLeader, ErrTimeout
from cairn.member.config import MemberConfig
from cairn.member.identity import member_id
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

NAMES = ("m1", "m2", "m3")
TOKEN = "etcd-cluster"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """Three Raft members in one loop; each publishes made-up client URLs when started."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.peer_urls = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES}
        self.client_urls = {name: [f"http://127.0.0.1:{free_port()}"] for name in NAMES}
        self.members: dict[str, RaftMember] = {}

    def member_id(self, name: str) -> int:
        return member_id([self.peer_urls[name]], TOKEN)

    async def start(self, name: str, publish: bool = True) -> RaftMember:
        member = RaftMember(
            MemberConfig(
                name=name,
                data_dir=str(self.base / name),
                initial_cluster={n: [url] for n, url in self.peer_urls.items()},
                initial_cluster_token=TOKEN,
            ),
            ClusterSettings(
                listen_peer_urls=[self.peer_urls[name]],
                heartbeat_interval_ms=20,
                election_timeout_ms=200,
                request_timeout_s=5.0,
                seed=hash(name) & 0xFFFF,
            ),
        )
        member.open()
        await member.start()
        if publish:
            member.publish(self.client_urls[name])
        self.members[name] = member
        return member

    async def stop(self, name: str) -> None:
        await self.members.pop(name).stop()

    async def member_list(self, name: str) -> pb.MemberListResponse:
        service = ClusterService(self.members[name])
        return await service.MemberList(pb.MemberListRequest(), None)

    async def status(self, name: str) -> pb.StatusResponse:
        return await MaintenanceService(self.members[name]).Status(pb.StatusRequest(), None)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{check.__name__} did not hold within {timeout} s")


def run(tmp_path: Path, body: Callable[[Cluster], Awaitable[None]], start: int = 3) -> None:
    async def main() -> None:
        cluster = Cluster(tmp_path)
        for name in NAMES[:start]:
            await cluster.start(name)
        try:
            await asyncio.wait_for(body(cluster), timeout=60)
        finally:
            for name in list(cluster.members):
                await cluster.stop(name)

    asyncio.run(main())


def listed(response: pb.MemberListResponse) -> dict[int, tuple[str, list[str], list[str]]]:
    return {m.ID: (m.name, list(m.peerURLs), list(m.clientURLs)) for m in response.members}


def expected(cluster: Cluster, published: tuple[str, ...] = NAMES) -> dict:  # type: ignore[type-arg]
    return {
        cluster.member_id(n): (
            n,
            [cluster.peer_urls[n]],
            cluster.client_urls[n] if n in published else [],
        )
        for n in NAMES
    }


def test_member_list_shows_every_member_with_name_and_published_client_urls(
    tmp_path: Path,
) -> None:
    async def body(cluster: Cluster) -> None:
        async def all_published() -> bool:
            return [listed(await cluster.member_list(n)) for n in NAMES] == [expected(cluster)] * 3

        await eventually(all_published)
        response = await cluster.member_list("m2")
        assert [m.ID for m in response.members] == sorted(m.ID for m in response.members)
        assert not any(m.isLearner for m in response.members)
        assert response.header.member_id == cluster.member_id("m2")
        assert response.header.cluster_id != 0

    run(tmp_path, body)


def test_a_founder_that_never_started_is_listed_by_name_without_client_urls(
    tmp_path: Path,
) -> None:
    """As etcd 3.4 does: the name comes from --initial-cluster, client URLs only by publish."""

    async def body(cluster: Cluster) -> None:
        async def two_published() -> bool:
            want = expected(cluster, published=("m1", "m2"))
            return listed(await cluster.member_list("m1")) == want

        await eventually(two_published)

    run(tmp_path, body, start=2)


def test_a_restarted_member_keeps_the_published_table(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async def all_published() -> bool:
            return [listed(await cluster.member_list(n)) for n in NAMES] == [expected(cluster)] * 3

        await eventually(all_published)
        await cluster.stop("m3")
        await cluster.stop("m2")
        # Alone and not publishing: whatever it lists comes from its own LevelDB.
        await cluster.start("m2", publish=False)
        assert listed(await cluster.member_list("m2")) == expected(cluster)

    run(tmp_path, body)


def test_status_reports_one_leader_everywhere_and_indexes_that_catch_up(tmp_path: Path) -> None:
    async def body(cluster: Cluster) -> None:
        async def agreed_leader() -> bool:
            leaders = {(await cluster.status(n)).leader for n in NAMES}
            return len(leaders) == 1 and 0 not in leaders

        await eventually(agreed_leader)
        leader_id = (await cluster.status("m1")).leader
        leader = next(m for m in cluster.members.values() if m.identity.member_id == leader_id)
        for i in range(20):
            for _ in range(100):
                try:
                    await leader.propose(InternalRequest(put=pb.PutRequest(key=b"k%d" % i)))
                    break
                except (ErrNoLeader, ErrTimeout):
                    await asyncio.sleep(0.05)

        async def caught_up() -> bool:
            statuses = [await cluster.status(n) for n in NAMES]
            indexes = {(s.raftIndex, s.raftAppliedIndex, s.raftTerm) for s in statuses}
            return len(indexes) == 1 and statuses[0].raftAppliedIndex == statuses[0].raftIndex

        await eventually(caught_up)
        status = await cluster.status("m3")
        # 3 founders' bootstrap, one empty entry per leader, 3 publishes, 20 puts.
        assert status.raftIndex >= 23
        assert status.header.revision == 21
        assert status.leader == leader_id
        assert status.version == ETCD_API_VERSION
        assert 0 < status.dbSizeInUse <= status.dbSize  # an estimate, see Backend.size_in_use
        assert not status.isLearner and not status.errors

    run(tmp_path, body)


def test_one_voter_lists_itself_and_is_its_own_leader(tmp_path: Path) -> None:
    async def main() -> None:
        peer_url = f"http://127.0.0.1:{free_port()}"
        config = MemberConfig(
            name="solo",
            data_dir=str(tmp_path / "solo"),
            initial_cluster={"solo": [peer_url]},
        )
        member = RaftMember(config, ClusterSettings(listen_peer_urls=[peer_url]))
        member.open()
        await member.start()
        member.publish(["http://127.0.0.1:2379"])
        try:
            await member.propose(InternalRequest(put=pb.PutRequest(key=b"k")))
            cluster = ClusterService(member)
            for _ in range(500):
                response = await cluster.MemberList(pb.MemberListRequest(), None)
                if response.members[0].clientURLs:
                    break
                await asyncio.sleep(0.01)
            status = await MaintenanceService(member).Status(pb.StatusRequest(), None)
        finally:
            await member.stop()
        own_id = member_id([peer_url], "etcd-cluster")
        assert listed(response) == {own_id: ("solo", [peer_url], ["http://127.0.0.1:2379"])}
        assert status.leader == own_id == status.header.member_id
        assert status.raftIndex == status.raftAppliedIndex >= 1
        assert status.raftTerm == status.header.raft_term >= 1

    asyncio.run(main())
