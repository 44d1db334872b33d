"""TEST-ONLY: drive a member's injected faults from a file (`--experimental-test-faults-file`).

Process-level tests partition real `cairn serve` processes and slow their disks by writing,
for each member, one fault per line:

- a peer member ID (hex): traffic to and from that peer is dropped, as in a partition;
- ``wal-fsync-delay <duration>`` (a Go duration such as ``200ms``): every WAL fsync takes
  that much longer, as on a slow disk, so disk-latency alerts can be proven live.

The file is polled, so a live test injects a fault and later removes it; a missing or empty
file heals every link and removes the delay. Without the flag none of this runs.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cairn.cli.config import ConfigError, parse_duration
from cairn.peer import PeerFaults
from cairn.wal import WAL

log = logging.getLogger("cairn.test_faults")

POLL_INTERVAL_S = 0.05
FSYNC_DELAY = "wal-fsync-delay"


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_blocked(path: Path) -> frozenset[int]:
    """The member IDs listed in ``path``; empty when it is missing or unreadable."""
    blocked: set[int] = set()
    for line in _lines(path):
        if line.startswith(FSYNC_DELAY):
            continue
        try:
            blocked.add(int(line, 16))
        except ValueError:
            log.warning("test faults file %s: ignoring %r (not a hex member ID)", path, line)
    return frozenset(blocked)


def read_fsync_delay(path: Path) -> float:
    """Seconds of the ``wal-fsync-delay`` line in ``path`` (the last one wins); 0 without."""
    delay = 0.0
    for line in _lines(path):
        if not line.startswith(FSYNC_DELAY):
            continue
        raw = line[len(FSYNC_DELAY) :].strip()
        try:
            delay = parse_duration(raw, FSYNC_DELAY)
        except ConfigError as error:
            log.warning("test faults file %s: ignoring %r (%s)", path, line, error)
    return delay


def apply(faults: PeerFaults, blocked: frozenset[int]) -> bool:
    """Make ``faults`` block exactly ``blocked``; whether anything changed."""
    if faults.blocked == blocked:
        return False
    faults.heal()
    faults.partition(blocked)
    return True


def apply_fsync_delay(wal: WAL, delay_s: float) -> bool:
    """Make every WAL fsync wait ``delay_s`` longer; whether anything changed."""
    if wal.fsync_delay_s == delay_s:
        return False
    wal.fsync_delay_s = delay_s
    return True


async def watch(path: Path, faults: PeerFaults, wal: WAL | None = None) -> None:
    """Poll ``path`` forever, applying its blocked peers to ``faults`` and its fsync delay
    to ``wal``."""
    log.warning("TEST-ONLY fault injection enabled: faults follow %s", path)
    while True:
        blocked = read_blocked(path)
        if apply(faults, blocked):
            shown = ", ".join(f"{peer:x}" for peer in sorted(blocked)) or "none"
            log.warning("test faults: blocked peers now %s", shown)
        if wal is not None:
            delay = read_fsync_delay(path)
            if apply_fsync_delay(wal, delay):
                log.warning("test faults: WAL fsync delay now %.3f s", delay)
        await asyncio.sleep(POLL_INTERVAL_S)
