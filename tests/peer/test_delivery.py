"""Messages get through, in order per sender, when nothing fails."""

from __future__ import annotations

import asyncio

from tests.peer.harness import (
    FAST,
    Node,
    start_mesh,
    stop_all,
    wait_until,
)

from cairn.peer import TransportOptions


def test_two_transports_exchange_messages_in_order() -> None:
    async def main() -> list[Node]:
        nodes = await start_mesh(2)
        one, two = nodes
        try:
            for i in range(50):
                one.transport.send(2, b"a%d" % i)
                two.transport.send(1, b"b%d" % i)
            await wait_until(lambda: len(one.received) == 50 and len(two.received) == 50)
            # Checked before stopping: a peer going away at stop is rightly reported.
            assert not one.unreachable and not two.unreachable
        finally:
            await stop_all(nodes)
        return nodes

    one, two = asyncio.run(main())
    assert two.received == [(1, b"a%d" % i) for i in range(50)]
    assert one.received == [(2, b"b%d" % i) for i in range(50)]
    assert one.transport.metrics.peer_sent_bytes_total[2] == sum(len(b"a%d" % i) for i in range(50))
    assert two.transport.metrics.peer_received_bytes_total[1] == sum(
        len(b"a%d" % i) for i in range(50)
    )


def test_three_transports_deliver_in_order_per_sender() -> None:
    async def main() -> list[Node]:
        nodes = await start_mesh(3)
        try:
            for i in range(200):
                for node in nodes:
                    for other in nodes:
                        if other is not node:
                            node.transport.send(
                                other.member_id,
                                b"%d->%d #%d" % (node.member_id, other.member_id, i),
                            )
                if i % 20 == 0:
                    await asyncio.sleep(0)  # interleave the senders' streams
            await wait_until(lambda: all(len(n.received) == 400 for n in nodes))
        finally:
            await stop_all(nodes)
        return nodes

    nodes = asyncio.run(main())
    for node in nodes:
        for other in nodes:
            if other is not node:
                expected = [
                    b"%d->%d #%d" % (other.member_id, node.member_id, i) for i in range(200)
                ]
                assert node.payloads_from(other.member_id) == expected
        assert sum(node.transport.metrics.peer_dropped_messages_total.values()) == 0


def test_ten_thousand_messages_arrive_in_order_in_few_batches() -> None:
    count = 10_000
    # The whole burst is queued before the sender runs once, so the queue must hold it: this
    # test is about batching a backlog, the bounded queue has its own test.
    options = TransportOptions(**{**FAST.__dict__, "queue_size": count})

    async def main() -> list[Node]:
        nodes = await start_mesh(2, options=options)
        one, two = nodes
        try:
            await wait_until(lambda: one.transport.peer_state(2).value == "active")
            for i in range(count):
                one.transport.send(2, i.to_bytes(4, "big"))
            await wait_until(lambda: len(two.received) == count, timeout=10)
        finally:
            await stop_all(nodes)
        return nodes

    one, two = asyncio.run(main())
    assert two.payloads_from(1) == [i.to_bytes(4, "big") for i in range(count)]
    metrics = one.transport.metrics
    assert metrics.peer_dropped_messages_total[2] == 0
    assert metrics.peer_sent_failures_total[2] == 0
    assert metrics.peer_sent_bytes_total[2] == 4 * count
    assert metrics.peer_sent_batches_total[2] <= 10, "a queued backlog goes out in few writes"


def test_large_payloads_are_split_across_batches_by_size() -> None:
    options = TransportOptions(**{**FAST.__dict__, "max_batch_bytes": 64 * 1024})
    payloads = [bytes([i]) * 40_000 for i in range(20)]

    async def main() -> list[Node]:
        nodes = await start_mesh(2, options=options)
        one, two = nodes
        try:
            await wait_until(lambda: one.transport.peer_state(2).value == "active")
            for payload in payloads:
                one.transport.send(2, payload)
            await wait_until(lambda: len(two.received) == len(payloads))
        finally:
            await stop_all(nodes)
        return nodes

    one, two = asyncio.run(main())
    assert two.payloads_from(1) == payloads
    # 40 kB each under a 64 kB cap: one payload per write.
    assert one.transport.metrics.peer_sent_batches_total[2] == len(payloads)


def test_probe_measures_round_trip_time() -> None:
    async def main() -> tuple[float, list[Node]]:
        nodes = await start_mesh(2)
        one = nodes[0]
        try:
            await wait_until(lambda: one.transport.peer_state(2).value == "active")
            rtt = await one.transport.probe(2)
        finally:
            await stop_all(nodes)
        return rtt, nodes

    rtt, (one, _) = asyncio.run(main())
    assert 0 < rtt < 1.0
    assert list(one.transport.metrics.peer_round_trip_time_seconds[2]) == [rtt]


def test_periodic_probes_record_samples() -> None:
    options = TransportOptions(**{**FAST.__dict__, "probe_interval": 0.02})

    async def main() -> list[Node]:
        nodes = await start_mesh(2, options=options)
        one = nodes[0]
        try:
            samples = one.transport.metrics.peer_round_trip_time_seconds
            await wait_until(lambda: len(samples[2]) >= 3)
        finally:
            await stop_all(nodes)
        return nodes

    one, _ = asyncio.run(main())
    assert all(0 < s < 1.0 for s in one.transport.metrics.peer_round_trip_time_seconds[2])
