"""What a member counts about itself, as plain numbers and hooks, for the exporter above it.

The member layer must not depend on the metrics library, so it keeps etcd's server counters
here and calls the duration hooks (no-ops until ``cairn.observe`` connects histograms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Observe = Callable[[float], None]

SLOW_APPLY_S = 0.1
"""etcd warns about (and counts) an apply slower than 100 ms."""


def _ignore(_seconds: float) -> None:
    return None


@dataclass
class MemberStats:
    """Event counts named after etcd's metrics, and the places durations are reported."""

    leader_changes_seen_total: int = 0
    proposals_failed_total: int = 0
    slow_apply_total: int = 0
    heartbeat_send_failures_total: int = 0
    read_indexes_failed_total: int = 0
    slow_read_indexes_total: int = 0
    lease_granted_total: int = 0
    lease_revoked_total: int = 0
    lease_renewed_total: int = 0
    lease_expired_total: int = 0
    snapshot_apply_in_progress: int = 0
    defrag_inflight: int = 0

    observe_wal_fsync: Observe = _ignore
    """Seconds of one WAL fdatasync (called on the WAL thread)."""
    observe_backend_commit: Observe = _ignore
    """Seconds of one state-machine batch write (the LevelDB commit of an apply group)."""
    observe_apply: Observe = _ignore
    """Seconds to apply one committed entry."""
    observe_snapshot_save: Observe = _ignore
    """Seconds to take and persist one Raft snapshot."""
    observe_defrag: Observe = _ignore
    """Seconds of one defragmentation."""

    def applied_in(self, seconds: float) -> None:
        """One entry applied in ``seconds``: observed, and counted if etcd would call it slow."""
        self.observe_apply(seconds)
        if seconds > SLOW_APPLY_S:
            self.slow_apply_total += 1

    def read_served_in(self, seconds: float) -> None:
        """One read-only Range or Txn answered (or failed) ``seconds`` after it arrived.

        etcd counts a slow one in etcd_server_slow_apply_total too ("read-only range" in its
        "apply request took too long" warning), timed from its arrival, so a linearizable
        read's wait for ReadIndex counts. It is not an apply, so it is not observed.
        """
        if seconds > SLOW_APPLY_S:
            self.slow_apply_total += 1
