"""cairn's Grafana dashboards, defined as code from the metric catalog and the alert thresholds.

Two boards: the cluster overview (is the cluster healthy, and if not, which layer — Raft, disk,
database size, client requests, peers, resources) and a member detail board for one instance
picked from a drop-down, with the same panels plus what only matters when digging into one
member (apply path, LevelDB, snapshots, file descriptors).
"""

from __future__ import annotations

from cairn.observe import thresholds as t
from cairn.observe.panels import RATE, Board, Limit, Query, dashboard, graph, stat
from cairn.observe.promql import bucket, count, series
from cairn.observe.timing import PRODUCTION

CLUSTER = 'job="$cluster"'
MEMBERS = 'job="$cluster", instance=~"$instance"'
"""The overview shows every picked member (All by default)."""
MEMBER = 'job="$cluster", instance="$instance"'
"""The detail board shows exactly one member."""
PANEL = 8
"""Graph width: three per row."""


def _q(quantile: float, histogram: str, sel: str, by: str = "instance") -> str:
    keep = f"{by}, le" if by else "le"
    return (
        f"histogram_quantile({quantile}, sum by ({keep}) (rate({bucket(histogram, sel)}[{RATE}])))"
    )


def _health(board: Board) -> None:
    board.row("Cluster health")
    up = series("up", CLUSTER)
    board.add(
        stat(
            "Members up",
            "Members Prometheus can scrape. Below a majority of the cluster's size the cluster "
            "refuses writes and linearizable reads (etcdInsufficientMembers); any member down "
            "pages after 10 minutes (etcdMembersDown).",
            Query(f"sum({up})"),
            "none",
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Members down",
            "Members Prometheus cannot scrape. 0 is healthy; one more failure than the cluster "
            "tolerates loses quorum.",
            Query(f"count({up} == 0) or vector(0)"),
            "none",
            [Limit(1)],
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Has leader",
            "1 when every member knows a leader. 0 means at least one member cannot serve "
            "writes or linearizable reads (etcdNoLeader pages after 1 minute).",
            Query(f"min({series('etcd_server_has_leader', CLUSTER)})"),
            "none",
            [Limit(1, "green")],
            base="red",
        ),
        4,
        4,
    )
    board.add(
        stat(
            f"Leader changes ({t.LEADER_CHANGES_WINDOW})",
            f"Elections seen in the last {t.LEADER_CHANGES_WINDOW}. {t.LEADER_CHANGES_WARNING} "
            "or more warns (etcdHighNumberOfLeaderChanges): look for slow disks, CPU starvation "
            "or a flaky network between members.",
            Query(
                "max(increase("
                f"{series('etcd_server_leader_changes_seen_total', CLUSTER)}"
                f"[{t.LEADER_CHANGES_WINDOW}]))"
            ),
            "none",
            [Limit(t.LEADER_CHANGES_WARNING, "orange")],
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Active alarms",
            "Alarms raised in the cluster (NOSPACE, CORRUPT). Anything but 0 means the cluster "
            "refuses writes: see the runbooks cairnNoSpaceAlarm / cairnCorruptAlarm.",
            Query(f"sum({series('cairn_server_alarm_active', CLUSTER)})"),
            "none",
            [Limit(1)],
        ),
        4,
        4,
    )
    board.add(
        stat(
            "Earliest certificate expiry",
            f"Days until the first TLS certificate of any member expires. Below "
            f"{t.CERT_EXPIRY_WARNING_DAYS} days warns, below {t.CERT_EXPIRY_CRITICAL_DAYS} pages "
            "(cairnCertificateExpiring). 'no data' means the members run without TLS.",
            Query(
                f"min({series('cairn_tls_certificate_expiry_timestamp_seconds', CLUSTER)}"
                f" - time()) / {t.DAY_S}"
            ),
            "d",
            [Limit(t.CERT_EXPIRY_CRITICAL_DAYS, "orange"), Limit(t.CERT_EXPIRY_WARNING_DAYS)],
            base="red",
        ),
        4,
        4,
    )
    board.add(
        graph(
            "Leader changes per hour",
            "Elections each member saw in the trailing hour. A healthy cluster sits at 0; "
            "steady elections mean members miss heartbeats.",
            [
                Query(
                    f"increase({series('etcd_server_leader_changes_seen_total', MEMBERS)}[1h])",
                    "{{instance}}",
                )
            ],
            "none",
        ),
        12,
        8,
    )
    board.add(
        graph(
            "Leader",
            "Which member leads (1). A line that keeps moving is the same story as the "
            "leader-changes panel.",
            [Query(series("etcd_server_is_leader", MEMBERS), "{{instance}}")],
            "none",
            stacked=True,
        ),
        12,
        8,
    )


