"""Snapshots stream in bounded chunks, alongside the messages, and are never taken half."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from tests.peer.harness import CLUSTER_ID, FAST, Node, start_node, stop_all, wait_until

from cairn.peer import PeerState, SnapshotSendError, SnapshotTruncated, TransportOptions
from cairn.peer.handshake import LocalIdentity
from cairn.proto import peer_pb2, peer_pb2_grpc

CHUNKED = TransportOptions(**{**FAST.__dict__, "snapshot_chunk_bytes": 64 * 1024})


class Taker:
    """An on_snapshot that records what it read, optionally waiting or failing first."""

    def __init__(self) -> None:
        self.taken: list[tuple[int, bytes, bytes]] = []
        self.pieces: list[int] = []
        self.errors: list[BaseException] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_with: Exception | None = None

    async def __call__(self, origin: int, message: bytes, data: AsyncIterator[bytes]) -> None:
        received = bytearray()
        try:
            async for piece in data:
                self.pieces.append(len(piece))
                received += piece
        except SnapshotTruncated as exc:
            self.errors.append(exc)
            raise
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.taken.append((origin, message, bytes(received)))


async def pair(taker: Taker) -> tuple[Node, Node]:
    leader = await start_node(1, options=CHUNKED)
    follower = await start_node(2, options=CHUNKED, on_snapshot=taker)
    leader.transport.add_peer(2, [follower.url])
    follower.transport.add_peer(1, [leader.url])
    return leader, follower


def state(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_snapshot_streams_in_bounded_chunks_and_is_confirmed() -> None:
    taker = Taker()
    data = state(1_000_000)

    async def main() -> tuple[int, Node]:
        leader, follower = await pair(taker)
        try:
            pieces = (data[i : i + 300_000] for i in range(0, len(data), 300_000))
            confirmed = await leader.transport.send_snapshot(2, b"raft msg", pieces, len(data))
        finally:
            await stop_all([leader, follower])
        return confirmed, leader

    confirmed, leader = asyncio.run(main())
    assert confirmed == len(data)
    assert taker.taken == [(1, b"raft msg", data)]
    assert max(taker.pieces) <= 64 * 1024
    assert leader.transport.metrics.snapshot_send_success[2] == 1
    assert leader.transport.metrics.snapshot_send_inflights_total[2] == 0


def test_messages_keep_flowing_while_a_snapshot_is_taken() -> None:
    taker = Taker()
    taker.release.clear()

    async def main() -> list[bytes]:
        leader, follower = await pair(taker)
        try:
            await wait_until(lambda: leader.transport.peer_state(2) is PeerState.ACTIVE)

            async def data() -> AsyncIterator[bytes]:
                yield state(200_000)

            transfer = asyncio.create_task(
                leader.transport.send_snapshot(2, b"snap", data(), 200_000)
            )
            await wait_until(lambda: sum(taker.pieces) == 200_000)
            for i in range(10):
                leader.transport.send(2, b"heartbeat %d" % i)
            await wait_until(lambda: len(follower.received) == 10)
            assert not transfer.done(), "the snapshot is still being taken"
            taker.release.set()
            await transfer
        finally:
            await stop_all([leader, follower])
        return follower.payloads_from(1)

    assert asyncio.run(main()) == [b"heartbeat %d" % i for i in range(10)]
    assert len(taker.taken) == 1


def test_snapshot_refused_by_the_member_fails_the_send() -> None:
    taker = Taker()
    taker.fail_with = OSError("disk full")

    async def main() -> tuple[Node, Node]:
        leader, follower = await pair(taker)
        try:
            with pytest.raises(SnapshotSendError, match="disk full"):
                await leader.transport.send_snapshot(2, b"snap", [b"abc"], 3)
        finally:
            await stop_all([leader, follower])
        return leader, follower

    leader, follower = asyncio.run(main())
    assert taker.taken == []
    assert leader.transport.metrics.snapshot_send_failures[2] == 1
    assert follower.transport.metrics.snapshot_receive_failures[1] == 1


def test_sender_with_less_data_than_announced_fails_before_the_member_takes_it() -> None:
    taker = Taker()

    async def main() -> None:
        leader, follower = await pair(taker)
        try:
            with pytest.raises(SnapshotSendError, match="ended at 3 of 10 bytes"):
                await leader.transport.send_snapshot(2, b"snap", [b"abc"], 10)
            await asyncio.sleep(0.05)
        finally:
            await stop_all([leader, follower])

    asyncio.run(main())
    assert taker.taken == []


def test_truncated_transfer_is_reported_to_the_member_and_not_taken() -> None:
    taker = Taker()

    async def main() -> grpc.StatusCode:
        follower = await start_node(2, on_snapshot=taker)
        target = follower.url.removeprefix("http://")
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                call = peer_pb2_grpc.PeerStub(channel).SendSnapshot()
                hello = LocalIdentity(1, CLUSTER_ID).hello_to(2)
                await call.write(peer_pb2.SnapshotChunk(hello=hello, message=b"m", total_bytes=10))
                await call.write(peer_pb2.SnapshotChunk(data=b"abc"))
                await call.done_writing()  # the sender "dies" cleanly after 3 of 10 bytes
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                return error.value.code()
        finally:
            await follower.transport.stop()

    assert asyncio.run(main()) is grpc.StatusCode.DATA_LOSS
    assert taker.taken == []
    assert len(taker.errors) == 1 and "3 of 10" in str(taker.errors[0])


def test_snapshot_to_unknown_peer_fails() -> None:
    async def main() -> None:
        node = await start_node(1)
        try:
            with pytest.raises(SnapshotSendError, match="unknown peer"):
                await node.transport.send_snapshot(9, b"snap", [], 0)
        finally:
            await node.transport.stop()

    asyncio.run(main())
