"""Connects one running member to its MetricsRegistry.

Durations are observed as they happen (the member calls the hooks in its MemberStats, the
gRPC server its RpcStats hook); everything else is state the member already keeps, copied in
just before each scrape, so a scrape costs a few dictionary reads and nothing on the write
path. Runs on the member's event loop: the HTTP endpoints serve from that loop too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from cairn.api.maintenance import ETCD_API_VERSION
from cairn.api.rpc_stats import RpcLabels, RpcStats
from cairn.member.raft_member import RaftMember
from cairn.observe.catalog import ALARM_TYPES
from cairn.observe.leveldb_stats import parse_stats
from cairn.observe.registry import MetricsRegistry
from cairn.peer.sender import PeerState
from cairn.proto import rpc_pb2 as pb
from cairn.sealing import PLAINTEXT

log = logging.getLogger("cairn.observe")

CertificateExpiry = Callable[[], dict[str, float]]

LEVELDB_LEVELS = 7
"""LevelDB's fixed number of levels (config::kNumLevels)."""


def member_hex(member_id: int) -> str:
    """etcd's label for a member: its ID in lowercase hex, no padding."""
    return format(member_id, "x")


def cluster_version(server_version: str) -> str:
    """etcd reports the cluster version as major.minor."""
    return ".".join(server_version.split(".")[:2])


def connect_member(
    metrics: MetricsRegistry,
    member: RaftMember,
    rpc: RpcStats,
    certificate_expiry: CertificateExpiry,
) -> None:
    """Hook ``member`` and the gRPC server's ``rpc`` counts into ``metrics``."""
    stats = member.stats
    stats.observe_wal_fsync = metrics.histogram("etcd_disk_wal_fsync_duration_seconds").observe
    stats.observe_backend_commit = metrics.histogram(
        "etcd_disk_backend_commit_duration_seconds"
    ).observe
    stats.observe_apply = metrics.histogram("cairn_server_apply_duration_seconds").observe
    stats.observe_snapshot_save = metrics.histogram("cairn_snapshot_save_duration_seconds").observe
    stats.observe_defrag = metrics.histogram("etcd_disk_backend_defrag_duration_seconds").observe
    if metrics.has("grpc_server_handling_seconds"):
        handling = metrics.histogram("grpc_server_handling_seconds")

        def observe_handling(labels: RpcLabels, seconds: float) -> None:
            handling.labels(*labels).observe(seconds)

        rpc.observe_handling = observe_handling

    own = member_hex(member.identity.member_id)
    metrics.gauge("etcd_server_version").labels(ETCD_API_VERSION).set(1)
    metrics.gauge("etcd_cluster_version").labels(cluster_version(ETCD_API_VERSION)).set(1)
    metrics.gauge("etcd_server_id").labels(own).set(1)
    configured_quota = member.config.quota_backend_bytes
    metrics.gauge("etcd_server_quota_backend_bytes").set(
        configured_quota if configured_quota < 0 else (member.quota.quota or 0)
    )

    metrics.on_scrape(lambda: _refresh_server(metrics, member))
    metrics.on_scrape(lambda: _refresh_storage(metrics, member))
    metrics.on_scrape(lambda: _refresh_peers(metrics, member))
    metrics.on_scrape(lambda: _refresh_rpc(metrics, rpc))
    metrics.on_scrape(lambda: _refresh_certificates(metrics, certificate_expiry))


