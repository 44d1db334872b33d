"""The hello every peer call starts with, and the receiver's rules for refusing one.

Checking identity at the start of every call is what turns a misconfiguration into one clear
error instead of a cluster that silently mixes two clusters' Raft messages: a member with
another ``--initial-cluster-token`` (or a stale ``--data-dir`` from an old cluster) has another
cluster ID, and a peer URL that now points at a different member has another member ID.
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.proto import peer_pb2

PROTOCOL_VERSION = 1
"""Version of peer.proto's semantics; a receiver refuses callers that speak another one."""


def format_id(member_or_cluster_id: int) -> str:
    """IDs as etcd prints them in logs and metric labels: lowercase hex, no padding."""
    return format(member_or_cluster_id, "x")


@dataclass(frozen=True)
class LocalIdentity:
    """Who this transport speaks for."""

    member_id: int
    cluster_id: int

    def hello_to(self, peer_id: int) -> peer_pb2.PeerHello:
        """The hello this member sends when calling ``peer_id``."""
        return peer_pb2.PeerHello(
            cluster_id=self.cluster_id,
            from_id=self.member_id,
            to_id=peer_id,
            protocol_version=PROTOCOL_VERSION,
        )

    def refusal(self, hello: peer_pb2.PeerHello) -> str | None:
        """Why a caller with ``hello`` must be refused, or None when it may proceed.

        The message names both sides' IDs and the likely cause, because whoever reads it is an
        operator looking at one member's log who needs to know which flag to fix.
        """
        sender = format_id(hello.from_id)
        if hello.protocol_version != PROTOCOL_VERSION:
            return (
                f"cairn: peer {sender} speaks peer protocol version {hello.protocol_version}, "
                f"member {format_id(self.member_id)} speaks {PROTOCOL_VERSION}"
            )
        if hello.cluster_id != self.cluster_id:
            return (
                f"cairn: cluster ID mismatch: peer {sender} belongs to cluster "
                f"{format_id(hello.cluster_id)}, member {format_id(self.member_id)} to cluster "
                f"{format_id(self.cluster_id)} (different --initial-cluster-token, "
                "or a stale --data-dir from another cluster?)"
            )
        if hello.to_id != self.member_id:
            return (
                f"cairn: member ID mismatch: peer {sender} expected member "
                f"{format_id(hello.to_id)} at this URL, but this is member "
                f"{format_id(self.member_id)} (stale peer URLs in the member list?)"
            )
        if hello.from_id == self.member_id:
            return f"cairn: peer claims this member's own ID {sender} (duplicate member ID?)"
        return None