def _proposals(board: Board, sel: str) -> None:
    board.row("Raft proposals")
    board.add(
        graph(
            "Proposals committed / applied",
            "Entries per second the members commit and apply. Applied should track committed; "
            "a member whose applied rate falls to 0 while committed goes on is stuck "
            "(cairnMemberNotApplying).",
            [
                Query(
                    f"rate({series('etcd_server_proposals_committed_total', sel)}[{RATE}])",
                    "committed {{instance}}",
                ),
                Query(
                    f"rate({series('etcd_server_proposals_applied_total', sel)}[{RATE}])",
                    "applied {{instance}}",
                ),
            ],
            "ops",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Proposals pending",
            "Proposals waiting to commit. A growing number means the leader cannot reach a "
            "quorum fast enough (slow follower disks or network).",
            [Query(series("etcd_server_proposals_pending", sel), "{{instance}}")],
            "none",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Proposals failed",
            f"Failed proposals per second (lost leader, timeouts). Above "
            f"{t.FAILED_PROPOSALS_PER_S:g}/s for 15 minutes warns "
            "(etcdHighNumberOfFailedProposals).",
            [
                Query(
                    f"rate({series('etcd_server_proposals_failed_total', sel)}[{RATE}])",
                    "{{instance}}",
                )
            ],
            "ops",
            [Limit(t.FAILED_PROPOSALS_PER_S, "orange")],
        ),
        PANEL,
        8,
    )


def _disk(board: Board, sel: str) -> None:
    board.row("Disk")
    fsync = "etcd_disk_wal_fsync_duration_seconds"
    board.add(
        graph(
            "WAL fsync p50 / p99",
            "Time to make a batch of Raft entries durable. Every write waits for it on a "
            f"quorum. p99 above {t.WAL_FSYNC_P99_WARNING_S:g}s warns and above "
            f"{t.WAL_FSYNC_P99_CRITICAL_S:g}s pages (etcdHighFsyncDurations): the disk is too "
            "slow or shared with something busy.",
            [
                Query(_q(0.5, fsync, sel), "p50 {{instance}}"),
                Query(_q(0.99, fsync, sel), "p99 {{instance}}"),
            ],
            "s",
            [
                Limit(t.WAL_FSYNC_P99_WARNING_S, "orange"),
                Limit(t.WAL_FSYNC_P99_CRITICAL_S),
            ],
        ),
        PANEL,
        8,
    )
    commit = "etcd_disk_backend_commit_duration_seconds"
    board.add(
        graph(
            "Backend commit p99",
            "Time to write applied entries into LevelDB. Above "
            f"{t.BACKEND_COMMIT_P99_WARNING_S:g}s warns (etcdHighCommitDurations); applies "
            "fall behind and reads see older data.",
            [Query(_q(0.99, commit, sel), "p99 {{instance}}")],
            "s",
            [Limit(t.BACKEND_COMMIT_P99_WARNING_S, "orange")],
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "WAL fsyncs per second",
            "fsync calls per second; with group commit one fsync covers a batch, so this stays "
            "well below the write rate under load.",
            [
                Query(
                    f"rate({count(fsync, sel)}[{RATE}])",
                    "{{instance}}",
                )
            ],
            "ops",
        ),
        PANEL,
        8,
    )


