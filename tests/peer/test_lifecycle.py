"""Starting, stopping and the unimplemented snapshot call."""

from __future__ import annotations

import asyncio
import gc
import logging
import warnings

import grpc
import pytest
from tests.peer.harness import (
    CLUSTER_ID,
    FAST,
    free_port,
    start_mesh,
    start_node,
    stop_all,
    wait_until,
)

from cairn.peer import PeerState, PeerURLError, TransportOptions
from cairn.peer.handshake import LocalIdentity
from cairn.proto import peer_pb2, peer_pb2_grpc


def test_stop_leaves_no_pending_tasks_or_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    options = TransportOptions(**{**FAST.__dict__, "probe_interval": 0.01})

    async def main() -> set[asyncio.Task[object]]:
        nodes = await start_mesh(3, options=options)
        one = nodes[0]
        one.transport.add_peer(4, [f"http://127.0.0.1:{free_port()}"])  # down: in backoff
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.transport.send(other.member_id, b"hello")
        await wait_until(lambda: all(len(n.received) == 2 for n in nodes))
        await wait_until(lambda: len(one.transport.metrics.peer_round_trip_time_seconds[2]) > 0)
        one.transport.remove_peer(3)  # stopped in the background; stop() must still wait for it
        for node in nodes:
            node.transport.send(1, b"in flight at stop")
        await stop_all(nodes)
        await asyncio.sleep(0)
        return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        leftover = asyncio.run(main())
        gc.collect()
    assert leftover == set()
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_stop_twice_and_stop_without_start_are_harmless() -> None:
    async def main() -> None:
        node = await start_node(1)
        await node.transport.stop()
        await node.transport.stop()
        unstarted = (await start_mesh(1))[0]
        await unstarted.transport.stop()

    asyncio.run(main())


def test_restart_on_the_same_port_after_stop() -> None:
    async def main() -> None:
        node = await start_node(1)
        url = node.url
        await node.transport.stop()
        again = await start_node(1, url=url)
        assert again.url == url
        await again.transport.stop()

    asyncio.run(main())


def test_two_transports_cannot_share_a_port() -> None:
    async def main() -> None:
        node = await start_node(1)
        try:
            with pytest.raises(RuntimeError):
                await start_node(2, url=node.url)
        finally:
            await node.transport.stop()

    asyncio.run(main())


def test_snapshot_transfer_answers_unimplemented() -> None:
    async def main() -> grpc.StatusCode:
        node = await start_node(1)
        target = node.url.removeprefix("http://")
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                hello = LocalIdentity(2, CLUSTER_ID).hello_to(1)
                call = peer_pb2_grpc.PeerStub(channel).SendSnapshot(
                    iter([peer_pb2.SnapshotChunk(hello=hello, data=b"x")])
                )
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await call
                return error.value.code()
        finally:
            await node.transport.stop()

    assert asyncio.run(main()) is grpc.StatusCode.UNIMPLEMENTED


def test_stream_that_does_not_start_with_hello_is_rejected() -> None:
    async def main() -> grpc.StatusCode:
        node = await start_node(1)
        target = node.url.removeprefix("http://")
        try:
            async with grpc.aio.insecure_channel(target) as channel:
                frame = peer_pb2.StreamFrame(batch=peer_pb2.PeerMessageBatch())
                call = peer_pb2_grpc.PeerStub(channel).Stream(iter([frame]))
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    async for _ in call:
                        pass
                return error.value.code()
        finally:
            await node.transport.stop()

    assert asyncio.run(main()) is grpc.StatusCode.INVALID_ARGUMENT


def test_url_scheme_must_match_credentials() -> None:
    async def main() -> None:
        node = await start_node(1)
        try:
            with pytest.raises(PeerURLError, match="no peer TLS credentials"):
                node.transport.add_peer(2, ["https://127.0.0.1:2380"])
            with pytest.raises(PeerURLError):
                node.transport.add_peer(2, ["unix:///tmp/peer"])
            assert node.transport.peer_state(2) is None
        finally:
            await node.transport.stop()

    asyncio.run(main())


def test_update_peer_moves_the_stream_to_the_new_url() -> None:
    async def main() -> list[tuple[int, bytes]]:
        one, two = await start_mesh(2)
        replacement = await start_node(2)  # the same member, now at another address
        try:
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            await two.transport.stop()
            one.transport.update_peer(2, [replacement.url])
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            one.transport.send(2, b"to the new address")
            await wait_until(lambda: len(replacement.received) == 1)
        finally:
            await stop_all([one, replacement])
        return replacement.received

    assert asyncio.run(main()) == [(1, b"to the new address")]


def test_newer_stream_from_a_sender_supersedes_the_older_one() -> None:
    """After a sender reconnects, a late frame on its old stream must not be delivered:
    it would arrive out of order with what the new stream already carried."""

    def frame(*payloads: bytes) -> peer_pb2.StreamFrame:
        messages = [peer_pb2.PeerMessage(from_id=2, to_id=1, payload=p) for p in payloads]
        return peer_pb2.StreamFrame(batch=peer_pb2.PeerMessageBatch(messages=messages))

    async def main() -> list[tuple[int, bytes]]:
        node = await start_node(1)
        target = node.url.removeprefix("http://")
        hello = peer_pb2.StreamFrame(hello=LocalIdentity(2, CLUSTER_ID).hello_to(1))
        try:
            async with (
                grpc.aio.insecure_channel(target) as first,
                grpc.aio.insecure_channel(target) as second,
            ):
                old = peer_pb2_grpc.PeerStub(first).Stream()
                await old.write(hello)
                await old.read()
                await old.write(frame(b"old 1"))
                await wait_until(lambda: len(node.received) == 1)

                new = peer_pb2_grpc.PeerStub(second).Stream()
                await new.write(hello)
                await new.read()
                await new.write(frame(b"new 1"))
                await wait_until(lambda: len(node.received) == 2)

                await old.write(frame(b"old 2, late"))
                await new.write(frame(b"new 2"))
                await wait_until(lambda: len(node.received) == 3)
                await asyncio.sleep(0.05)
                old.cancel()
                new.cancel()
        finally:
            await node.transport.stop()
        return node.received

    assert asyncio.run(main()) == [(2, b"old 1"), (2, b"new 1"), (2, b"new 2")]


def test_update_peer_keeping_the_current_url_keeps_the_stream() -> None:
    async def main() -> list[tuple[int, bytes]]:
        one, two = await start_mesh(2)
        try:
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            one.transport.update_peer(2, [f"http://127.0.0.1:{free_port()}", two.url])
            one.transport.send(2, b"same stream")
            await wait_until(lambda: len(two.received) == 1)
            assert one.transport.peer_state(2) is PeerState.ACTIVE
            assert one.transport.metrics.peer_dropped_messages_total[2] == 0
        finally:
            await stop_all([one, two])
        return two.received

    assert asyncio.run(main()) == [(1, b"same stream")]
