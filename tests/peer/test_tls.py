"""Mutual TLS slots in through the credentials parameters, without changing the API.

Certificates are made with the openssl command line (the test is skipped without it): the
security issue brings cairn's own PKI, this only proves the transport carries it.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from tests.peer.harness import CLUSTER_ID, FAST, Node, stop_all, wait_until

from cairn.peer import PeerState, Transport

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class Pki:
    ca: bytes
    cert: bytes
    key: bytes


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path, name: str) -> Pki:
    """A CA and one certificate it signs, valid for 127.0.0.1 as server and as client."""
    directory.mkdir()
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", f"/CN={name}-peer-ca", cwd=directory)  # fmt: skip
    _openssl("req", *ec, "-keyout", "member.key", "-out", "member.csr",
             "-subj", f"/CN={name}-member", cwd=directory)  # fmt: skip
    (directory / "ext.cnf").write_text(
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl("x509", "-req", "-in", "member.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "member.crt", "-days", "1", "-extfile", "ext.cnf",
             cwd=directory)  # fmt: skip
    ca, cert, key = ((directory / f).read_bytes() for f in ("ca.crt", "member.crt", "member.key"))
    return Pki(ca, cert, key)


async def start_tls_node(member_id: int, pki: Pki) -> Node:
    node = Node(member_id, None)  # type: ignore[arg-type]
    node.transport = Transport(
        member_id,
        CLUSTER_ID,
        lambda origin, payload: node.received.append((origin, payload)),
        on_unreachable=node.unreachable.append,
        server_credentials=grpc.ssl_server_credentials(
            [(pki.key, pki.cert)], root_certificates=pki.ca, require_client_auth=True
        ),
        channel_credentials=grpc.ssl_channel_credentials(
            root_certificates=pki.ca, private_key=pki.key, certificate_chain=pki.cert
        ),
        options=FAST,
    )
    await node.transport.start(["https://127.0.0.1:0"])
    return node


def test_members_exchange_messages_over_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", "cluster")

    async def main() -> list[Node]:
        one, two = await start_tls_node(1, pki), await start_tls_node(2, pki)
        try:
            assert one.url.startswith("https://")
            one.transport.add_peer(2, [two.url])
            two.transport.add_peer(1, [one.url])
            one.transport.send(2, b"secret to two")
            two.transport.send(1, b"secret to one")
            await wait_until(lambda: len(one.received) == 1 and len(two.received) == 1)
        finally:
            await stop_all([one, two])
        return [one, two]

    one, two = asyncio.run(main())
    assert two.received == [(1, b"secret to two")]
    assert one.received == [(2, b"secret to one")]


def test_peer_with_a_certificate_from_another_ca_cannot_connect(tmp_path: Path) -> None:
    ours, theirs = make_pki(tmp_path / "ours", "ours"), make_pki(tmp_path / "theirs", "theirs")

    async def main() -> list[Node]:
        member, intruder = await start_tls_node(1, ours), await start_tls_node(2, theirs)
        try:
            intruder.transport.add_peer(1, [member.url])
            await wait_until(lambda: intruder.transport.peer_state(1) is PeerState.DOWN)
            intruder.transport.send(1, b"let me in")
            await asyncio.sleep(0.1)
        finally:
            await stop_all([member, intruder])
        return [member, intruder]

    member, intruder = asyncio.run(main())
    assert member.received == []
    assert intruder.transport.metrics.peer_dropped_messages_total[1] >= 1
