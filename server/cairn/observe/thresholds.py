"""The numbers at which cairn pages or warns, shared by the alert rules and the dashboards.

A dashboard panel draws its red line where the alert fires, so an operator looking at a graph
sees the same boundary the pager uses. The etcd values are the etcd monitoring mixin's (an
operator moving from etcd keeps the behaviour they know); cairn's own are explained where they
are defined.
"""

from __future__ import annotations

MIB = 1024 * 1024
DAY_S = 86_400

# -- cluster health ---------------------------------------------------------------------------
LEADER_CHANGES_WARNING = 4
"""Leader changes seen within LEADER_CHANGES_WINDOW that start a warning."""
LEADER_CHANGES_WINDOW = "15m"

PEER_SEND_FAILURES_PER_S = 0.01
"""A member failing to send to a peer at this rate counts as that peer being down."""

# -- requests ---------------------------------------------------------------------------------
FAILED_GRPC_WARNING_PERCENT = 1.0
FAILED_GRPC_CRITICAL_PERCENT = 5.0
FAILED_GRPC_CODES = (
    "Unknown",
    "FailedPrecondition",
    "ResourceExhausted",
    "Internal",
    "Unavailable",
    "DataLoss",
    "DeadlineExceeded",
)
"""Codes that mean the server failed; InvalidArgument, NotFound and the like are the client's."""

GRPC_P99_CRITICAL_S = 0.15
"""p99 of unary requests (Defragment excepted: it blocks the member by design)."""

FAILED_PROPOSALS_PER_S = 5.0

# -- disks ------------------------------------------------------------------------------------
WAL_FSYNC_P99_WARNING_S = 0.5
WAL_FSYNC_P99_CRITICAL_S = 1.0
BACKEND_COMMIT_P99_WARNING_S = 0.25

# -- network ----------------------------------------------------------------------------------
PEER_RTT_P99_WARNING_S = 0.15

# -- database size ----------------------------------------------------------------------------
QUOTA_USED_CRITICAL_PERCENT = 95.0
DB_GROWTH_HORIZON = "4h"
"""ExcessiveDatabaseGrowth extrapolates this far ahead from the same length of history."""
FRAGMENTATION_IN_USE_RATIO = 0.5
FRAGMENTATION_MIN_IN_USE_BYTES = 100 * MIB
"""Below this size a fragmented database is not worth a defragmentation's pause."""

# -- cairn's own ------------------------------------------------------------------------------
CERT_EXPIRY_WARNING_DAYS = 14
"""Two weeks leaves time for a planned rotation (`cairn pki issue` + replacing the files)."""
CERT_EXPIRY_CRITICAL_DAYS = 3
"""Three days: rotate now, a weekend away from an outage of every client or peer link."""

MEMBER_NOT_APPLYING_WINDOW = "5m"
"""A member whose applied index stands still this long while its commit index grows is stuck."""

BACKUP_MAX_AGE_HOURS = 26
"""The backup schedule is daily; two hours of slack cover a slow or delayed run."""
