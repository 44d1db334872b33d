"""TEST-ONLY: drive a member's PeerFaults from a file (`--experimental-test-faults-file`).

Process-level tests partition real `cairn serve` processes by writing, for each member, the
peer member IDs it must not talk to (hex, one per line). A missing or empty file heals every
link. Without the flag none of this runs.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from cairn.peer import PeerFaults

log = logging.getLogger("cairn.test_faults")

POLL_INTERVAL_S = 0.05


def read_blocked(path: Path) -> frozenset[int]:
    """The member IDs listed in ``path``; empty when it is missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    blocked: set[int] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            blocked.add(int(line, 16))
        except ValueError:
            log.warning("test faults file %s: ignoring %r (not a hex member ID)", path, line)
    return frozenset(blocked)


def apply(faults: PeerFaults, blocked: frozenset[int]) -> bool:
    """Make ``faults`` block exactly ``blocked``; whether anything changed."""
    if faults.blocked == blocked:
        return False
    faults.heal()
    faults.partition(blocked)
    return True


async def watch(path: Path, faults: PeerFaults) -> None:
    """Poll ``path`` forever, applying its list of blocked peers to ``faults``."""
    log.warning("TEST-ONLY fault injection enabled: peer links follow %s", path)
    while True:
        blocked = read_blocked(path)
        if apply(faults, blocked):
            shown = ", ".join(f"{peer:x}" for peer in sorted(blocked)) or "none"
            log.warning("test faults: blocked peers now %s", shown)
        await asyncio.sleep(POLL_INTERVAL_S)
