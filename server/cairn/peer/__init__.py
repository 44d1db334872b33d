"""Peer transport: carries members' Raft messages (as opaque bytes) over gRPC streams.

The member builds one :class:`Transport`, starts it on ``--listen-peer-urls``, adds every other
member with its advertised peer URLs, and calls ``send(to, payload)`` for each Raft message.
Inbound payloads arrive at ``on_message(from_id, payload)``.

The wire protocol is ``cairn/proto/peer.proto`` (package ``cairnpb``, service ``Peer``):

- ``Stream`` (bidirectional): one long-lived call per ordered pair of members. The caller's
  first frame is a ``PeerHello`` (cluster ID, from, to, protocol version); the receiver checks it
  and either aborts with FAILED_PRECONDITION (another cluster, another member behind the URL,
  another protocol version) or answers with one ``StreamAccepted``. From then on the caller
  writes ``PeerMessageBatch`` frames (each message: from, to, payload) and the receiver writes
  nothing; either side ending the call ends the link, and the caller redials.
- ``Probe`` (unary): same hello check, answered at once; the caller times it for
  ``etcd_network_peer_round_trip_time_seconds``.
- ``SendSnapshot`` (client streaming, on a connection of its own): a first chunk with the
  hello, the opaque Raft message and the total length, then data chunks of at most
  ``snapshot_chunk_bytes``; answered with ``SnapshotReceived`` once the member took it, or
  DATA_LOSS (truncated), INTERNAL (the member refused it), UNIMPLEMENTED (no ``on_snapshot``).
- ``Members`` (unary, no hello): the cluster ID and the member table, asked by a member that
  joins with ``--initial-cluster-state existing`` and knows neither ID yet
  (:func:`fetch_cluster_info`); UNIMPLEMENTED without a ``cluster_info`` callback.
"""

from cairn.peer.faults import PeerFaults
from cairn.peer.lookup import (
    ClusterInfo,
    ClusterInfoSource,
    ClusterInfoUnavailable,
    MemberInfo,
    fetch_cluster_info,
)
from cairn.peer.metrics import PeerMetrics
from cairn.peer.options import TransportOptions
from cairn.peer.sender import PeerState, PeerUnavailable
from cairn.peer.snapshot import SnapshotError, SnapshotSendError, SnapshotTruncated
from cairn.peer.transport import Transport
from cairn.peer.urls import PeerURL, PeerURLError, parse_peer_url

__all__ = [
    "ClusterInfo",
    "ClusterInfoSource",
    "ClusterInfoUnavailable",
    "MemberInfo",
    "PeerFaults",
    "PeerMetrics",
    "PeerState",
    "PeerURL",
    "PeerURLError",
    "PeerUnavailable",
    "SnapshotError",
    "SnapshotSendError",
    "SnapshotTruncated",
    "Transport",
    "TransportOptions",
    "fetch_cluster_info",
    "parse_peer_url",
]