def _database(board: Board, sel: str) -> None:
    board.row("Database size")
    size = series("etcd_mvcc_db_total_size_in_bytes", sel)
    in_use = series("etcd_mvcc_db_total_size_in_use_in_bytes", sel)
    quota = series("etcd_server_quota_backend_bytes", sel)
    board.add(
        graph(
            "DB size, in use and quota",
            "Bytes on disk, bytes holding live data, and --quota-backend-bytes. When size "
            "reaches the quota the NOSPACE alarm stops writes. In use far below size means "
            "a defragmentation would give space back (etcdDatabaseHighFragmentationRatio).",
            [
                Query(size, "size {{instance}}"),
                Query(in_use, "in use {{instance}}"),
                Query(f"max({quota})", "quota"),
            ],
            "bytes",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Quota used",
            f"Database size as a share of the quota. Above {t.QUOTA_USED_CRITICAL_PERCENT:g}% "
            "pages (etcdDatabaseQuotaLowSpace): compact, defragment or raise the quota before "
            "writes stop.",
            [Query(f"100 * {size} / ({quota} > 0)", "{{instance}}")],
            "percent",
            [Limit(t.QUOTA_USED_CRITICAL_PERCENT)],
        ),
        PANEL,
        8,
    )
    horizon_s = PRODUCTION.seconds(t.DB_GROWTH_HORIZON)
    board.add(
        graph(
            "Time to full",
            "At the growth rate of the last hour, how long until the database reaches its "
            f"quota. Below {t.DB_GROWTH_HORIZON} warns (etcdExcessiveDatabaseGrowth). No line "
            "means the database is not growing.",
            [
                Query(
                    f"({quota} - {size}) / (deriv({size}[1h]) > 0)",
                    "{{instance}}",
                )
            ],
            "s",
            [Limit(horizon_s, "green")],
        ),
        PANEL,
        8,
    )


def _grpc(board: Board, sel: str) -> None:
    board.row("Client requests (gRPC)")
    started = series("grpc_server_started_total", sel)
    handled = series("grpc_server_handled_total", sel)
    codes = "|".join(t.FAILED_GRPC_CODES)
    failed = series("grpc_server_handled_total", f'{sel}, grpc_code=~"{codes}"')
    board.add(
        graph(
            "Request rate by method",
            "RPCs started per second, per method. A sudden drop with clients still running "
            "means they cannot reach the members; a spike can explain slow disks.",
            [Query(f"sum by (grpc_method) (rate({started}[{RATE}]))", "{{grpc_method}}")],
            "reqps",
            stacked=True,
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Error ratio by method",
            "Share of RPCs that failed on the server's side (Unavailable, DeadlineExceeded, "
            f"ResourceExhausted, ...). Above {t.FAILED_GRPC_WARNING_PERCENT:g}% warns, above "
            f"{t.FAILED_GRPC_CRITICAL_PERCENT:g}% pages (etcdHighNumberOfFailedGRPCRequests). "
            "Client mistakes (InvalidArgument, NotFound) are not counted.",
            [
                Query(
                    # A method with no failure yet has no failed series: show it at 0%.
                    f"100 * (sum by (grpc_method) (rate({failed}[{RATE}]))"
                    f" or 0 * sum by (grpc_method) (rate({handled}[{RATE}])))"
                    f" / sum by (grpc_method) (rate({handled}[{RATE}]))",
                    "{{grpc_method}}",
                )
            ],
            "percent",
            [
                Limit(t.FAILED_GRPC_WARNING_PERCENT, "orange"),
                Limit(t.FAILED_GRPC_CRITICAL_PERCENT),
            ],
        ),
        PANEL,
        8,
    )
    unary = f'{sel}, grpc_type="unary"'
    board.add(
        graph(
            "Latency p99 by method",
            "p99 handling time of unary RPCs (needs --metrics=extensive, as etcd). Above "
            f"{t.GRPC_P99_CRITICAL_S:g}s pages (etcdGRPCRequestsSlow; Defragment excepted).",
            [
                Query(
                    _q(0.99, "grpc_server_handling_seconds", unary, by="grpc_method"),
                    "{{grpc_method}}",
                )
            ],
            "s",
            [Limit(t.GRPC_P99_CRITICAL_S)],
        ),
        PANEL,
        8,
    )


