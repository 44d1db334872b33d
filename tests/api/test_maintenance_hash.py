"""Maintenance.Hash and HashKV on a real one-member RaftMember: the responses' fields.

etcdctl 3.4 never calls Hash, so it is checked here through the service; HashKV's etcdctl
output is checked against etcd in tests/differential and across members in tests/cluster.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from cairn.api.maintenance import MaintenanceService
from cairn.errors import ErrCompacted, ErrFutureRev
from cairn.member import hashing
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.mvcc.backend import HISTORY
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_member(tmp_path: Path, body: Callable[[RaftMember], Awaitable[None]]) -> None:
    async def main() -> None:
        peer_url = f"http://127.0.0.1:{free_port()}"
        config = MemberConfig(
            name="solo", data_dir=str(tmp_path / "solo"), initial_cluster={"solo": [peer_url]}
        )
        member = RaftMember(config, ClusterSettings(listen_peer_urls=[peer_url]))
        member.open()
        await member.start()
        try:
            await asyncio.wait_for(body(member), timeout=30)
        finally:
            await member.stop()

    asyncio.run(main())


async def put(member: RaftMember, key: bytes, value: bytes) -> None:
    await member.propose(InternalRequest(put=pb.PutRequest(key=key, value=value)))


def test_hashkv_header_carries_the_current_revision_and_the_compacted_one(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> None:
        service = MaintenanceService(member)
        for value in (b"1", b"2", b"3"):
            await put(member, b"k", value)  # revs 2, 3, 4
        await member.propose(InternalRequest(compaction=pb.CompactionRequest(revision=3)))
        at_four = await service.HashKV(pb.HashKVRequest(revision=4), None)
        assert at_four.header.revision == 4
        assert at_four.header.member_id == member.identity.member_id
        assert at_four.compact_revision == 3
        assert at_four.hash != 0
        await put(member, b"k", b"4")  # rev 5: the header moves, the hash at 4 does not
        again = await service.HashKV(pb.HashKVRequest(revision=4), None)
        assert (again.header.revision, again.hash) == (5, at_four.hash)
        current = await service.HashKV(pb.HashKVRequest(), None)
        assert current.hash != at_four.hash
        with pytest.raises(ErrCompacted):
            await service.HashKV(pb.HashKVRequest(revision=3), None)
        with pytest.raises(ErrFutureRev):
            await service.HashKV(pb.HashKVRequest(revision=6), None)

    with_member(tmp_path, body)


def test_hash_changes_with_every_applied_write(tmp_path: Path) -> None:
    async def body(member: RaftMember) -> None:
        service = MaintenanceService(member)
        before = await service.Hash(pb.HashRequest(), None)
        assert before.header.revision == 1
        await put(member, b"k", b"v")
        after = await service.Hash(pb.HashRequest(), None)
        assert after.hash != before.hash
        assert after.header.revision == 2

    with_member(tmp_path, body)


async def write_history(member: RaftMember, txns: int) -> None:
    """`txns` transactions of 128 puts each (etcd's default --max-txn-ops)."""
    for t in range(txns):
        puts = [
            pb.RequestOp(request_put=pb.PutRequest(key=b"key-%06d" % (t * 128 + i), value=b"v"))
            for i in range(128)
        ]
        await member.propose(InternalRequest(txn=pb.TxnRequest(success=puts)))


def test_linearizable_reads_are_served_while_a_large_history_is_hashed(tmp_path: Path) -> None:
    """HashKV over ~50 chunks of history: reads through ReadIndex complete in between,
    and the hash is the one the store gives in one go."""

    async def body(member: RaftMember) -> None:
        await write_history(member, 400)  # 51,200 records
        records = sum(1 for _ in member.backend.scan(HISTORY))
        assert records // hashing.HASH_CHUNK_RECORDS >= 50
        expected = member.store.hash_kv(0)
        service = MaintenanceService(member)
        hashed = asyncio.ensure_future(service.HashKV(pb.HashKVRequest(), None))
        reads_while_hashing = 0
        while not hashed.done():
            response = await member.range(pb.RangeRequest(key=b"key-000001"))
            assert response.kvs[0].value == b"v"
            reads_while_hashing += not hashed.done()
        assert reads_while_hashing >= 1
        assert (hashed.result().hash, hashed.result().compact_revision) == expected[:2]

    with_member(tmp_path, body)
