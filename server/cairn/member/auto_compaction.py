"""--auto-compaction-mode and --auto-compaction-retention, with etcd 3.4's semantics.

Every member runs the compactor; only the leader acts on it (etcd pauses the compactor on
followers and resumes it on the leader), so a new leader carries on with the revisions it
sampled all along. A compaction is proposed like a client's `Compact`, through Raft, and
applied by every member.

- periodic: the retention is a duration ("1h", "30m"; a bare integer means hours). The
  current revision is sampled every min(retention, 1h) / 10; once `retention` has passed
  since the start (or the last compaction), the member compacts to the oldest sample kept,
  the revision seen `retention` ago, and then again every min(retention, 1h).
- revision: the retention is a number of revisions N. Every 5 minutes (etcd's fixed
  interval; configurable here so tests need not wait) the member compacts to
  current revision - N, unless that is not positive or was already compacted to.

A retention of 0 (the default) turns auto-compaction off.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cairn.errors import ErrCompacted, EtcdError
from cairn.go_duration import GoDurationError, format_go_duration, parse_go_duration
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest

if TYPE_CHECKING:
    from cairn.member.raft_member import RaftMember

log = logging.getLogger("cairn.compactor")

PERIODIC = "periodic"
REVISION = "revision"
MODES = (PERIODIC, REVISION)
# etcd's revision compactor checks every 5 minutes.
REVISION_CHECK_INTERVAL_S = 300.0
# Periodic mode samples the revision this many times per retention (at most one hour).
SAMPLES_PER_PERIOD = 10
HOUR_S = 3600.0


class AutoCompactionError(ValueError):
    """A bad --auto-compaction-mode or --auto-compaction-retention (etcd's messages)."""


@dataclass(frozen=True)
class AutoCompaction:
    """What --auto-compaction-mode/-retention ask for; `enabled` is false for retention 0."""

    mode: str = PERIODIC
    period_s: float = 0.0  # periodic mode
    revisions: int = 0  # revision mode
    revision_check_interval_s: float = REVISION_CHECK_INTERVAL_S

    @property
    def enabled(self) -> bool:
        return self.period_s > 0 if self.mode == PERIODIC else self.revisions > 0


def parse(
    mode: str, retention: str, revision_check_interval_s: float = REVISION_CHECK_INTERVAL_S
) -> AutoCompaction:
    """etcd's reading of the two flags.

    A non-negative integer is hours (periodic) or revisions (revision); anything else must
    be a Go duration, in either mode: in revision mode etcd then keeps the duration's
    nanoseconds as the revision count ("1h" keeps 3.6e12 revisions), and so does cairn.
    A negative duration is refused (etcd would compact in a tight loop).
    """
    mode = mode or PERIODIC
    if mode not in MODES:
        raise AutoCompactionError(
            f"error verifying flags, unknown auto-compaction-mode {_go_quote(mode)}. "
            "See 'etcd --help'."
        )
    text = retention.strip() or "0"
    if re.fullmatch(r"\+?\d+", text):
        count = int(text)
        if mode == REVISION:
            return AutoCompaction(
                REVISION, revisions=count, revision_check_interval_s=revision_check_interval_s
            )
        return AutoCompaction(PERIODIC, period_s=count * HOUR_S)
    try:
        nanos = parse_go_duration(text)
    except GoDurationError as error:
        raise AutoCompactionError(f"error parsing CompactionRetention: {error}") from None
    if nanos < 0:
        raise AutoCompactionError(
            f"error parsing CompactionRetention: negative retention {_go_quote(text)}"
        )
    if mode == REVISION:
        return AutoCompaction(
            REVISION, revisions=nanos, revision_check_interval_s=revision_check_interval_s
        )
    return AutoCompaction(PERIODIC, period_s=nanos / 1e9)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Host:
    """What a compactor needs of its member: the current revision, whether it leads, and a
    way to compact (through Raft, like a client's Compact)."""

    revision: Callable[[], int]
    leads: Callable[[], bool]
    compact: Callable[[int], Awaitable[object]]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] | None = None

    def now(self) -> float:
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()


def member_host(member: RaftMember) -> Host:
    """The compactor's view of a running member: compactions go through Raft."""

    async def compact(rev: int) -> object:
        return await member.propose(InternalRequest(compaction=pb.CompactionRequest(revision=rev)))

    return Host(
        revision=lambda: member.store.current_rev,
        leads=lambda: member.is_leader,
        compact=compact,
    )


async def _compact(host: Host, rev: int, retention: str, retry_s: float) -> bool:
    """Propose the compaction; True when done (or already compacted past `rev`)."""
    log.info("Starting auto-compaction at revision %d (retention: %s)", rev, retention)
    try:
        await host.compact(rev)
    except ErrCompacted:
        pass
    except EtcdError as error:
        log.warning("Failed auto-compaction at revision %d (%s)", rev, error)
        log.warning("Retry after %s", format_go_duration(retry_s))
        return False
    log.info("Finished auto-compaction at revision %d", rev)
    return True


async def run_periodic(host: Host, period_s: float) -> None:
    """Compact to the revision seen `period_s` ago, on etcd's periodic schedule."""
    window = min(period_s, HOUR_S)
    sample_every = window / SAMPLES_PER_PERIOD
    kept = max(1, round(period_s / sample_every))
    retention = format_go_duration(period_s)
    samples: list[int] = []
    last_success = host.now()
    wait_for = period_s  # the first compaction waits a whole retention, later ones `window`
    while True:
        samples.append(host.revision())
        if len(samples) > kept:
            del samples[0]  # samples[0] is now the revision seen `period_s` ago
        await host.sleep(sample_every)
        if not host.leads() or host.now() - last_success < wait_for:
            continue
        wait_for = window
        if await _compact(host, samples[0], retention, sample_every):
            last_success = host.now()


async def run_revision(host: Host, keep: int, interval_s: float) -> None:
    """Every `interval_s`, compact to the current revision minus `keep`."""
    previous = 0
    retention = f"{keep} revisions"
    while True:
        await host.sleep(interval_s)
        if not host.leads():
            continue
        rev = host.revision() - keep
        if rev <= 0 or rev == previous:
            continue
        if await _compact(host, rev, retention, interval_s):
            previous = rev


async def run(host: Host, settings: AutoCompaction) -> None:
    """The compactor the settings ask for (the caller checks `settings.enabled`)."""
    if settings.mode == PERIODIC:
        log.info("auto-compaction: periodic, retention %s", format_go_duration(settings.period_s))
        await run_periodic(host, settings.period_s)
    else:
        log.info(
            "auto-compaction: revision, keeping %d revisions, checked every %s",
            settings.revisions,
            format_go_duration(settings.revision_check_interval_s),
        )
        await run_revision(host, settings.revisions, settings.revision_check_interval_s)
