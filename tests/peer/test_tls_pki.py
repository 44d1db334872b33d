"""Peer ports with `cairn pki` certificates: members get through, client certificates do not.

The transports are built with the same credential code `cairn serve` uses (cairn.pki.tls), so
this is the peer half of the TLS matrix: a certificate from the client CA, which every operator
and monitoring tool holds, must never open a member's peer port.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.peer.harness import CLUSTER_ID, FAST, Node, stop_all, wait_until

from cairn import pki
from cairn.peer import PeerState, Transport
from cairn.peer.credentials import ChannelCredentialsSource
from cairn.pki.tls import (
    PEER_FLAGS,
    ReloadingChannelCredentials,
    ReloadingServerCredentials,
    TLSFiles,
    channel_credentials,
)


@pytest.fixture
def layout(tmp_path: Path) -> pki.Layout:
    layout = pki.init(tmp_path)
    for name in ("m1", "m2"):
        pki.issue_member(tmp_path, name, ["localhost"], ["127.0.0.1"])
    pki.issue_client(tmp_path, "admin")
    return layout


def peer_files(layout: pki.Layout, name: str) -> TLSFiles:
    cert, key = layout.member_peer(name)
    return TLSFiles(str(cert), str(key), str(layout.peer_ca[0]), client_cert_auth=True)


async def start(member_id: int, served: TLSFiles, dialled_with: ChannelCredentialsSource) -> Node:
    node = Node(member_id, None)  # type: ignore[arg-type]
    node.transport = Transport(
        member_id,
        CLUSTER_ID,
        lambda origin, payload: node.received.append((origin, payload)),
        on_unreachable=node.unreachable.append,
        server_credentials=ReloadingServerCredentials(served, PEER_FLAGS).credentials,
        channel_credentials=dialled_with,
        options=FAST,
    )
    await node.transport.start(["https://127.0.0.1:0"])
    return node


def test_members_with_peer_certificates_exchange_messages(layout: pki.Layout) -> None:
    async def main() -> list[Node]:
        one = await start(
            1, peer_files(layout, "m1"), channel_credentials(peer_files(layout, "m1"))
        )
        two = await start(
            2, peer_files(layout, "m2"), channel_credentials(peer_files(layout, "m2"))
        )
        try:
            one.transport.add_peer(2, [two.url])
            one.transport.send(2, b"append")
            await wait_until(lambda: len(two.received) == 1)
        finally:
            await stop_all([one, two])
        return [one, two]

    _, two = asyncio.run(main())
    assert two.received == [(1, b"append")]


def _refused(layout: pki.Layout, cert: Path, key: Path) -> Node:
    """Dial m1's peer port trusting the peer CA but presenting ``cert``; return m1."""
    intruding = TLSFiles(str(cert), str(key), str(layout.peer_ca[0]))

    async def main() -> Node:
        member = await start(
            1, peer_files(layout, "m1"), channel_credentials(peer_files(layout, "m1"))
        )
        intruder = await start(2, peer_files(layout, "m2"), channel_credentials(intruding))
        try:
            intruder.transport.add_peer(1, [member.url])
            intruder.transport.send(1, b"let me in")
            await wait_until(lambda: intruder.transport.peer_state(1) is PeerState.DOWN)
            intruder.transport.send(1, b"let me in")
            await asyncio.sleep(0.3)
        finally:
            await stop_all([member, intruder])
        return member

    return asyncio.run(main())


def test_a_client_certificate_is_refused_on_the_peer_port(layout: pki.Layout) -> None:
    member = _refused(layout, *layout.client("admin"))
    assert member.received == []


def test_a_members_client_port_certificate_is_refused_on_the_peer_port(
    layout: pki.Layout,
) -> None:
    member = _refused(layout, *layout.member_server("m2"))
    assert member.received == []


def test_a_rotated_peer_certificate_is_presented_on_the_next_connection(
    layout: pki.Layout,
) -> None:
    m1_files = peer_files(layout, "m1")
    cert, key = layout.member_peer("m1")
    admin_cert, admin_key = layout.client("admin")

    async def main() -> tuple[list[bytes], PeerState | None]:
        one = await start(1, peer_files(layout, "m1"), ReloadingChannelCredentials(m1_files))
        two = await start(
            2, peer_files(layout, "m2"), channel_credentials(peer_files(layout, "m2"))
        )
        port = two.url.rsplit(":", 1)[1]
        try:
            one.transport.add_peer(2, [two.url])
            one.transport.send(2, b"before")
            await wait_until(lambda: two.payloads_from(1) == [b"before"])
            # m1's files now hold a client-CA pair: m2 must refuse m1's next connection...
            cert.write_bytes(admin_cert.read_bytes())
            key.write_bytes(admin_key.read_bytes())
            one.transport.update_peer(2, [f"https://localhost:{port}"])  # forces a new dial
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.DOWN)
            one.transport.send(2, b"refused")
            # ...and accept the one after a valid peer certificate is put back.
            pki.issue_member(layout.root, "m1", ["localhost"], ["127.0.0.1"], force=True)
            one.transport.update_peer(2, [two.url])
            await wait_until(lambda: one.transport.peer_state(2) is PeerState.ACTIVE)
            one.transport.send(2, b"after")
            await wait_until(lambda: b"after" in two.payloads_from(1))
            state = one.transport.peer_state(2)
        finally:
            await stop_all([one, two])
        return two.payloads_from(1), state

    delivered, state = asyncio.run(main())
    assert b"refused" not in delivered
    assert delivered[0] == b"before" and delivered[-1] == b"after"
    assert state is PeerState.ACTIVE