def _streams(board: Board, sel: str) -> None:
    board.row("Streams")

    def open_streams(method: str) -> str:
        match = f'{sel}, grpc_type="bidi_stream", grpc_method="{method}"'
        started = f"sum by (instance) ({series('grpc_server_started_total', match)})"
        ended = f"sum by (instance) ({series('grpc_server_handled_total', match)})"
        # Until a member's first stream ends it has no handled series: count that as 0 ended.
        return f"{started} - ({ended} or 0 * {started})"

    board.add(
        graph(
            "Active watch streams",
            "Open Watch streams per member. A member losing all its streams while the others "
            "gain them is a restart or a client failover; a steady climb can be a client that "
            "leaks streams.",
            [Query(open_streams("Watch"), "{{instance}}")],
            "none",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Active lease keep-alive streams",
            "Open LeaseKeepAlive streams per member. Lost streams mean clients stop renewing "
            "and their leases (and locks, elections) expire.",
            [Query(open_streams("LeaseKeepAlive"), "{{instance}}")],
            "none",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Leases and watchers",
            "Leases granted and not expired, and registered watchers. Runaway growth costs "
            "memory on every member.",
            [
                Query(f"max({series('cairn_lease_active', sel)})", "leases"),
                Query(
                    f"sum by (instance) ({series('etcd_debugging_mvcc_watcher_total', sel)})",
                    "watchers {{instance}}",
                ),
            ],
            "none",
        ),
        PANEL,
        8,
    )


def _peers(board: Board, sel: str) -> None:
    board.row("Peers")
    board.add(
        graph(
            "Peer round trip p99",
            f"p99 round trip to each peer. Above {t.PEER_RTT_P99_WARNING_S:g}s warns "
            "(etcdMemberCommunicationSlow): heartbeats arrive late and elections follow.",
            [
                Query(
                    _q(0.99, "etcd_network_peer_round_trip_time_seconds", sel, "instance, To"),
                    "{{instance}} -> {{To}}",
                )
            ],
            "s",
            [Limit(t.PEER_RTT_P99_WARNING_S, "orange")],
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Peer traffic",
            "Bytes per second sent to and received from peers. The leader sends the most; a "
            "peer getting nothing is cut off.",
            [
                Query(
                    f"sum by (instance) (rate({series('etcd_network_peer_sent_bytes_total', sel)}"
                    f"[{RATE}]))",
                    "sent {{instance}}",
                ),
                Query(
                    f"sum by (instance) (rate("
                    f"{series('etcd_network_peer_received_bytes_total', sel)}[{RATE}]))",
                    "received {{instance}}",
                ),
            ],
            "Bps",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Peer send failures",
            "Messages that could not be sent to a peer, per second. Sustained failures to one "
            "peer count it as down (etcdMembersDown).",
            [
                Query(
                    # A link that never failed has no series yet: draw it at 0 from its traffic.
                    "sum by (instance, To) (rate("
                    f"{series('etcd_network_peer_sent_failures_total', sel)}[{RATE}]))"
                    " or 0 * sum by (instance, To) (rate("
                    f"{series('etcd_network_peer_sent_bytes_total', sel)}[{RATE}]))",
                    "{{instance}} -> {{To}}",
                )
            ],
            "ops",
            [Limit(t.PEER_SEND_FAILURES_PER_S, "orange")],
        ),
        PANEL,
        8,
    )


