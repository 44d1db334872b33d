"""The one list of every metric a cairn member exports.

The server registers exactly these, the dashboards and alert rules are generated from them, and
tests compare them with a running member and with the real etcd. Names, types, label names and
histogram buckets of the ``etcd_*`` and ``grpc_server_*`` entries are etcd's (checked against
etcd 3.4.23's ``--listen-metrics-urls`` output), so the dashboards and alerts operators already
run for etcd (etcd's monitoring mixin) work on cairn unchanged. Some of etcd's types are
surprising and kept on purpose: ``etcd_server_proposals_committed_total`` and
``etcd_disk_wal_write_bytes_total`` are gauges in etcd. cairn's own additions are ``cairn_*``.
``process_*`` and ``python_*`` come from prometheus_client's standard collectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MetricType(StrEnum):
    """The Prometheus exposition type."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


class Origin(StrEnum):
    """Who defines the metric's name and meaning."""

    ETCD = "etcd"
    """etcd defines it; cairn matches name, type, labels and buckets."""
    CAIRN = "cairn"
    """cairn's own; etcd has no equivalent."""
    RUNTIME = "runtime"
    """prometheus_client's process and platform collectors (etcd exports Go's equivalents)."""


def exponential_buckets(start: float, factor: float, count: int) -> tuple[float, ...]:
    """Upper bounds ``start * factor**n`` for n in 0..count-1 (Prometheus' ExponentialBuckets)."""
    return tuple(start * factor**n for n in range(count))


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric family."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    """Histogram upper bounds, without +Inf; empty for counters and gauges."""
    origin: Origin = Origin.ETCD
    extensive: bool = False
    """Only exported with ``--metrics=extensive`` (etcd's flag), like etcd's handling histogram."""


def _counter(name: str, help: str, *labels: str, origin: Origin = Origin.ETCD) -> MetricSpec:
    return MetricSpec(name, MetricType.COUNTER, help, labels, origin=origin)


def _gauge(name: str, help: str, *labels: str, origin: Origin = Origin.ETCD) -> MetricSpec:
    return MetricSpec(name, MetricType.GAUGE, help, labels, origin=origin)


def _histogram(
    name: str,
    help: str,
    buckets: tuple[float, ...],
    *labels: str,
    origin: Origin = Origin.ETCD,
    extensive: bool = False,
) -> MetricSpec:
    return MetricSpec(name, MetricType.HISTOGRAM, help, labels, buckets, origin, extensive)


DISK_BUCKETS = exponential_buckets(0.001, 2, 14)
"""1 ms .. 8.192 s: etcd's WAL fsync, backend commit and snapshot save buckets."""

PEER_RTT_BUCKETS = exponential_buckets(0.0001, 2, 16)
"""100 µs .. 3.2768 s: etcd's peer round-trip buckets."""

SNAPSHOT_TRANSFER_BUCKETS = exponential_buckets(0.1, 2, 9)
"""100 ms .. 25.6 s: etcd's snapshot send/receive duration buckets."""

DEFRAG_BUCKETS = exponential_buckets(0.1, 2, 13)
"""100 ms .. 409.6 s: etcd's defragmentation buckets."""

BACKEND_SNAPSHOT_BUCKETS = exponential_buckets(0.01, 2, 17)
"""10 ms .. 655.36 s: etcd's backend snapshot (Maintenance.Snapshot) buckets."""

GRPC_HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""The Prometheus client default buckets, which go-grpc-prometheus (and so etcd) uses."""

APPLY_BUCKETS = exponential_buckets(0.0001, 2, 16)
"""100 µs .. 3.2768 s for cairn's per-entry apply duration."""

GRPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

ALARM_TYPES = ("NOSPACE", "CORRUPT")
"""The alarm types ``cairn_server_alarm_active`` always reports, one series each."""

CATALOG: tuple[MetricSpec, ...] = (
    # --- etcd server (Raft member) ---------------------------------------------------------
    _gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not."),
    _gauge(
        "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise."
    ),
    _gauge(
        "etcd_server_is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise."
    ),
    _counter("etcd_server_leader_changes_seen_total", "The number of leader changes seen."),
    _gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
    ),
    _gauge(
        "etcd_server_proposals_applied_total", "The total number of consensus proposals applied."
    ),
    _gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit."),
    _counter("etcd_server_proposals_failed_total", "The total number of failed proposals seen."),
    _counter(
        "etcd_server_heartbeat_send_failures_total",
        "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
    ),
    _counter(
        "etcd_server_slow_apply_total",
        "The total number of slow apply requests (likely overloaded from slow disk).",
    ),
    _counter(
        "etcd_server_slow_read_indexes_total",
        "The total number of pending read indexes not in sync with leader's or timed out read "
        "index requests.",
    ),
    _counter(
        "etcd_server_read_indexes_failed_total", "The total number of failed read indexes seen."
    ),
    _gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes."),
    _gauge(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
    ),
    _gauge(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
    ),
    _gauge(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
    ),
    _counter("etcd_server_health_success", "The total number of successful health checks"),
    _counter("etcd_server_health_failures", "The total number of failed health checks"),
    _gauge(
        "etcd_server_snapshot_apply_in_progress_total",
        "1 if the server is applying the incoming snapshot. 0 if none.",
    ),
    # --- disk ------------------------------------------------------------------------------
    _histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        DISK_BUCKETS,
    ),
    _gauge("etcd_disk_wal_write_bytes_total", "Total number of bytes written in WAL."),
    _histogram(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        DISK_BUCKETS,
    ),
    _histogram(
        "etcd_disk_backend_defrag_duration_seconds",
        "The latency distribution of backend defragmentation.",
        DEFRAG_BUCKETS,
    ),
    _histogram(
        "etcd_disk_backend_snapshot_duration_seconds",
        "The latency distribution of backend snapshots.",
        BACKEND_SNAPSHOT_BUCKETS,
    ),
    _gauge(
        "etcd_disk_defrag_inflight",
        "Whether or not defrag is active on the member. 1 means active, 0 means not.",
    ),
    # --- mvcc ------------------------------------------------------------------------------
    _gauge(
        "etcd_mvcc_db_total_size_in_bytes",
        "Total size of the underlying database physically allocated in bytes.",
    ),
    _gauge(
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "Total size of the underlying database logically in use in bytes.",
    ),
    _counter("etcd_mvcc_put_total", "Total number of puts seen by this member."),
    _counter("etcd_mvcc_delete_total", "Total number of deletes seen by this member."),
    _counter("etcd_mvcc_range_total", "Total number of ranges seen by this member."),
    _counter("etcd_mvcc_txn_total", "Total number of txns seen by this member."),
    _gauge("etcd_debugging_mvcc_keys_total", "Total number of keys."),
    _counter("etcd_debugging_mvcc_db_compaction_keys_total", "Total number of db keys compacted."),
    _gauge("etcd_debugging_mvcc_current_revision", "The current revision of store."),
    _gauge("etcd_debugging_mvcc_compact_revision", "The revision of the last compaction in store."),
    _gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers."),
    _gauge("etcd_debugging_mvcc_watch_stream_total", "Total number of watch streams."),
    _gauge("etcd_debugging_mvcc_slow_watcher_total", "Total number of unsynced slow watchers."),
    _counter("etcd_debugging_mvcc_events_total", "Total number of events sent by this member."),
    # --- leases ----------------------------------------------------------------------------
    _counter("etcd_debugging_lease_granted_total", "The total number of granted leases."),
    _counter("etcd_debugging_lease_revoked_total", "The total number of revoked leases."),
    _counter(
        "etcd_debugging_lease_renewed_total", "The number of renewed leases seen by the leader."
    ),
    _counter("etcd_debugging_server_lease_expired_total", "The total number of expired leases."),
    # --- peer network ----------------------------------------------------------------------
    _counter(
        "etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", "To"
    ),
    _counter(
        "etcd_network_peer_received_bytes_total",
        "The total number of bytes received from peers.",
        "From",
    ),
    _counter(
        "etcd_network_peer_sent_failures_total",
        "The total number of send failures from peers.",
        "To",
    ),
    _counter(
        "etcd_network_peer_received_failures_total",
        "The total number of receive failures from peers.",
        "From",
    ),
    _histogram(
        "etcd_network_peer_round_trip_time_seconds",
        "Round-Trip-Time histogram between peers",
        PEER_RTT_BUCKETS,
        "To",
    ),
    _gauge(
        "etcd_network_active_peers",
        "The current number of active peer connections.",
        "Local",
        "Remote",
    ),
    _counter(
        "etcd_network_disconnected_peers_total",
        "The total number of disconnected peers.",
        "Local",
        "Remote",
    ),
    _counter(
        "etcd_network_snapshot_send_success",
        "Total number of successful snapshot sends",
        "To",
    ),
    _counter("etcd_network_snapshot_send_failures", "Total number of snapshot send failures", "To"),
    _gauge(
        "etcd_network_snapshot_send_inflights_total",
        "Total number of inflight snapshot sends",
        "To",
    ),
    _histogram(
        "etcd_network_snapshot_send_total_duration_seconds",
        "Total latency distributions of v3 snapshot sends",
        SNAPSHOT_TRANSFER_BUCKETS,
        "To",
    ),
    _counter(
        "etcd_network_snapshot_receive_success",
        "Total number of successful snapshot receives",
        "From",
    ),
    _counter(
        "etcd_network_snapshot_receive_failures",
        "Total number of snapshot receive failures",
        "From",
    ),
    _gauge(
        "etcd_network_snapshot_receive_inflights_total",
        "Total number of inflight snapshot receives",
        "From",
    ),
    _histogram(
        "etcd_network_snapshot_receive_total_duration_seconds",
        "Total latency distributions of v3 snapshot receives",
        SNAPSHOT_TRANSFER_BUCKETS,
        "From",
    ),
    _counter(
        "cairn_network_peer_dropped_messages_total",
        "Messages to a peer thrown away before reaching its stream (unknown, unreachable or "
        "queue full); a subset of etcd_network_peer_sent_failures_total.",
        "To",
        origin=Origin.CAIRN,
    ),
    _counter(
        "cairn_network_peer_sent_batches_total",
        "Stream writes to a peer; messages per write shows how well sends are batched.",
        "To",
        origin=Origin.CAIRN,
    ),
    # --- client gRPC -----------------------------------------------------------------------
    _counter(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients.",
    ),
    _counter(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients.",
    ),
    _counter(
        "grpc_server_started_total", "Total number of RPCs started on the server.", *GRPC_LABELS
    ),
    _counter(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        *GRPC_LABELS,
        "grpc_code",
    ),
    _counter(
        "grpc_server_msg_received_total",
        "Total number of RPC stream messages received on the server.",
        *GRPC_LABELS,
    ),
    _counter(
        "grpc_server_msg_sent_total",
        "Total number of gRPC stream messages sent by the server.",
        *GRPC_LABELS,
    ),
    _histogram(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level "
        "handled by the server.",
        GRPC_HANDLING_BUCKETS,
        *GRPC_LABELS,
        extensive=True,
    ),
    # --- cairn's own -----------------------------------------------------------------------
    _gauge(
        "cairn_tls_certificate_expiry_timestamp_seconds",
        "When each configured certificate file's certificate expires (Unix seconds).",
        "file",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_server_applied_index",
        "The Raft index of the last entry this member applied to its state machine.",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_server_committed_index",
        "The Raft index this member knows to be committed; applied lagging it means the "
        "member is not applying.",
        origin=Origin.CAIRN,
    ),
    _gauge("cairn_server_term", "The member's current Raft term.", origin=Origin.CAIRN),
    _gauge(
        "cairn_server_alarm_active",
        "1 while an alarm of this type is raised anywhere in the cluster, 0 otherwise; one "
        "series per alarm type (NOSPACE, CORRUPT).",
        "alarm_type",
        origin=Origin.CAIRN,
    ),
    _histogram(
        "cairn_server_apply_duration_seconds",
        "Time to apply one committed entry to the state machine.",
        APPLY_BUCKETS,
        origin=Origin.CAIRN,
    ),
    _histogram(
        "cairn_snapshot_save_duration_seconds",
        "Time to take and persist one Raft snapshot of the state machine.",
        DISK_BUCKETS,
        origin=Origin.CAIRN,
    ),
    _gauge("cairn_lease_active", "Leases currently granted and not expired.", origin=Origin.CAIRN),
    _gauge(
        "cairn_encryption_enabled",
        "1 when the member seals what it stores (--encryption-key-file with an active key), "
        "0 when it stores in clear.",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_encryption_records_remaining",
        "History records still sealed with another key than the active one (or in clear), "
        "which the background re-encryption has yet to re-seal; -1 while it counts them.",
        origin=Origin.CAIRN,
    ),
    _counter(
        "cairn_encryption_records_resealed_total",
        "History records the background re-encryption re-sealed since the member started.",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_encryption_reencryption_complete",
        "1 once every record and WAL segment is under the active key (an old key may then "
        "leave the key file), 0 while re-encryption is pending or running.",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_leveldb_level_files",
        "Table files in each LevelDB level.",
        "level",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_leveldb_level_size_bytes",
        "Bytes of table files in each LevelDB level (LevelDB reports whole MiB).",
        "level",
        origin=Origin.CAIRN,
    ),
    _counter(
        "cairn_leveldb_compaction_read_bytes_total",
        "Bytes LevelDB compactions read, per output level, since the database was opened "
        "(whole MiB).",
        "level",
        origin=Origin.CAIRN,
    ),
    _counter(
        "cairn_leveldb_compaction_written_bytes_total",
        "Bytes LevelDB compactions wrote, per output level, since the database was opened "
        "(whole MiB).",
        "level",
        origin=Origin.CAIRN,
    ),
    _gauge(
        "cairn_leveldb_approximate_memory_usage_bytes",
        "LevelDB's estimate of the memory it uses (memtables and block cache).",
        origin=Origin.CAIRN,
    ),
    # --- runtime (prometheus_client's collectors) ------------------------------------------
    _gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", origin=Origin.RUNTIME),
    _gauge(
        "process_resident_memory_bytes", "Resident memory size in bytes.", origin=Origin.RUNTIME
    ),
    _gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        origin=Origin.RUNTIME,
    ),
    _counter(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        origin=Origin.RUNTIME,
    ),
    _gauge("process_open_fds", "Number of open file descriptors.", origin=Origin.RUNTIME),
    _gauge("process_max_fds", "Maximum number of open file descriptors.", origin=Origin.RUNTIME),
    _gauge(
        "python_info",
        "Python platform information",
        "implementation",
        "major",
        "minor",
        "patchlevel",
        "version",
        origin=Origin.RUNTIME,
    ),
    _counter(
        "python_gc_objects_collected_total",
        "Objects collected during gc",
        "generation",
        origin=Origin.RUNTIME,
    ),
    _counter(
        "python_gc_objects_uncollectable_total",
        "Uncollectable objects found during GC",
        "generation",
        origin=Origin.RUNTIME,
    ),
    _counter(
        "python_gc_collections_total",
        "Number of times this generation was collected",
        "generation",
        origin=Origin.RUNTIME,
    ),
)

BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in CATALOG}


def spec(name: str) -> MetricSpec:
    """The catalog entry for ``name``; KeyError names a metric nobody defined."""
    return BY_NAME[name]
