"""Tunables of the peer transport, with defaults sized for Raft traffic on a LAN or across AZs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TransportOptions:
    """Everything about queueing, batching, reconnecting and probing that a test may shorten."""

    queue_size: int = 4096
    """Messages waiting per peer. When full, ``send`` drops: Raft retransmits, and a bounded
    queue keeps a slow peer from eating the leader's memory (etcd's stream buffer is 4096)."""

    max_batch_bytes: int = 1024 * 1024
    """Payload bytes per stream write. Large enough to amortise a write over many heartbeats
    and appends, small enough to keep one write from delaying the next heartbeat for long."""

    max_message_bytes: int = 64 * 1024 * 1024
    """Largest gRPC frame sent or accepted. A single payload above this is dropped and counted:
    it could never be delivered, and snapshots travel separately in chunks."""

    dial_timeout: float = 2.0
    """Seconds to open a stream and read the peer's acceptance before trying the next URL."""

    reconnect_backoff_initial: float = 0.05
    """First wait after a failed attempt; doubles up to the maximum. Short, because while a peer
    is down every message to it is dropped, and Raft needs it back soon after it returns."""

    reconnect_backoff_max: float = 1.0
    """Longest wait between attempts: at most this long after a peer restarts until it is used."""

    snapshot_chunk_bytes: int = 1024 * 1024
    """Largest data piece per snapshot chunk: a snapshot never needs one giant gRPC message."""

    probe_interval: float | None = 4.0
    """Seconds between round-trip probes of each connected peer; None disables probing."""

    probe_timeout: float = 2.0
    """A probe that takes longer than this is not a sample, it is a failure."""

    keepalive_time: float = 10.0
    """HTTP/2 pings on idle connections, so a peer that vanished without closing its TCP
    connection (power loss, partition) is noticed and its stream reopened."""

    keepalive_timeout: float = 5.0
    """How long a keepalive ping may go unanswered before the connection counts as dead."""
