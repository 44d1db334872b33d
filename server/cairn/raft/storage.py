"""In-memory stable storage that the member fills from its WAL and keeps in step with it.

Raft reads its persisted log through this object; it never writes to it. The driver appends
`Ready.entries`, records `Ready.hard_state` and installs `Ready.snapshot` here after making them
durable, then calls `advance`. After a restart the member replays its WAL into a fresh instance.
"""

from __future__ import annotations

from collections.abc import Iterable

from cairn.raft.errors import CompactedError, SnapshotOutOfDateError, UnavailableError
from cairn.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


def limit_size(entries: list[Entry], max_size: int | None) -> list[Entry]:
    """The longest prefix of `entries` within `max_size` bytes, but always at least one entry
    (so progress is possible even if one entry is larger than the limit)."""
    if max_size is None or not entries:
        return entries
    total = entries[0].size()
    for n in range(1, len(entries)):
        total += entries[n].size()
        if total > max_size:
            return entries[:n]
    return entries


class MemoryStorage:
    """Entries after a compaction point, plus the latest snapshot and hard state.

    `_base_index`/`_base_term` describe the last compacted entry (index 0/term 0 when nothing
    was compacted); the term of that entry stays known, which is what the log matching check
    for the first retained entry needs.
    """

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._conf_state: ConfState | None = None
        self._base_index = 0
        self._base_term = 0
        self._entries: list[Entry] = []

    # --- read side (used by Raft) ---

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the configuration to start from after a restart."""
        conf = (
            self._conf_state if self._conf_state is not None else self._snapshot.metadata.conf_state
        )
        return self._hard_state, conf

    def first_index(self) -> int:
        return self._base_index + 1

    def last_index(self) -> int:
        return self._base_index + len(self._entries)

    def term(self, index: int) -> int:
        if index < self._base_index:
            raise CompactedError(index)
        if index == self._base_index:
            return self._base_term
        if index > self.last_index():
            raise UnavailableError(index)
        return self._entries[index - self._base_index - 1].term

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries with lo <= index < hi."""
        if lo <= self._base_index:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        start = lo - self._base_index - 1
        return limit_size(self._entries[start : hi - self._base_index - 1], max_size)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- write side (used by the driver) ---

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def set_conf_state(self, conf_state: ConfState) -> None:
        """Record the configuration in effect at the start of the retained log (normally the
        snapshot's configuration, which is the default). Raft replays the conf-change entries
        after it up to the restart's applied index on top of it."""
        self._conf_state = conf_state

    def append(self, entries: Iterable[Entry]) -> None:
        """Append, replacing any existing entries from the first new index onwards."""
        new = [e for e in entries if e.index > self._base_index]
        if not new:
            return
        first = new[0].index
        if first > self.last_index() + 1:
            raise UnavailableError(f"gap in log: last {self.last_index()}, appending {first}")
        del self._entries[first - self._base_index - 1 :]
        self._entries.extend(new)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the whole log with a snapshot received from the leader."""
        if snapshot.index < self._snapshot.index:
            raise SnapshotOutOfDateError(snapshot.index)
        self._snapshot = snapshot
        self._conf_state = None
        self._base_index = snapshot.index
        self._base_term = snapshot.term
        self._entries = []
        if self._hard_state.commit < snapshot.index:
            self._hard_state = HardState(
                max(self._hard_state.term, snapshot.term), self._hard_state.vote, snapshot.index
            )

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine as of applied `index` (the member calls this
        every --snapshot-count entries). Entries are kept until `compact` is called."""
        if index <= self._snapshot.index:
            raise SnapshotOutOfDateError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        meta = SnapshotMetadata(index, self.term(index), conf_state)
        self._snapshot = Snapshot(meta, data)
        self._conf_state = None
        return self._snapshot

    def compact(self, index: int) -> None:
        """Discard entries up to and including `index`; their term is remembered.

        `index` must not pass the latest snapshot: a follower that needs a discarded entry is
        sent that snapshot, which has to cover it."""
        if index <= self._base_index:
            raise CompactedError(index)
        if index > self.last_index():
            raise UnavailableError(index)
        if index > self._snapshot.index:
            raise UnavailableError(f"compacting to {index} past snapshot {self._snapshot.index}")
        term = self.term(index)
        del self._entries[: index - self._base_index]
        self._base_index = index
        self._base_term = term
