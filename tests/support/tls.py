"""Certificates from `cairn pki` for the TLS tests, and the flags that use them.

One directory holds the PKI under test (client CA, peer CA, members, clients `admin` and
`expired`); a second, unrelated PKI plays the attacker's or the misconfigured client's CA.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cairn import pki

CTL_TIMEOUTS = ("--dial-timeout=1s", "--command-timeout=3s")
"""A refused handshake otherwise costs etcdctl's default 5 s dial timeout."""


@dataclass(frozen=True)
class ClusterPKI:
    """The PKI a cluster runs with, plus a rogue one."""

    layout: pki.Layout
    rogue: pki.Layout

    def server_flags(self, name: str = "m1") -> list[str]:
        """etcd's TLS flags for member ``name``: both ports, client certificates required."""
        cert, key = self.layout.member_server(name)
        peer_cert, peer_key = self.layout.member_peer(name)
        return [
            f"--cert-file={cert}",
            f"--key-file={key}",
            f"--trusted-ca-file={self.layout.client_ca[0]}",
            "--client-cert-auth",
            f"--peer-cert-file={peer_cert}",
            f"--peer-key-file={peer_key}",
            f"--peer-trusted-ca-file={self.layout.peer_ca[0]}",
            "--peer-client-cert-auth",
        ]

    def ctl_flags(self, client: str = "admin") -> list[str]:
        """etcdctl's flags to trust the client CA and present client ``client``'s certificate."""
        cert, key = self.layout.client(client)
        return [f"--cacert={self.layout.client_ca[0]}", f"--cert={cert}", f"--key={key}"]


def expired_validity() -> pki.Validity:
    now = dt.datetime.now(dt.UTC)
    return pki.Validity(now - dt.timedelta(days=10), now - dt.timedelta(days=1))


def build_pki(root: Path, members: Sequence[str] = ("m1",)) -> ClusterPKI:
    """A PKI for loopback members (SANs 127.0.0.1 and localhost) and its rogue twin."""
    layout = pki.init(root / "pki")
    for name in members:
        pki.issue_member(layout.root, name, ["localhost"], ["127.0.0.1"])
    pki.issue_client(layout.root, "admin")
    pki.issue_client(layout.root, "expired", validity=expired_validity())
    rogue = pki.init(root / "rogue")
    pki.issue_client(rogue.root, "admin")
    return ClusterPKI(layout, rogue)