def _resources(board: Board, sel: str) -> None:
    board.row("Resources")
    board.add(
        graph(
            "Memory (resident)",
            "Resident memory per member. Steady growth without more keys, watchers or leases "
            "is a leak; close to the host's memory the member will be killed.",
            [Query(series("process_resident_memory_bytes", sel), "{{instance}}")],
            "bytes",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "CPU",
            "CPU seconds per second per member. A member pinned at 1 (one core: Python's GIL) "
            "cannot go faster; requests queue and heartbeats may be late.",
            [
                Query(
                    f"rate({series('process_cpu_seconds_total', sel)}[{RATE}])",
                    "{{instance}}",
                )
            ],
            "percentunit",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Backup age",
            f"Hours since the last good backup. Above {t.BACKUP_MAX_AGE_HOURS} h warns "
            "(cairnBackupTooOld). 'No data' means no backup ever reported (node_exporter "
            "textfile collector).",
            [
                Query(
                    f"(time() - max({series('cairn_backup_last_success_timestamp_seconds')})) "
                    "/ 3600",
                    "hours",
                )
            ],
            "h",
            [Limit(t.BACKUP_MAX_AGE_HOURS, "orange")],
        ),
        PANEL,
        8,
    )


def _member_only(board: Board) -> None:
    board.row("This member")
    applied = series("cairn_server_applied_index", MEMBER)
    committed = series("cairn_server_committed_index", MEMBER)
    board.add(
        graph(
            "Committed - applied",
            "Entries this member knows are committed but has not applied. It should stay near "
            "0; growing while the applied index stands still is cairnMemberNotApplying.",
            [Query(f"{committed} - {applied}", "backlog")],
            "none",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Apply duration p99",
            "Time to apply one committed entry to LevelDB. Slow applies delay every response "
            "and every linearizable read.",
            [Query(_q(0.99, "cairn_server_apply_duration_seconds", MEMBER, by=""), "p99")],
            "s",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Raft snapshot save p99",
            "Time to take a Raft snapshot; long saves block the member's apply loop.",
            [Query(_q(0.99, "cairn_snapshot_save_duration_seconds", MEMBER, by=""), "p99")],
            "s",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "LevelDB size per level",
            "Bytes of table files per LevelDB level. Level 0 piling up means compaction cannot "
            "keep up with writes.",
            [Query(series("cairn_leveldb_level_size_bytes", MEMBER), "level {{level}}")],
            "bytes",
            stacked=True,
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Open file descriptors",
            "Open descriptors against the limit. At the limit, new client connections and "
            "LevelDB table files fail.",
            [
                Query(series("process_open_fds", MEMBER), "open"),
                Query(series("process_max_fds", MEMBER), "limit"),
            ],
            "none",
        ),
        PANEL,
        8,
    )
    board.add(
        graph(
            "Raft term",
            "The member's Raft term. Every increase is an election; many without a leader "
            "change point at this member being cut off and campaigning.",
            [Query(series("cairn_server_term", MEMBER), "term")],
            "none",
        ),
        PANEL,
        8,
    )


def cluster_overview() -> dict:
    board = Board()
    _health(board)
    _proposals(board, MEMBERS)
    _disk(board, MEMBERS)
    _database(board, MEMBERS)
    _grpc(board, MEMBERS)
    _streams(board, MEMBERS)
    _peers(board, MEMBERS)
    _resources(board, MEMBERS)
    return dashboard(
        "cairn / Cluster overview",
        "cairn-cluster-overview",
        "Is the cluster healthy, and if not, which layer is hurting. Red lines are where the "
        "alerts fire.",
        board,
        instance_multi=True,
    )


def member_detail() -> dict:
    board = Board()
    _member_only(board)
    _proposals(board, MEMBER)
    _disk(board, MEMBER)
    _database(board, MEMBER)
    _grpc(board, MEMBER)
    _streams(board, MEMBER)
    _peers(board, MEMBER)
    _resources(board, MEMBER)
    return dashboard(
        "cairn / Member detail",
        "cairn-member-detail",
        "One member picked from the Member drop-down: the overview's panels plus its apply "
        "path, LevelDB, snapshots and file descriptors.",
        board,
        instance_multi=False,
    )


DASHBOARDS = {
    "cairn-cluster-overview.json": cluster_overview,
    "cairn-member-detail.json": member_detail,
}
