"""Real transports on loopback for the peer tests: start, wire up, wait for a condition."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cairn.peer import PeerFaults, Transport, TransportOptions
from cairn.peer.snapshot import SnapshotHandler

CLUSTER_ID = 0xC1A5
LOOPBACK_ANY_PORT = "http://127.0.0.1:0"

FAST = TransportOptions(
    reconnect_backoff_initial=0.02,
    reconnect_backoff_max=0.2,
    dial_timeout=1.0,
    probe_interval=None,
)
"""Short backoffs so reconnect tests take tenths of a second; probes only when asked for."""


@dataclass
class Node:
    """A transport and everything its callbacks saw."""

    member_id: int
    transport: Transport
    received: list[tuple[int, bytes]] = field(default_factory=list)
    unreachable: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.transport.listen_urls[0]

    def payloads_from(self, sender: int) -> list[bytes]:
        return [payload for origin, payload in self.received if origin == sender]


def make_node(
    member_id: int,
    *,
    cluster_id: int = CLUSTER_ID,
    options: TransportOptions = FAST,
    on_message: Callable[[int, bytes], None] | None = None,
    faults: PeerFaults | None = None,
    on_snapshot: SnapshotHandler | None = None,
) -> Node:
    """A node whose transport is built but not started; records deliveries unless told not to."""
    node = Node(member_id, None)  # type: ignore[arg-type]

    def record(origin: int, payload: bytes) -> None:
        node.received.append((origin, payload))

    node.transport = Transport(
        member_id,
        cluster_id,
        on_message or record,
        on_unreachable=node.unreachable.append,
        options=options,
        faults=faults,
        on_snapshot=on_snapshot,
    )
    return node


async def start_node(
    member_id: int,
    *,
    cluster_id: int = CLUSTER_ID,
    options: TransportOptions = FAST,
    url: str = LOOPBACK_ANY_PORT,
    on_message: Callable[[int, bytes], None] | None = None,
    faults: PeerFaults | None = None,
    on_snapshot: SnapshotHandler | None = None,
) -> Node:
    node = make_node(
        member_id,
        cluster_id=cluster_id,
        options=options,
        on_message=on_message,
        faults=faults,
        on_snapshot=on_snapshot,
    )
    await node.transport.start([url])
    return node


async def start_mesh(
    count: int, *, options: TransportOptions = FAST, faults: PeerFaults | None = None
) -> list[Node]:
    """``count`` started nodes (IDs 1..count), each with every other one as a peer.

    ``faults``, when given, is node 1's fault injector.
    """
    nodes = [
        await start_node(i, options=options, faults=faults if i == 1 else None)
        for i in range(1, count + 1)
    ]
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.transport.add_peer(other.member_id, [other.url])
    return nodes


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.transport.stop()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` on the loop until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


def free_port() -> int:
    """A loopback port nothing listens on (bound and released, so connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
