"""The in-memory key index: for every key, which revisions changed it.

LevelDB holds history keyed by revision; answering "what did keys [a, b) look like at revision
R" needs the opposite direction. Like etcd's treeIndex this lives in memory and is rebuilt from
the history on start. Keys are kept in a sorted list so ranges are bisections.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from cairn.mvcc.revision import Revision


@dataclass(slots=True)
class KeyHistory:
    """The revisions of one key, oldest first; a tombstone ends a generation."""

    mains: list[int] = field(default_factory=list)
    subs: list[int] = field(default_factory=list)
    tombstones: list[bool] = field(default_factory=list)
    # State of the live generation, so a put need not read the previous value back.
    created: Revision | None = None
    version: int = 0

    def at(self, rev: int) -> Revision | None:
        """The revision holding this key's value at store revision `rev`, None if absent."""
        i = bisect_right(self.mains, rev) - 1
        if i < 0 or self.tombstones[i]:
            return None
        return Revision(self.mains[i], self.subs[i])

    @property
    def live(self) -> bool:
        return bool(self.tombstones) and not self.tombstones[-1]

    def append(self, rev: Revision, tombstone: bool) -> None:
        self.mains.append(rev.main)
        self.subs.append(rev.sub)
        self.tombstones.append(tombstone)


@dataclass(frozen=True, slots=True)
class KeyCheckpoint:
    """A key's index state before a txn touched it; length None: the key had no history."""

    key: bytes
    length: int | None
    created: Revision | None
    version: int


class KeyIndex:
    """Key → history, plus the sorted key set for range scans."""

    def __init__(self) -> None:
        self._histories: dict[bytes, KeyHistory] = {}
        self._keys: SortedList = SortedList()
        self.live_keys = 0

    def __len__(self) -> int:
        return len(self._histories)

    def history(self, key: bytes) -> KeyHistory | None:
        return self._histories.get(key)

    def holds(self, key: bytes, rev: Revision) -> bool:
        """Whether `key`'s history still has `rev`: false once a compaction dropped it.

        The records a compaction drops stay in LevelDB until the deleter reaches them; this is
        how a reader tells them apart from live history without waiting for the deletion.
        """
        history = self._histories.get(key)
        if history is None:
            return False
        i = bisect_right(history.mains, rev.main) - 1
        while i >= 0 and history.mains[i] == rev.main:
            if history.subs[i] == rev.sub:
                return True
            i -= 1
        return False

    def _history_for_write(self, key: bytes) -> KeyHistory:
        history = self._histories.get(key)
        if history is None:
            history = KeyHistory()
            self._histories[key] = history
            self._keys.add(key)
        return history

    def put(self, key: bytes, rev: Revision) -> tuple[Revision, int]:
        """Record a put; returns the (create revision, version) the new value carries."""
        history = self._history_for_write(key)
        if history.live:
            history.version += 1
        else:
            history.created = rev
            history.version = 1
            self.live_keys += 1
        history.append(rev, tombstone=False)
        assert history.created is not None
        return history.created, history.version

    def tombstone(self, key: bytes, rev: Revision) -> None:
        """Record a delete of a live key."""
        history = self._histories[key]
        assert history.live, "tombstone of a key that is not live"
        history.append(rev, tombstone=True)
        history.created = None
        history.version = 0
        self.live_keys -= 1

    def restore(
        self, key: bytes, rev: Revision, tombstone: bool, created: int, version: int
    ) -> None:
        """Replay one history record during start-up (records arrive in revision order)."""
        history = self._history_for_write(key)
        was_live = history.live
        history.append(rev, tombstone)
        if tombstone:
            history.created, history.version = None, 0
            if was_live:
                self.live_keys -= 1
        else:
            history.created, history.version = Revision(created), version
            if not was_live:
                self.live_keys += 1

    def keys_in(self, key: bytes, end: bytes | None) -> Iterator[bytes]:
        """Keys with any history in [key, end); end None is the single key, b"" is no bound."""
        if end is None:
            if key in self._histories:
                yield key
            return
        if end and end <= key:
            return
        yield from self._keys.irange(key, end or None, inclusive=(True, False))

    def revisions(
        self, key: bytes, end: bytes | None, rev: int
    ) -> Iterator[tuple[bytes, Revision]]:
        """(key, revision of its value) for every key present at store revision `rev`."""
        for k in self.keys_in(key, end):
            found = self._histories[k].at(rev)
            if found is not None:
                yield k, found

    def checkpoint(self, key: bytes) -> KeyCheckpoint:
        """What `rollback` needs to put `key` back as it is now."""
        history = self._histories.get(key)
        if history is None:
            return KeyCheckpoint(key, None, None, 0)
        return KeyCheckpoint(key, len(history.mains), history.created, history.version)

    def rollback(self, checkpoint: KeyCheckpoint) -> None:
        """Undo every change to a key since its checkpoint (a txn that failed half-way)."""
        key = checkpoint.key
        history = self._histories.get(key)
        if history is None:
            return
        was_live = history.live
        if checkpoint.length is None:
            del self._histories[key]
            self._keys.remove(key)
            if was_live:
                self.live_keys -= 1
            return
        n = checkpoint.length
        del history.mains[n:], history.subs[n:], history.tombstones[n:]
        history.created, history.version = checkpoint.created, checkpoint.version
        self.live_keys += int(history.live) - int(was_live)

    def compact(self, rev: int) -> list[Revision]:
        """Forget history that no read at or above `rev` can reach; returns what to delete.

        A key keeps its newest revision at or below `rev` (the value a read at `rev` sees)
        unless that is a tombstone, in which case nothing at or below `rev` is kept.
        """
        obsolete: list[Revision] = []
        emptied: list[bytes] = []
        for key, history in self._histories.items():
            i = bisect_right(history.mains, rev) - 1
            if i < 0:
                continue
            keep_from = i + 1 if history.tombstones[i] else i
            if keep_from == 0:
                continue
            obsolete.extend(
                Revision(m, s)
                for m, s in zip(history.mains[:keep_from], history.subs[:keep_from], strict=True)
            )
            del history.mains[:keep_from], history.subs[:keep_from], history.tombstones[:keep_from]
            if not history.mains:
                emptied.append(key)
        for key in emptied:
            del self._histories[key]
            self._keys.remove(key)
        obsolete.sort()
        return obsolete
