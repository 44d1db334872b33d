"""What the leader knows about each follower, and the vote/commit arithmetic over them.

A follower's progress is in one of three states:

* PROBE: we do not know where its log matches ours. Send one append at a time and wait for the
  answer (or the next heartbeat response) before sending another, so a lagging or unreachable
  follower does not get flooded.
* REPLICATE: its log matches up to `match`; stream appends optimistically, bounded by an
  inflight window of `max_inflight` unacknowledged messages (flow control).
* SNAPSHOT: the entries it needs are compacted; a snapshot is on its way, send nothing else
  until it reports back.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from cairn.raft.types import ConfState


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class Inflights:
    """The last index of each append message sent but not yet acknowledged, oldest first."""

    __slots__ = ("_queue", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._queue: deque[int] = deque()

    def add(self, last_index: int) -> None:
        self._queue.append(last_index)

    def free_le(self, index: int) -> None:
        """An ack up to `index` frees every message that ended at or before it."""
        q = self._queue
        while q and q[0] <= index:
            q.popleft()

    def free_first(self) -> None:
        if self._queue:
            self._queue.popleft()

    def full(self) -> bool:
        return len(self._queue) >= self.capacity

    def count(self) -> int:
        return len(self._queue)

    def reset(self) -> None:
        self._queue.clear()


@dataclass(slots=True)
class Progress:
    match: int = 0
    next: int = 1
    state: ProgressState = ProgressState.PROBE
    #: In PROBE: an append was sent and we wait for its answer before sending another.
    probe_sent: bool = False
    #: In SNAPSHOT: the index of the snapshot being sent.
    pending_snapshot: int = 0
    #: Heard from since the last check-quorum round (leader only).
    recent_active: bool = False
    is_learner: bool = False
    inflights: Inflights = field(default_factory=lambda: Inflights(256))

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An acknowledgement that the follower holds our log up to `index`. Returns whether
        that was news (an old, reordered ack changes nothing)."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def sent_entries(self, count: int, last_index: int) -> None:
        """Record an append just sent."""
        if self.state is ProgressState.REPLICATE:
            if count:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append whose preceding entry was at `rejected`; move `next`
        back (to just after `match_hint`, the follower's hint). Returns False for a stale
        rejection that says nothing new."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


class ProgressTracker:
    """The configuration (voters, learners), each member's progress, and votes received."""

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.voters: set[int] = set()
        self.learners: set[int] = set()
        self.progress: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}

    def new_progress(self, next_index: int, is_learner: bool) -> Progress:
        # A new member counts as active so the leader does not step down or refuse it a
        # snapshot before it had a chance to answer.
        return Progress(
            next=next_index,
            is_learner=is_learner,
            recent_active=True,
            inflights=Inflights(self.max_inflight),
        )

    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def quorum(self) -> int:
        return len(self.voters) // 2 + 1

    def is_singleton(self) -> bool:
        return len(self.voters) == 1

    def committed(self) -> int:
        """The largest index held by a quorum of voters."""
        if not self.voters:
            return 0
        matches = sorted((self.progress[v].match for v in self.voters), reverse=True)
        return matches[self.quorum() - 1]

    def reset_votes(self) -> None:
        self.votes = {}

    def record_vote(self, node_id: int, granted: bool) -> None:
        self.votes.setdefault(node_id, granted)

    def tally(self) -> tuple[int, int, VoteResult]:
        granted = sum(1 for v in self.voters if self.votes.get(v) is True)
        rejected = sum(1 for v in self.voters if self.votes.get(v) is False)
        q = self.quorum()
        if granted >= q:
            return granted, rejected, VoteResult.WON
        if len(self.voters) - rejected < q:
            return granted, rejected, VoteResult.LOST
        return granted, rejected, VoteResult.PENDING

    def quorum_active(self, self_id: int) -> bool:
        active = sum(1 for v in self.voters if v == self_id or self.progress[v].recent_active)
        return active >= self.quorum()

    def has_quorum(self, ids: set[int]) -> bool:
        return len(ids & self.voters) >= self.quorum()
