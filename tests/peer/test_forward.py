"""The ``Forward`` call: a member hands a request to a peer's member and gets its answer (how a
follower asks the leader about leases), over the connected stream's channel."""

from __future__ import annotations

import asyncio

import pytest
from tests.peer.harness import CLUSTER_ID, FAST, LOOPBACK_ANY_PORT, wait_until

from cairn.peer import PeerFaults, PeerState, PeerUnavailable, Transport
from cairn.peer.receiver import FORWARD_UNIMPLEMENTED


async def answering(member_id: int, seen: list[tuple[int, bytes]] | None) -> Transport:
    """A started transport whose member answers b"re:" + payload (None: answers nothing)."""

    async def answer(origin: int, payload: bytes) -> bytes:
        assert seen is not None
        seen.append((origin, payload))
        return b"re:" + payload

    transport = Transport(
        member_id,
        CLUSTER_ID,
        lambda origin, payload: None,
        options=FAST,
        on_forward=None if seen is None else answer,
        faults=PeerFaults(),
    )
    await transport.start([LOOPBACK_ANY_PORT])
    return transport


async def connected_pair(
    seen: list[tuple[int, bytes]] | None,
) -> tuple[Transport, Transport]:
    asker = await answering(0x1, [])
    answerer = await answering(0x2, seen)
    asker.add_peer(0x2, answerer.listen_urls)
    await wait_until(lambda: asker.peer_state(0x2) is PeerState.ACTIVE)
    return asker, answerer


def test_a_forwarded_request_gets_the_peers_answer_and_names_the_sender() -> None:
    async def main() -> None:
        seen: list[tuple[int, bytes]] = []
        asker, answerer = await connected_pair(seen)
        try:
            assert await asker.forward(0x2, b"ping", timeout=5) == b"re:ping"
            assert seen == [(0x1, b"ping")]
        finally:
            await asker.stop()
            await answerer.stop()

    asyncio.run(main())


def test_a_member_that_answers_nothing_refuses_with_unimplemented() -> None:
    async def main() -> None:
        asker, answerer = await connected_pair(None)
        try:
            with pytest.raises(PeerUnavailable, match=f"UNIMPLEMENTED: {FORWARD_UNIMPLEMENTED}"):
                await asker.forward(0x2, b"ping", timeout=5)
        finally:
            await asker.stop()
            await answerer.stop()

    asyncio.run(main())


def test_forwarding_to_an_unknown_or_partitioned_peer_is_unavailable() -> None:
    async def main() -> None:
        asker, answerer = await connected_pair([])
        try:
            with pytest.raises(PeerUnavailable):
                await asker.forward(0x9, b"ping", timeout=5)
            assert asker.faults is not None
            asker.faults.partition([0x2])
            with pytest.raises(PeerUnavailable):
                await asker.forward(0x2, b"ping", timeout=5)
        finally:
            await asker.stop()
            await answerer.stop()

    asyncio.run(main())
