"""The transport's counters, kept as plain numbers until the observability issue exports them.

Attribute names are etcd's metric names (without the ``etcd_network_`` prefix where noted in
the docstrings) so the exporter is a mechanical mapping and the dashboards people already run
for etcd work on cairn. Keys are member IDs as integers; etcd labels them with the ID in
lowercase hex (``format(member_id, "x")``), which is the exporter's job.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

RTT_SAMPLES_KEPT = 128
"""Round-trip samples kept per peer: enough for a histogram between scrapes, bounded in memory."""


def _samples() -> deque[float]:
    return deque(maxlen=RTT_SAMPLES_KEPT)


@dataclass
class PeerMetrics:
    """Counters for one transport. Mutated only on the event loop that runs the transport."""

    peer_sent_bytes_total: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    """``etcd_network_peer_sent_bytes_total{To}``: payload bytes handed to each peer's stream."""

    peer_received_bytes_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_peer_received_bytes_total{From}``: payload bytes delivered from each peer."""

    peer_sent_failures_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_peer_sent_failures_total{To}``: messages that did not reach the peer's
    stream, whether dropped before sending or lost with a stream that broke under them."""

    peer_received_failures_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_peer_received_failures_total{From}``: refused or broken inbound streams."""

    peer_round_trip_time_seconds: defaultdict[int, deque[float]] = field(
        default_factory=lambda: defaultdict(_samples)
    )
    """``etcd_network_peer_round_trip_time_seconds{To}``: recent probe round trips, newest last;
    the exporter observes each sample into etcd's histogram buckets once."""

    peer_dropped_messages_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``cairn_network_peer_dropped_messages_total{To}`` (cairn's own): messages ``send`` threw
    away because the peer was unknown, unreachable or its queue was full. A subset of
    ``peer_sent_failures_total``, kept apart because it shows back-pressure, not a broken link."""

    peer_sent_batches_total: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    """``cairn_network_peer_sent_batches_total{To}`` (cairn's own): stream writes; messages per
    write shows how well batching amortises the per-write cost under load."""

    snapshot_send_success: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    """``etcd_network_snapshot_send_success{To}``: snapshots the peer confirmed it took."""

    snapshot_send_failures: defaultdict[int, int] = field(default_factory=lambda: defaultdict(int))
    """``etcd_network_snapshot_send_failures{To}``: transfers that failed or were refused."""

    snapshot_send_inflights_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_snapshot_send_inflights_total{To}`` (a gauge): transfers under way."""

    snapshot_send_total_duration_seconds: defaultdict[int, deque[float]] = field(
        default_factory=lambda: defaultdict(_samples)
    )
    """``etcd_network_snapshot_send_total_duration_seconds{To}``: recent successful transfers."""

    snapshot_receive_success: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_snapshot_receive_success{From}``: snapshots taken by this member."""

    snapshot_receive_failures: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_snapshot_receive_failures{From}``: truncated, refused or not taken."""

    snapshot_receive_inflights_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_snapshot_receive_inflights_total{From}`` (a gauge): transfers under way."""

    snapshot_receive_total_duration_seconds: defaultdict[int, deque[float]] = field(
        default_factory=lambda: defaultdict(_samples)
    )
    """``etcd_network_snapshot_receive_total_duration_seconds{From}``: recent successful ones."""

    disconnected_peers_total: defaultdict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )
    """``etcd_network_disconnected_peers_total{Local,Remote}``: times the stream to each peer
    went from active to down."""

    def record_rtt(self, peer_id: int, seconds: float) -> None:
        """Keep one round-trip sample."""
        self.peer_round_trip_time_seconds[peer_id].append(seconds)

    def record_drop(self, peer_id: int, count: int = 1) -> None:
        """Count messages thrown away before they reached a stream."""
        self.peer_dropped_messages_total[peer_id] += count
        self.peer_sent_failures_total[peer_id] += count
