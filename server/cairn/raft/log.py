"""The Raft log: the persisted part (in storage) followed by the not-yet-persisted part.

New entries, and a snapshot received from the leader, first live in `Unstable`; they move to
storage when the driver has persisted a Ready and calls `advance`. `RaftLog` presents both as one
log and tracks the commit and applied indexes.
"""

from __future__ import annotations

from cairn.raft.errors import CompactedError, UnavailableError
from cairn.raft.storage import MemoryStorage, limit_size
from cairn.raft.types import Entry, Snapshot


class Unstable:
    """Entries (from `offset` on) and possibly a snapshot, not yet written to stable storage."""

    __slots__ = ("entries", "offset", "snapshot")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        return self.snapshot.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self.offset:
            if self.snapshot is not None and self.snapshot.index == index:
                return self.snapshot.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self.entries[index - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to `index` were persisted, unless they were replaced meanwhile (the
        term no longer matches), in which case nothing is dropped."""
        if self.maybe_term(index) != term or index < self.offset:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.index == index:
            self.snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        self.offset = snapshot.index + 1
        self.entries = []
        self.snapshot = snapshot

    def truncate_and_append(self, entries: list[Entry]) -> None:
        first = entries[0].index
        if first == self.offset + len(self.entries):
            self.entries.extend(entries)
        elif first <= self.offset:
            # Replaces everything unstable; storage's conflicting tail is overwritten on persist.
            self.offset = first
            self.entries = list(entries)
        else:
            del self.entries[first - self.offset :]
            self.entries.extend(entries)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    """Storage + unstable, with `committed` (known replicated on a quorum) and `applied`
    (handed to the state machine) indexes. Invariant: applied <= committed <= last_index."""

    def __init__(self, storage: MemoryStorage, max_size_per_msg: int | None = None) -> None:
        self.storage = storage
        self.max_size_per_msg = max_size_per_msg
        self.max_committed_size: int | None = None
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        # Everything up to the compaction point was committed and applied before.
        self.committed = first - 1
        self.applied = first - 1

    def first_index(self) -> int:
        first = self.unstable.maybe_first_index()
        return first if first is not None else self.storage.first_index()

    def last_index(self) -> int:
        last = self.unstable.maybe_last_index()
        return last if last is not None else self.storage.last_index()

    def term(self, index: int) -> int | None:
        """The term of the entry at `index`, or None if it was compacted or does not exist.
        The entry just before `first_index` (the compaction point) still has a known term."""
        if index < self.first_index() - 1 or index > self.last_index():
            return None
        term = self.unstable.maybe_term(index)
        if term is not None:
            return term
        try:
            return self.storage.term(index)
        except (CompactedError, UnavailableError):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        assert term is not None
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Whether a candidate whose log ends at (last_index, term) is at least as up to date
        as ours: later last term wins, equal terms compare length."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    def find_conflict(self, entries: tuple[Entry, ...] | list[Entry]) -> int:
        """Index of the first entry whose term differs from ours (or which we do not have);
        0 if we already hold all of them."""
        for e in entries:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest index <= `index` whose term is <= `term`, with that term.

        This is the fast-backtracking hint: every entry above it has a term greater than `term`
        and so cannot match the other side's entry at the probed position."""
        while index > 0:
            our = self.term(index)
            if our is None:
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of MsgApp: if our entry at `index` has `log_term`, merge `entries`
        after it (truncating from the first conflict) and return the new last index of what
        the leader sent; otherwise None (the caller rejects)."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self.find_conflict(entries)
        if conflict:
            if conflict <= self.committed:
                raise AssertionError(
                    f"entry {conflict} conflicts with committed entry (committed {self.committed})"
                )
            self.append(list(entries[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def append(self, entries: list[Entry]) -> int:
        if not entries:
            return self.last_index()
        if entries[0].index - 1 < self.committed:
            raise AssertionError(f"appending at {entries[0].index} below commit {self.committed}")
        self.unstable.truncate_and_append(entries)
        return self.last_index()

    def commit_to(self, index: int) -> None:
        """Raise the commit index (never lower it)."""
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Leader side: commit up to `index` only if that entry is from the current `term`
        (entries from earlier terms are committed indirectly, never by counting replicas)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index == 0:
            return
        if index > self.committed or index < self.applied:
            raise AssertionError(f"applied {index} outside ({self.applied}, {self.committed}]")
        self.applied = index

    def stable_to(self, index: int, term: int) -> None:
        self.unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self.unstable.stable_snap_to(index)

    def unstable_entries(self) -> list[Entry]:
        return list(self.unstable.entries)

    def has_next_committed_entries(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    def next_committed_entries(self) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 <= lo:
            return []
        return self.slice(lo, self.committed + 1, self.max_committed_size)

    def entries_from(self, index: int, max_size: int | None) -> list[Entry] | None:
        """Entries from `index` to the end, capped in size; None if `index` was compacted."""
        if index > self.last_index():
            return []
        if index < self.first_index():
            return None
        return self.slice(index, self.last_index() + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries with lo <= index < hi (lo must not be compacted)."""
        if lo >= hi:
            return []
        out: list[Entry] = []
        offset = self.unstable.offset
        if lo < offset:
            out = self.storage.entries(lo, min(hi, offset), max_size)
            if len(out) < min(hi, offset) - lo:
                return out  # size-limited already
        if hi > offset:
            out = out + self.unstable.slice(max(lo, offset), hi)
        return limit_size(out, max_size)

    def all_entries(self) -> list[Entry]:
        """Every retained entry (for tests and status)."""
        return self.slice(self.first_index(), self.last_index() + 1, None)

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def restore(self, snapshot: Snapshot) -> None:
        """Throw the log away in favour of a snapshot from the leader."""
        self.committed = snapshot.index
        self.unstable.restore(snapshot)
