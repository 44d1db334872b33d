"""Peer transport: carries members' Raft messages (as opaque bytes) over gRPC streams.

See :class:`Transport`. The wire protocol is ``cairn/proto/peer.proto`` (package cairnpb).
"""

from cairn.peer.faults import PeerFaults
from cairn.peer.metrics import PeerMetrics
from cairn.peer.options import TransportOptions
from cairn.peer.sender import PeerState, PeerUnavailable
from cairn.peer.transport import Transport
from cairn.peer.urls import PeerURL, PeerURLError, parse_peer_url

__all__ = [
    "PeerFaults",
    "PeerMetrics",
    "PeerState",
    "PeerURL",
    "PeerURLError",
    "PeerUnavailable",
    "Transport",
    "TransportOptions",
    "parse_peer_url",
]
