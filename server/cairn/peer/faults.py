"""Network fault injection for cluster tests: partition a member from chosen peers.

Only a transport built with a ``PeerFaults`` object honours it, and the member creates one only
under an explicit test flag, so production traffic never passes through this code. A blocked
link behaves like a partition for Raft: messages in both directions vanish silently (no
``on_unreachable``, not in the production counters, which must keep describing the real
network), and probes fail.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


class PeerFaults:
    """Which peers this member cannot currently talk to, and what was lost because of it."""

    def __init__(self) -> None:
        self._blocked: set[int] = set()
        self.dropped_outbound: defaultdict[int, int] = defaultdict(int)
        """Messages to each blocked peer that ``send`` discarded."""
        self.dropped_inbound: defaultdict[int, int] = defaultdict(int)
        """Messages from each blocked peer that arrived and were discarded."""

    def partition(self, peer_ids: Iterable[int]) -> None:
        """Cut the links to ``peer_ids`` (in addition to any already cut)."""
        self._blocked.update(peer_ids)

    def heal(self, peer_ids: Iterable[int] | None = None) -> None:
        """Restore the links to ``peer_ids``, or to every peer when None."""
        if peer_ids is None:
            self._blocked.clear()
        else:
            self._blocked.difference_update(peer_ids)

    @property
    def blocked(self) -> frozenset[int]:
        """The peers currently cut off."""
        return frozenset(self._blocked)

    def drops_outbound(self, peer_id: int) -> bool:
        """Whether a message to ``peer_id`` must vanish; counts it if so."""
        if peer_id not in self._blocked:
            return False
        self.dropped_outbound[peer_id] += 1
        return True

    def drops_inbound(self, peer_id: int, count: int = 1) -> bool:
        """Whether ``count`` messages from ``peer_id`` must vanish; counts them if so."""
        if peer_id not in self._blocked:
            return False
        self.dropped_inbound[peer_id] += count
        return True