def _refresh_server(metrics: MetricsRegistry, member: RaftMember) -> None:
    stats = member.stats
    gauge = metrics.gauge
    gauge("etcd_server_has_leader").set(1 if member.leader else 0)
    gauge("etcd_server_is_leader").set(1 if member.is_leader else 0)
    gauge("etcd_server_is_learner").set(1 if member.is_learner else 0)
    committed = member.committed_index
    applied = member.store.applied_index
    gauge("etcd_server_proposals_committed_total").set(committed)
    gauge("etcd_server_proposals_applied_total").set(applied)
    gauge("cairn_server_committed_index").set(committed)
    gauge("cairn_server_applied_index").set(applied)
    gauge("cairn_server_term").set(member.term)
    gauge("etcd_server_proposals_pending").set(member.proposals_pending)
    gauge("etcd_server_snapshot_apply_in_progress_total").set(stats.snapshot_apply_in_progress)
    gauge("etcd_disk_defrag_inflight").set(stats.defrag_inflight)
    for name, value in (
        ("etcd_server_leader_changes_seen_total", stats.leader_changes_seen_total),
        ("etcd_server_proposals_failed_total", stats.proposals_failed_total),
        ("etcd_server_slow_apply_total", stats.slow_apply_total),
        ("etcd_server_heartbeat_send_failures_total", stats.heartbeat_send_failures_total),
        ("etcd_server_read_indexes_failed_total", stats.read_indexes_failed_total),
        ("etcd_server_slow_read_indexes_total", stats.slow_read_indexes_total),
        ("etcd_debugging_lease_granted_total", stats.lease_granted_total),
        ("etcd_debugging_lease_revoked_total", stats.lease_revoked_total),
        ("etcd_debugging_lease_renewed_total", member.lessor.renewed_total),
        ("etcd_debugging_server_lease_expired_total", member.lessor.expired_total),
    ):
        metrics.mirror_counter(name, value)
    alarms = {kind for _, kind in member.applier.alarms.active}
    for alarm_type in ALARM_TYPES:
        active = pb.AlarmType.Value(alarm_type) in alarms
        gauge("cairn_server_alarm_active").labels(alarm_type).set(1 if active else 0)


def _refresh_storage(metrics: MetricsRegistry, member: RaftMember) -> None:
    gauge = metrics.gauge
    store = member.store
    backend = member.backend
    if backend.db.closed:
        return  # mid-swap; the next scrape sees the new database
    gauge("etcd_mvcc_db_total_size_in_bytes").set(backend.size_on_disk())
    gauge("etcd_mvcc_db_total_size_in_use_in_bytes").set(backend.size_in_use())
    gauge("etcd_debugging_mvcc_keys_total").set(len(store.index))
    gauge("etcd_debugging_mvcc_current_revision").set(store.current_rev)
    gauge("etcd_debugging_mvcc_compact_revision").set(store.compact_rev)
    gauge("etcd_disk_wal_write_bytes_total").set(member.wal.bytes_written)
    gauge("cairn_lease_active").set(len(store.leases))
    _refresh_encryption(metrics, member)
    synced, unsynced = member.watches.counts()
    gauge("etcd_debugging_mvcc_watcher_total").set(synced + unsynced)
    gauge("etcd_debugging_mvcc_slow_watcher_total").set(unsynced)
    gauge("etcd_debugging_mvcc_watch_stream_total").set(member.watches.streams)
    counters = member.op_counters
    for name, value in (
        ("etcd_mvcc_put_total", counters.puts),
        ("etcd_mvcc_delete_total", counters.deletes),
        ("etcd_mvcc_range_total", counters.ranges),
        ("etcd_mvcc_txn_total", counters.txns),
        ("etcd_debugging_mvcc_db_compaction_keys_total", counters.compacted_keys),
        ("etcd_debugging_mvcc_events_total", member.watches.events_sent),
    ):
        metrics.mirror_counter(name, value)
    memory = backend.db.get_property(b"leveldb.approximate-memory-usage")
    if memory is not None:
        gauge("cairn_leveldb_approximate_memory_usage_bytes").set(int(memory))
    raw = backend.db.get_property(b"leveldb.stats")
    rows = {row.level: row for row in parse_stats(raw.decode() if raw else "")}
    for level in range(LEVELDB_LEVELS):
        files = backend.db.get_property(f"leveldb.num-files-at-level{level}".encode())
        row = rows.get(level)
        label = str(level)
        gauge("cairn_leveldb_level_files").labels(label).set(int(files) if files else 0)
        gauge("cairn_leveldb_level_size_bytes").labels(label).set(row.size_bytes if row else 0)
        for name, value in (
            ("cairn_leveldb_compaction_read_bytes_total", row.read_bytes if row else 0.0),
            ("cairn_leveldb_compaction_written_bytes_total", row.written_bytes if row else 0.0),
        ):
            metrics.mirror_counter(name, value, label)


