"""Lease clocks: when each lease runs out, kept and enforced by the leader alone.

The lease table itself is replicated state (`cairn.mvcc.lease`); deadlines are not. Only the
leader keeps them ("primary", in etcd's words): it renews them on keep-alives, answers
TimeToLive from them, and when one passes it proposes a LeaseRevoke, so every member deletes
the lease's keys at the same revision. Followers keep no deadlines at all.

A new leader cannot know how much time the old one had left on each lease, and its own clock
started late, so it restarts every lease's clock from the full TTL plus one election timeout
(etcd 3.4's default, without checkpoints): a leader change or a restart of every member never
expires a lease early. It does so once it has applied its own first (empty) entry, that is
once it has applied every entry of earlier terms, as etcd's server does; until then it counts
as not primary and keep-alives wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cairn.errors import ErrLeaseNotFound, ErrNotLeader, ErrTimeout, EtcdError
from cairn.member import forwarding
from cairn.member.applier import MAX_LEASE_TTL, Applied
from cairn.member.request_ids import RequestIDs
from cairn.mvcc.lease import LeaseStore
from cairn.mvcc.store import MVCCStore
from cairn.peer import Transport
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import Forwarded, ForwardedAnswer, InternalRequest, RequestHeader

log = logging.getLogger("cairn.lessor")

# How often the leader looks for leases that ran out (etcd checks every 500 ms).
CHECK_INTERVAL_S = 0.5
# Revokes proposed per check at most, so a mass expiry does not flood the log at once
# (etcd limits itself to 1000 revokes a second).
MAX_REVOKES_PER_CHECK = 500
# With this many leases a takeover may line up more expiries than can be revoked at once;
# promote() then spreads deadlines to at most SPREAD_PER_SECOND a second (etcd: 1000 and 750).
SPREAD_FROM_LEASES = 1000
SPREAD_PER_SECOND = 750

_POSITIVE_INT64 = (1 << 63) - 1


class LeaseHost(Protocol):
    """What the lessor needs of its member (RaftMember)."""

    store: MVCCStore
    transport: Transport
    leader: int

    @property
    def is_leader(self) -> bool: ...

    async def propose(self, request: InternalRequest) -> Applied: ...

    async def linearizable_barrier(self) -> None: ...


@dataclass(frozen=True, slots=True)
class TimeToLive:
    """The leader's view of one lease."""

    remaining: int  # whole seconds left, truncated as etcd does
    granted: int
    keys: list[bytes]


