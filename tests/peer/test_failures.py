"""What happens when peers are missing, down, restarted, misconfigured or removed."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest
from tests.peer.harness import (
    CLUSTER_ID,
    FAST,
    Node,
    free_port,
    make_node,
    start_mesh,
    start_node,
    stop_all,
    wait_until,
)

from cairn.peer import PeerFaults, PeerState, TransportOptions


def test_message_to_unknown_peer_is_dropped_and_counted() -> None:
    async def main() -> Node:
        node = await start_node(1)
        try:
            for _ in range(5):
                node.transport.send(99, b"lost")
        finally:
            await node.transport.stop()
        return node

    node = asyncio.run(main())
    assert node.transport.metrics.peer_dropped_messages_total[99] == 5
    assert node.transport.metrics.peer_sent_failures_total[99] == 5


def test_message_to_down_peer_is_dropped_counted_and_reported_without_blocking() -> None:
    async def main() -> tuple[float, Node]:
        node = await start_node(1)
        try:
            node.transport.add_peer(2, [f"http://127.0.0.1:{free_port()}"])
            await wait_until(lambda: node.transport.peer_state(2) is PeerState.DOWN)
            started = time.monotonic()
            for _ in range(1000):
                node.transport.send(2, b"x" * 100)
            elapsed = time.monotonic() - started
        finally:
            await node.transport.stop()
        return elapsed, node

    elapsed, node = asyncio.run(main())
    assert elapsed < 0.5, "send must not wait for the network"
    assert node.transport.metrics.peer_dropped_messages_total[2] == 1000
    assert node.transport.metrics.peer_sent_failures_total[2] == 1000
    assert node.transport.metrics.peer_sent_bytes_total[2] == 0
    assert node.unreachable and set(node.unreachable) == {2}


def test_messages_queued_before_first_connect_are_dropped_when_it_fails() -> None:
    async def main() -> Node:
        node = await start_node(1)
        try:
            node.transport.add_peer(2, [f"http://127.0.0.1:{free_port()}"])
            for _ in range(10):
                node.transport.send(2, b"early")  # queued: the first attempt has not failed yet
            await wait_until(lambda: node.transport.peer_state(2) is PeerState.DOWN)
        finally:
            await node.transport.stop()
        return node

    node = asyncio.run(main())
    assert node.transport.metrics.peer_dropped_messages_total[2] == 10
    assert 2 in node.unreachable


def test_full_queue_drops_the_overflow_and_delivers_the_rest() -> None:
    options = TransportOptions(**{**FAST.__dict__, "queue_size": 10})

    async def main() -> list[Node]:
        nodes = await start_mesh(2, options=options)
        one, two = nodes
        try:
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            for i in range(100):  # no await: the sender cannot drain in between
                one.transport.send(2, b"%d" % i)
            await wait_until(lambda: len(two.received) == 10)
            await asyncio.sleep(0.05)
        finally:
            await stop_all(nodes)
        return nodes

    one, two = asyncio.run(main())
    assert two.payloads_from(1) == [b"%d" % i for i in range(10)]
    assert one.transport.metrics.peer_dropped_messages_total[2] == 90
    assert one.unreachable.count(2) == 90


def test_sender_reconnects_after_receiver_restarts_on_same_port() -> None:
    async def main() -> tuple[Node, Node, list[bytes]]:
        one, two = await start_mesh(2)
        url = two.url
        try:
            one.transport.send(2, b"before")
            await wait_until(lambda: two.received == [(1, b"before")])

            await two.transport.stop()
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.DOWN)
            one.transport.send(2, b"while down")  # dropped, Raft would resend

            revived = make_node(2)
            await revived.transport.start([url])
            revived.transport.add_peer(1, [one.url])
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            for i in range(20):
                one.transport.send(2, b"after %d" % i)
            await wait_until(lambda: len(revived.received) == 20)
        finally:
            await stop_all([one, two])
            await revived.transport.stop()
        return one, revived, revived.payloads_from(1)

    one, _, delivered = asyncio.run(main())
    assert delivered == [b"after %d" % i for i in range(20)]
    assert one.transport.metrics.peer_dropped_messages_total[2] >= 1
    assert 2 in one.unreachable


def test_peer_from_another_cluster_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="cairn.peer")

    async def main() -> tuple[Node, Node]:
        ours = await start_node(1)
        stranger = await start_node(2, cluster_id=CLUSTER_ID + 1)
        try:
            stranger.transport.add_peer(1, [ours.url])
            await wait_until(lambda: stranger.transport.peer_state(1) is PeerState.DOWN)
            for _ in range(10):
                stranger.transport.send(1, b"from elsewhere")
            await wait_until(lambda: ours.transport.metrics.peer_received_failures_total[2] >= 2)
        finally:
            await stop_all([ours, stranger])
        return ours, stranger

    ours, stranger = asyncio.run(main())
    assert ours.received == []
    assert stranger.transport.metrics.peer_dropped_messages_total[1] == 10
    refusals = [r for r in caplog.records if "cluster ID mismatch" in r.getMessage()]
    receiver_side = [r for r in refusals if r.getMessage().startswith("refused peer 2")]
    sender_side = [r for r in refusals if "refused this member" in r.getMessage()]
    assert receiver_side and receiver_side[0].levelno == logging.ERROR
    assert sender_side and sender_side[0].levelno == logging.ERROR
    assert "--initial-cluster-token" in receiver_side[0].getMessage()
    # Retries are rate limited: one line per side, not one per attempt.
    assert len(receiver_side) == 1 and len(sender_side) == 1


def test_wrong_member_behind_url_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cairn.peer")

    async def main() -> tuple[Node, Node]:
        one = await start_node(1)
        three = await start_node(3)
        try:
            one.transport.add_peer(2, [three.url])  # member 2's URL now serves member 3
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.DOWN)
            one.transport.send(2, b"for two")
        finally:
            await stop_all([one, three])
        return one, three

    _, three = asyncio.run(main())
    assert three.received == []
    assert any("member ID mismatch" in r.getMessage() for r in caplog.records)


def test_sender_tries_the_next_url_when_one_is_down() -> None:
    async def main() -> Node:
        one, two = await start_node(1), await start_node(2)
        try:
            one.transport.add_peer(2, [f"http://127.0.0.1:{free_port()}", two.url])
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            one.transport.send(2, b"ping")
            await wait_until(lambda: len(two.received) == 1)
        finally:
            await stop_all([one, two])
        return two

    two = asyncio.run(main())
    assert two.received == [(1, b"ping")]


def test_remove_peer_stops_sending() -> None:
    async def main() -> tuple[Node, Node]:
        one, two = await start_mesh(2)
        try:
            one.transport.send(2, b"first")
            await wait_until(lambda: len(two.received) == 1)
            one.transport.remove_peer(2)
            one.transport.send(2, b"after removal")
            await asyncio.sleep(0.1)
        finally:
            await stop_all([one, two])
        return one, two

    one, two = asyncio.run(main())
    assert two.received == [(1, b"first")]
    assert one.transport.peer_ids == []
    assert one.transport.metrics.peer_dropped_messages_total[2] == 1


def test_failing_on_message_does_not_break_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="cairn.peer")
    seen: list[bytes] = []

    def picky(origin: int, payload: bytes) -> None:
        if payload == b"poison":
            raise RuntimeError("member bug")
        seen.append(payload)

    async def main() -> None:
        one, two = await start_node(1), await start_node(2, on_message=picky)
        try:
            one.transport.add_peer(2, [two.url])
            for payload in (b"a", b"poison", b"b"):
                one.transport.send(2, payload)
            await wait_until(lambda: len(seen) == 2)
        finally:
            await stop_all([one, two])

    asyncio.run(main())
    assert seen == [b"a", b"b"]
    assert any("on_message failed" in r.getMessage() for r in caplog.records)


def test_fault_injection_partitions_and_heals_a_link() -> None:
    faults = PeerFaults()

    async def main() -> tuple[list[Node], list[int]]:
        nodes = await start_mesh(3, faults=faults)
        one, two, three = nodes
        try:
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            await wait_until(lambda: two.transport.peer_state(1) is PeerState.ACTIVE)
            faults.partition([2])
            one.transport.send(2, b"lost out")
            one.transport.send(3, b"kept out")
            two.transport.send(1, b"lost in")
            three.transport.send(1, b"kept in")
            await wait_until(lambda: len(three.received) == 1 and len(one.received) == 1)
            await asyncio.sleep(0.05)
            with pytest.raises(grpc.aio.AioRpcError):
                await two.transport.probe(1)
            partitioned = [len(two.received), len(one.received)]
            faults.heal()
            one.transport.send(2, b"healed out")
            two.transport.send(1, b"healed in")
            await wait_until(lambda: len(two.received) == 1 and len(one.received) == 2)
        finally:
            await stop_all(nodes)
        return nodes, partitioned

    (one, two, three), partitioned = asyncio.run(main())
    assert partitioned == [0, 1]
    assert two.received == [(1, b"healed out")]
    assert one.received == [(3, b"kept in"), (2, b"healed in")]
    assert three.received == [(1, b"kept out")]
    assert faults.dropped_outbound[2] == 1 and faults.dropped_inbound[2] == 1
    # A test-made partition leaves the production counters and callbacks alone.
    assert one.transport.metrics.peer_dropped_messages_total[2] == 0
    assert 2 not in one.unreachable


def test_oversized_message_is_dropped_and_counted() -> None:
    options = TransportOptions(**{**FAST.__dict__, "max_message_bytes": 64 * 1024})

    async def main() -> list[Node]:
        nodes = await start_mesh(2, options=options)
        one, two = nodes
        try:
            one.transport.send(2, b"x" * (64 * 1024))
            one.transport.send(2, b"fits")
            await wait_until(lambda: len(two.received) == 1)
        finally:
            await stop_all(nodes)
        return nodes

    one, two = asyncio.run(main())
    assert two.received == [(1, b"fits")]
    assert one.transport.metrics.peer_dropped_messages_total[2] == 1