def _refresh_peers(metrics: MetricsRegistry, member: RaftMember) -> None:
    transport = member.transport
    peer = transport.metrics
    local = member_hex(member.identity.member_id)
    for name, counts in (
        ("etcd_network_peer_sent_bytes_total", peer.peer_sent_bytes_total),
        ("etcd_network_peer_received_bytes_total", peer.peer_received_bytes_total),
        ("etcd_network_peer_sent_failures_total", peer.peer_sent_failures_total),
        ("etcd_network_peer_received_failures_total", peer.peer_received_failures_total),
        ("etcd_network_snapshot_send_success", peer.snapshot_send_success),
        ("etcd_network_snapshot_send_failures", peer.snapshot_send_failures),
        ("etcd_network_snapshot_receive_success", peer.snapshot_receive_success),
        ("etcd_network_snapshot_receive_failures", peer.snapshot_receive_failures),
        ("cairn_network_peer_dropped_messages_total", peer.peer_dropped_messages_total),
        ("cairn_network_peer_sent_batches_total", peer.peer_sent_batches_total),
    ):
        for peer_id, value in list(counts.items()):
            metrics.mirror_counter(name, value, member_hex(peer_id))
    for name, samples_by_peer in (
        ("etcd_network_peer_round_trip_time_seconds", peer.peer_round_trip_time_seconds),
        (
            "etcd_network_snapshot_send_total_duration_seconds",
            peer.snapshot_send_total_duration_seconds,
        ),
        (
            "etcd_network_snapshot_receive_total_duration_seconds",
            peer.snapshot_receive_total_duration_seconds,
        ),
    ):
        histogram = metrics.histogram(name)
        for peer_id, samples in list(samples_by_peer.items()):
            child = histogram.labels(member_hex(peer_id))
            while samples:  # each sample is observed exactly once
                child.observe(samples.popleft())
    for name, inflight in (
        ("etcd_network_snapshot_send_inflights_total", peer.snapshot_send_inflights_total),
        ("etcd_network_snapshot_receive_inflights_total", peer.snapshot_receive_inflights_total),
    ):
        for peer_id, value in list(inflight.items()):
            metrics.gauge(name).labels(member_hex(peer_id)).set(value)
    active = metrics.gauge("etcd_network_active_peers")
    active.clear()
    for peer_id in transport.peer_ids:
        state = transport.peer_state(peer_id)
        active.labels(local, member_hex(peer_id)).set(1 if state is PeerState.ACTIVE else 0)
    for peer_id, value in list(peer.disconnected_peers_total.items()):
        metrics.mirror_counter(
            "etcd_network_disconnected_peers_total", value, local, member_hex(peer_id)
        )


def _refresh_rpc(metrics: MetricsRegistry, rpc: RpcStats) -> None:
    metrics.mirror_counter("etcd_network_client_grpc_sent_bytes_total", rpc.sent_bytes)
    metrics.mirror_counter("etcd_network_client_grpc_received_bytes_total", rpc.received_bytes)
    for name, counts in (
        ("grpc_server_started_total", rpc.started),
        ("grpc_server_msg_received_total", rpc.msg_received),
        ("grpc_server_msg_sent_total", rpc.msg_sent),
    ):
        for labels, value in list(counts.items()):
            metrics.mirror_counter(name, value, *labels)
    for handled_labels, value in list(rpc.handled.items()):
        metrics.mirror_counter("grpc_server_handled_total", value, *handled_labels)


def _refresh_certificates(metrics: MetricsRegistry, certificate_expiry: CertificateExpiry) -> None:
    gauge = metrics.gauge("cairn_tls_certificate_expiry_timestamp_seconds")
    gauge.clear()
    try:
        expiry = certificate_expiry()
    except Exception as error:  # a scrape must not fail because one file is unreadable
        log.warning("reading certificate expiry failed: %s", error)
        return
    for path, timestamp in expiry.items():
        gauge.labels(path).set(timestamp)


def _refresh_encryption(metrics: MetricsRegistry, member: RaftMember) -> None:
    """Without a key file nothing is sealed and nothing waits: enabled 0, complete 1."""
    gauge = metrics.gauge
    if member.encryption is None:
        gauge("cairn_encryption_enabled").set(0)
        gauge("cairn_encryption_records_remaining").set(0)
        gauge("cairn_encryption_reencryption_complete").set(1)
        metrics.mirror_counter("cairn_encryption_records_resealed_total", 0)
        return
    progress = member.encryption.progress()
    gauge("cairn_encryption_enabled").set(0 if progress.active_key == PLAINTEXT else 1)
    gauge("cairn_encryption_records_remaining").set(progress.records_remaining)
    gauge("cairn_encryption_reencryption_complete").set(1 if progress.complete else 0)
    metrics.mirror_counter("cairn_encryption_records_resealed_total", progress.records_resealed)
