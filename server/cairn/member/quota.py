"""--quota-backend-bytes: refuse what would grow the database past the quota.

As in etcd: 0 means the default (2 GiB), a negative quota disables the check. A request that
costs space (a put, a txn with a put in any branch, a lease grant) is checked before it is
proposed; when the database plus the request would exceed the quota, the member raises the
NOSPACE alarm through Raft and the request fails with `etcdserver: mvcc: database space
exceeded`. From then on every member refuses such writes at apply time until the alarm is
disarmed (cairn.member.applier).

The database size is the LevelDB directory on disk, re-read at most every SIZE_TTL_S: listing
the directory on every put would cost more than the put, and the quota is a coarse guard
(etcd's is too: it compares the bolt file size, which grows in pages).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cairn.member.applier import txn_has_puts
from cairn.mvcc.backend import Backend
from cairn.proto.internal_pb2 import InternalRequest

DEFAULT_QUOTA_BYTES = 2 * 1024 * 1024 * 1024
SIZE_TTL_S = 0.1


def effective_quota(configured: int) -> int | None:
    """The quota in bytes for the configured value; None when the check is disabled."""
    if configured < 0:
        return None
    return configured or DEFAULT_QUOTA_BYTES


def costs_space(request: InternalRequest) -> bool:
    """Whether the request can grow the database (what etcd's quota charges for)."""
    kind = request.WhichOneof("request")
    if kind in ("put", "lease_grant"):
        return True
    return kind == "txn" and txn_has_puts(request.txn)


class BackendQuota:
    """Answers whether a request of some encoded size still fits under the quota."""

    def __init__(
        self,
        backend: Callable[[], Backend],
        configured: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend  # the member swaps its backend when it installs an image
        self.quota = effective_quota(configured)
        self._clock = clock
        self._size = 0
        self._measured_at = float("-inf")

    def db_size(self) -> int:
        now = self._clock()
        if now - self._measured_at >= SIZE_TTL_S:
            self._size = self._backend().size_on_disk()
            self._measured_at = now
        return self._size

    def fits(self, request: InternalRequest, encoded_size: int) -> bool:
        if self.quota is None or not costs_space(request):
            return True
        return self.db_size() + encoded_size <= self.quota