def min_lease_ttl(heartbeat_ms: int, election_ms: int) -> int:
    """etcd's smallest TTL a lease gets: one and a half election timeouts, rounded up to
    whole seconds, so a lease cannot run out during the election that follows a leader's
    failure (1000 ms election timeout: 2 s)."""
    heartbeat = max(1, heartbeat_ms)
    ticks = max(2, election_ms // heartbeat)
    return math.ceil((3 * ticks // 2) * heartbeat / 1000)


class Lessor:
    """Grants, revokes, renews and expires leases on behalf of one member."""

    def __init__(
        self,
        host: LeaseHost,
        member_id: int,
        heartbeat_ms: int,
        election_ms: int,
        request_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host = host
        self._ids = RequestIDs(member_id)
        self.min_ttl = min_lease_ttl(heartbeat_ms, election_ms)
        heartbeat = max(1, heartbeat_ms)
        # etcd extends every lease by one election timeout when a leader takes over.
        self._extend = max(2, election_ms // heartbeat) * heartbeat / 1000
        self._request_timeout = request_timeout_s
        self._clock = clock
        self.primary = False
        self._deadlines: dict[int, float] = {}
        # The table (and its generation) the deadlines were last reconciled with.
        self._seen: tuple[LeaseStore | None, int] = (None, -1)
        self._revoking: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.renewed_total = 0  # keep-alives this member answered as leader
        self.expired_total = 0  # leases whose expiry this member revoked

    # ---- leadership ------------------------------------------------------------------

    def promote(self) -> None:
        """This member leads and has applied every earlier entry: start every lease's clock
        afresh, from its full TTL plus one election timeout."""
        now = self._clock()
        self.primary = True
        table = self._leases()
        self._deadlines = {lease.id: now + self._extend + lease.ttl for lease in table.unordered()}
        self._seen = (table, table.generation)
        if len(self._deadlines) >= SPREAD_FROM_LEASES:
            self._spread()
        log.info("lessor: primary, %d leases extended by %.1fs", len(self._deadlines), self._extend)

    def _spread(self) -> None:
        """Postpone deadlines (never advance one) so that no more than SPREAD_PER_SECOND
        leases fall due in any second after the first one: a mass expiry after a takeover
        is revoked at a pace the log can take."""
        ordered = sorted(self._deadlines.items(), key=lambda item: item[1])
        first = ordered[0][1]
        for position, (lease_id, deadline) in enumerate(ordered):
            self._deadlines[lease_id] = max(deadline, first + position / SPREAD_PER_SECOND)

    def demote(self) -> None:
        """Leadership lost: deadlines are the next leader's business."""
        if self.primary:
            log.info("lessor: no longer primary")
        self.primary = False
        self._deadlines.clear()
        self._seen = (None, -1)

    def _leases(self) -> LeaseStore:
        # Looked up every time: a follower installing a snapshot image replaces the store.
        return self._host.store.leases

    def _reconcile(self, now: float) -> None:
        """Start the clock of leases granted since the last look; drop revoked ones."""
        table = self._leases()
        if self._seen[0] is table and self._seen[1] == table.generation:
            return
        self._seen = (table, table.generation)
        for lease in table.unordered():
            if lease.id not in self._deadlines:
                self._deadlines[lease.id] = now + lease.ttl
        for lease_id in [i for i in self._deadlines if not table.exists(i)]:
            del self._deadlines[lease_id]

    async def _until_primary(self) -> None:
        """Wait while this member leads but has not applied its first entry yet; refuse
        (ErrNotLeader, so the caller forwards) once it does not lead."""
        deadline = self._clock() + self._request_timeout
        while True:
            if not self._host.is_leader:
                self.demote()
                raise ErrNotLeader()
            if self.primary:
                self._reconcile(self._clock())
                return
            if self._clock() > deadline:
                raise ErrTimeout()
            await asyncio.sleep(0.01)

    # ---- requests --------------------------------------------------------------------

    async def grant(self, ttl: int, lease_id: int = 0) -> pb.LeaseGrantResponse:
        """Propose a grant: an ID chosen here when the client left it 0 (a positive int64,
        from the same kind of generator as request IDs, as etcd does), and the TTL raised
        to the minimum before proposing so every member records the same TTL."""
        while lease_id == 0:
            lease_id = self._ids.next() & _POSITIVE_INT64
        if ttl <= MAX_LEASE_TTL:
            ttl = max(ttl, self.min_ttl)
        request = InternalRequest(lease_grant=pb.LeaseGrantRequest(ID=lease_id, TTL=ttl))
        applied = await self._host.propose(request)
        response: pb.LeaseGrantResponse = applied.response  # type: ignore[assignment]
        self._granted(lease_id, ttl)
        return response

    def _granted(self, lease_id: int, ttl: int) -> None:
        """Start the clock of a lease granted through this member at once (others start
        at the next reconcile, within a check interval)."""
        if self.primary and lease_id not in self._deadlines:
            self._deadlines[lease_id] = self._clock() + ttl

    async def revoke(
        self, lease_id: int, header: RequestHeader | None = None
    ) -> pb.LeaseRevokeResponse:
        """Revoke for a client (`header` names its user, checked when applied) or, with
        `header.internal`, for the leader's own expiry, which auth never stops."""
        request = InternalRequest(lease_revoke=pb.LeaseRevokeRequest(ID=lease_id))
        if header is not None:
            request.header.CopyFrom(header)
        applied = await self._host.propose(request)
        self._deadlines.pop(lease_id, None)
        response: pb.LeaseRevokeResponse = applied.response  # type: ignore[assignment]
        return response

    async def _lookup(self, lease_id: int) -> int:
        """The granted TTL of a lease this leader knows, after catching up with the log
        once if it does not (etcd's leader waits for its applied index the same way)."""
        lease = self._leases().get(lease_id)
        if lease is None:
            await self._host.linearizable_barrier()
            await self._until_primary()
            lease = self._leases().get(lease_id)
        if lease is None:
            raise ErrLeaseNotFound()
        return lease.ttl

    async def renew(self, lease_id: int) -> int:
        """A keep-alive on the leader: the lease runs its full TTL again from now. Returns the
        granted TTL. A lease whose deadline passed is gone (its revoke is on its way)."""
        await self._until_primary()
        ttl = await self._lookup(lease_id)
        now = self._clock()
        deadline = self._deadlines.get(lease_id, now + ttl)
        if deadline <= now or lease_id in self._revoking:
            raise ErrLeaseNotFound()
        self._deadlines[lease_id] = now + ttl
        self.renewed_total += 1
        return ttl

    async def time_to_live(self, lease_id: int) -> TimeToLive:
        """The leader's remaining time of a lease, and its keys in key order."""
        await self._until_primary()
        ttl = await self._lookup(lease_id)
        now = self._clock()
        remaining = self._deadlines.get(lease_id, now + ttl) - now
        lease = self._leases().get(lease_id)
        keys = sorted(lease.keys) if lease is not None else []
        return TimeToLive(int(remaining), ttl, keys)

    def lease_ids(self) -> list[int]:
        """Every lease this member knows; the leader lists the soonest to expire first (as
        etcd does), other members in ID order."""
        ids = [lease.id for lease in self._leases().all()]
        if self.primary:
            far = math.inf
            ids.sort(key=lambda i: self._deadlines.get(i, far))
        return ids

    # ---- answers as etcd gives them, and forwarding to the leader --------------------

    async def keep_alive(self, lease_id: int) -> pb.LeaseKeepAliveResponse:
        """The leader's answer to one keep-alive: the granted TTL, or TTL 0 for a lease that
        does not exist (etcd answers so rather than failing the stream)."""
        try:
            ttl = await self.renew(lease_id)
        except ErrLeaseNotFound:
            ttl = 0
        return pb.LeaseKeepAliveResponse(ID=lease_id, TTL=ttl)

    async def time_to_live_response(
        self, request: pb.LeaseTimeToLiveRequest
    ) -> pb.LeaseTimeToLiveResponse:
        """The leader's TimeToLive answer; TTL -1 for a lease that does not exist (etcd)."""
        try:
            found = await self.time_to_live(request.ID)
        except ErrLeaseNotFound:
            return pb.LeaseTimeToLiveResponse(ID=request.ID, TTL=-1)
        response = pb.LeaseTimeToLiveResponse(
            ID=request.ID, TTL=found.remaining, grantedTTL=found.granted
        )
        if request.keys:
            response.keys.extend(found.keys)
        response.header.revision = self._host.store.current_rev
        return response

    async def answer_forwarded(self, request: Forwarded) -> ForwardedAnswer:
        """Answer a lease request a follower forwarded (see `cairn.member.forwarding`). A
        member that does not lead (any more) answers `not leader`; the follower tries again."""
        answer = ForwardedAnswer()
        kind = request.WhichOneof("request")
        if kind == "keep_alive":
            answer.keep_alive.CopyFrom(await self.keep_alive(request.keep_alive.ID))
        elif kind == "time_to_live":
            answer.time_to_live.CopyFrom(await self.time_to_live_response(request.time_to_live))
        else:
            raise ValueError(f"not a lease request: {kind!r}")
        return answer

    async def forward(self, request: Forwarded) -> ForwardedAnswer:
        """Have the leader answer a lease request (see `forwarding.to_leader`)."""
        return await forwarding.to_leader(
            self._host.transport, self._host.leader, request, self._request_timeout
        )

    # ---- expiry ----------------------------------------------------------------------

    async def run(self) -> None:
        """The expiry loop: on the leader, revoke (through Raft) every lease whose deadline
        passed. Ends when cancelled (the member stops), taking its revokes with it."""
        try:
            while True:
                await asyncio.sleep(CHECK_INTERVAL_S)
                try:
                    self.check()
                except Exception:  # a bug here must not stop expiry for good
                    log.exception("lessor: expiry check failed")
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def check(self) -> None:
        """One look for expired leases; a member that does not lead just drops its clocks."""
        if not self._host.is_leader:
            self.demote()
            return
        if not self.primary:
            return
        now = self._clock()
        self._reconcile(now)
        expired = [
            lease_id
            for lease_id, deadline in self._deadlines.items()
            if deadline <= now and lease_id not in self._revoking
        ]
        for lease_id in expired[:MAX_REVOKES_PER_CHECK]:
            self._revoking.add(lease_id)
            task = asyncio.get_running_loop().create_task(self._revoke_expired(lease_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _revoke_expired(self, lease_id: int) -> None:
        try:
            await self.revoke(lease_id, RequestHeader(internal=True))
            self.expired_total += 1
            log.debug("lessor: lease %x expired and was revoked", lease_id)
        except ErrLeaseNotFound:
            self._deadlines.pop(lease_id, None)  # revoked meanwhile by a client
        except EtcdError as error:
            # No quorum, or leadership moved: the next check (or the next leader) retries.
            log.info("lessor: revoking expired lease %x failed: %s", lease_id, error)
        finally:
            self._revoking.discard(lease_id)
