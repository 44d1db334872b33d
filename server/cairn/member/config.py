"""What a member needs to know to run; the CLI builds it from etcd's flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_SNAPSHOT_COUNT = 100_000
# etcd v3.5's --experimental-snapshot-catchup-entries default (DefaultSnapshotCatchUpEntries).
DEFAULT_SNAPSHOT_CATCH_UP_ENTRIES = 5000
DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024**3


@dataclass
class MemberConfig:
    """Settings of one member (flag names in comments are etcd's)."""

    name: str = "default"  # --name
    data_dir: str = "default.etcd"  # --data-dir
    initial_cluster: dict[str, list[str]] = field(
        default_factory=lambda: {"default": ["http://localhost:2380"]}
    )  # --initial-cluster
    initial_cluster_token: str = "etcd-cluster"  # --initial-cluster-token
    initial_cluster_state: str = "new"  # --initial-cluster-state
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES  # --max-request-bytes
    max_txn_ops: int = DEFAULT_MAX_TXN_OPS  # --max-txn-ops
    snapshot_count: int = DEFAULT_SNAPSHOT_COUNT  # --snapshot-count
    quota_backend_bytes: int = 0  # --quota-backend-bytes (0: the 2 GiB default)
    force_new_cluster: bool = False  # --force-new-cluster
    wal_segment_bytes: int = 64 * 1024 * 1024
    encryption_key_file: str = ""  # --encryption-key-file (cairn's own; "" seals nothing)
    auth_token_ttl_s: int = 300  # --auth-token-ttl (simple tokens, seconds without use)
    bcrypt_cost: int = 10  # --bcrypt-cost

    @property
    def member_dir(self) -> str:
        return os.path.join(self.data_dir, "member")

    @property
    def wal_dir(self) -> str:
        return os.path.join(self.member_dir, "wal")

    @property
    def db_dir(self) -> str:
        return os.path.join(self.member_dir, "db")
