"""Rebuilding the Raft log from the records of consecutive segments.

The rules are the ones the writer enforces in WAL.save(), so that what the writer accepts the
reader accepts and anything else is damage:

- an entry at an index <= the last index replaces that entry and everything after it (a new
  leader overwrote a conflicting suffix); an entry beyond last index + 1 is a gap;
- an entry may not replace one that a snapshot marker already covers: Raft never overwrites
  committed entries, and snapshots only cover committed ones;
- a snapshot marker discards the entries it covers and moves the last index up to its own
  index if the log was shorter (a follower that received a snapshot continues after it);
- the last hard state and the last snapshot marker win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cairn.wal.errors import WALCorruptError
from cairn.wal.records import Entry, HardState, SnapshotMarker
from cairn.wal.segment import SegmentContents, SegmentFile


@dataclass(frozen=True)
class Replay:
    """What a WAL holds: the state a member restarts from.

    `entries` are the entries after `snapshot` (all of them if there is no snapshot marker),
    in index order and without gaps. `hard_state` and `snapshot` are None if never saved.
    """

    metadata: bytes
    hard_state: HardState | None
    snapshot: SnapshotMarker | None
    entries: list[Entry] = field(repr=False)


class ReplayBuilder:
    """Feeds segments in order and tracks the log; raises WALCorruptError on broken rules."""

    def __init__(self) -> None:
        self.metadata = b""
        self.hard_state: HardState | None = None
        self.snapshot: SnapshotMarker | None = None
        self.entries: list[Entry] = []
        self.last_index = 0
        self._first: SegmentFile | None = None

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    def add_segment(self, segment: SegmentContents) -> None:
        path = segment.file.path
        if self._first is None:
            self._first = segment.file
            self.metadata = segment.metadata
            self.last_index = segment.header.first_index - 1
        else:
            if segment.header.first_index != self.last_index + 1:
                raise WALCorruptError(
                    path,
                    0,
                    f"segment starts at index {segment.header.first_index} but the previous "
                    f"segment ends at index {self.last_index}",
                )
            if segment.metadata != self.metadata:
                raise WALCorruptError(path, 0, "segment metadata differs from earlier segments")
        for offset, record in segment.records:
            if isinstance(record, Entry):
                self._add_entry(record, path, offset)
            elif isinstance(record, HardState):
                self.hard_state = record
            elif isinstance(record, SnapshotMarker):
                self._add_snapshot(record, path, offset)

    def _add_entry(self, entry: Entry, path: Path, offset: int) -> None:
        if entry.index > self.last_index + 1:
            raise WALCorruptError(
                path, offset, f"entry {entry.index} leaves a gap after index {self.last_index}"
            )
        if entry.index <= self.snapshot_index:
            raise WALCorruptError(
                path,
                offset,
                f"entry {entry.index} overwrites an index covered by the snapshot marker "
                f"at {self.snapshot_index}",
            )
        entries = self.entries
        if entries and entry.index <= entries[-1].index:
            del entries[max(0, entry.index - entries[0].index) :]
        entries.append(entry)
        self.last_index = entry.index

    def _add_snapshot(self, marker: SnapshotMarker, path: Path, offset: int) -> None:
        if marker.index < self.snapshot_index:
            raise WALCorruptError(
                path,
                offset,
                f"snapshot marker {marker.index} is older than marker {self.snapshot_index}",
            )
        self.snapshot = marker
        entries = self.entries
        if entries and entries[0].index <= marker.index:
            del entries[: marker.index - entries[0].index + 1]
        self.last_index = max(self.last_index, marker.index)

    def finish(self) -> Replay:
        first = self._first
        assert first is not None, "finish() before any segment"
        # Older segments may only have been released if a snapshot covers their entries.
        if first.seq != 0 and first.first_index - 1 > self.snapshot_index:
            raise WALCorruptError(
                first.path,
                0,
                f"entries {self.snapshot_index + 1}..{first.first_index - 1} are missing: "
                "earlier segments were removed but no snapshot marker covers them",
            )
        return Replay(self.metadata, self.hard_state, self.snapshot, self.entries)
