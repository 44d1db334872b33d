"""The WAL: cairn's durability point.

A write is acknowledged only after save() has written its records and fdatasync'd them, so the
cost that matters is one fdatasync per save(). The member therefore batches many client requests
(and, once Raft is in, a whole Ready) into one save() call: group commit.

Only the newest segment is ever appended to. When it has grown past `segment_bytes`, the next
write first cuts a new segment that starts with copies of the metadata, the latest snapshot
marker and the latest hard state, so older segments can be deleted (release_before) once a
snapshot covers their entries.

Encryption at rest: with a keyring whose active key is set, entries are written as sealed
entry records (their data sealed with the active key, bound to index, term and kind); open()
unseals the entries replay returns, so a sealed entry a snapshot no longer covers needs its
key. The WAL remembers which key ids each segment holds (`key_ids_in_use`): after a key
rotation (`rekey`) the next append starts a new segment, so once a snapshot lets the older
segments go, no entry sealed with an old key (or stored in clear) is left on disk.

Thread safety: every public method takes an internal lock, so save() may run in a worker thread
(asyncio.to_thread) while another thread calls release_before() or close().
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from cairn.sealing import Keyring, is_sealed, key_id_of
from cairn.wal.errors import WALCorruptError, WALError
from cairn.wal.framing import frame
from cairn.wal.records import (
    Entry,
    HardState,
    SnapshotMarker,
    encode,
    encode_entry,
    encode_sealed_entry,
    seal_context,
)
from cairn.wal.replay import Replay, ReplayBuilder
from cairn.wal.segment import (
    SegmentContents,
    SegmentFile,
    create_segment,
    fdatasync,
    fsync_dir,
    list_segments,
    read_segment,
    remove_tmp_files,
    start_records,
)

log = logging.getLogger("cairn.wal")

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


def _lock_directory(directory: Path) -> int:
    """Take an exclusive lock on the WAL directory so two members never append to one WAL.

    The lock is released by the kernel when the process dies, so a crash never leaves it
    behind.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALError(f"{directory}: WAL is in use by another process or WAL object") from None
    return fd


def _make_dirs(path: Path) -> None:
    """Create `path` and missing parents, fsyncing each parent so the new entries survive."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir()
        fsync_dir(directory.parent)


def _open_for_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)


class WAL:
    """An open write-ahead log. Create one with WAL.create() or WAL.open()."""

    def __init__(
        self,
        directory: Path,
        lock_fd: int,
        segments: list[SegmentFile],
        size: int,
        *,
        metadata: bytes,
        last_index: int,
        snapshot: SnapshotMarker | None,
        hard_state: HardState | None,
        segment_bytes: int,
        keyring: Keyring | None = None,
        segment_keys: list[set[str | None]] | None = None,
    ) -> None:
        """Internal: use create() or open()."""
        if segment_bytes <= 0:
            raise ValueError("segment_bytes must be positive")
        self._dir = directory
        self._lock_fd: int | None = lock_fd
        self._segments = segments
        self._fd: int | None = _open_for_append(segments[-1].path)
        self._size = size
        self._metadata = metadata
        self._last_index = last_index
        self._snapshot = snapshot
        self._hard_state = hard_state
        self._segment_bytes = segment_bytes
        self._mutex = threading.Lock()
        self._failure: BaseException | None = None
        self._unsynced = False  # the live segment ends in a write not yet fdatasync'd
        self._keyring = keyring if keyring is not None else Keyring.empty()
        # Per segment (same order as _segments): the key ids its entries were sealed with,
        # None for entries stored in clear.
        self._segment_keys = segment_keys or [set() for _ in segments]
        # Guards _segment_keys alone, so key_ids_in_use() never waits for an fdatasync.
        self._keys_mutex = threading.Lock()
        self._cut_pending = False  # rekey(): the next append starts a new segment
        self.bytes_written = 0
        """Record bytes appended since open (etcd_disk_wal_write_bytes_total)."""
        self.on_fsync: Callable[[float], None] | None = None
        """Called with the seconds each fdatasync of a save took (etcd's WAL fsync histogram);
        runs on the thread that saves."""
        self.fsync_delay_s = 0.0
        """TEST-ONLY fault: sleep this long before each fdatasync, as a slow disk would take.
        Zero unless a test-only flag sets it (see cairn.cli.fault_file)."""

    # ----------------------------------------------------------------------------- lifecycle

    @staticmethod
    def exists(directory: str | os.PathLike[str]) -> bool:
        """True if `directory` holds at least one WAL segment."""
        path = Path(directory)
        return path.is_dir() and bool(list_segments(path))

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        metadata: bytes,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        keyring: Keyring | None = None,
    ) -> WAL:
        """Create a new, empty WAL in `directory` (created if missing) and open it.

        `metadata` is stored in every segment and returned by open(); use it for the member and
        cluster identity so that a data directory can never be replayed into the wrong member.
        """
        path = Path(directory)
        _make_dirs(path)
        lock_fd = _lock_directory(path)
        try:
            if list_segments(path):
                raise WALError(f"{path}: a WAL already exists there")
            remove_tmp_files(path)
            records = start_records(0, 1, bytes(metadata), None, None)
            first = create_segment(path, 0, 1, records)
            return cls(
                path,
                lock_fd,
                [SegmentFile(first, 0, 1)],
                first.stat().st_size,
                metadata=bytes(metadata),
                last_index=0,
                snapshot=None,
                hard_state=None,
                segment_bytes=segment_bytes,
                keyring=keyring,
            )
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        keyring: Keyring | None = None,
    ) -> tuple[WAL, Replay]:
        """Open an existing WAL, repair a torn tail, and return it with everything it holds.

        Raises WALCorruptError if the WAL is damaged anywhere but its torn tail, WALError
        if there is no WAL or it is in use, and cairn.sealing.SealError if an entry replay
        returns is sealed with a key `keyring` lacks or fails authentication.
        """
        keyring = keyring if keyring is not None else Keyring.empty()
        path = Path(directory)
        if not path.is_dir():
            raise WALError(f"{path}: no WAL directory")
        lock_fd = _lock_directory(path)
        try:
            segments = list_segments(path)
            if not segments:
                raise WALError(f"{path}: no WAL segments")
            if remove_tmp_files(path):
                fsync_dir(path)
            for previous, segment in itertools.pairwise(segments):
                if segment.seq != previous.seq + 1:
                    raise WALCorruptError(
                        segment.path,
                        0,
                        f"segment sequence gap: expected seq {previous.seq + 1} after "
                        f"{previous.path.name}, a segment is missing",
                    )
            builder = ReplayBuilder()
            contents: SegmentContents | None = None
            segment_keys: list[set[str | None]] = []
            for number, segment in enumerate(segments):
                contents = read_segment(segment, last=number == len(segments) - 1)
                builder.add_segment(contents)
                segment_keys.append(_key_ids(contents))
            replay = _unseal(builder.finish(), keyring)
            assert contents is not None
            if contents.torn_reason is not None:
                _truncate_torn_tail(contents)
            wal = cls(
                path,
                lock_fd,
                segments,
                contents.end,
                metadata=replay.metadata,
                last_index=builder.last_index,
                snapshot=replay.snapshot,
                hard_state=replay.hard_state,
                segment_bytes=segment_bytes,
                keyring=keyring,
                segment_keys=segment_keys,
            )
        except BaseException:
            os.close(lock_fd)
            raise
        return wal, replay

    def close(self) -> None:
        """Close the WAL and release its directory lock. Safe to call twice."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> WAL:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------- state

    @property
    def last_index(self) -> int:
        """Index of the last entry in the log, or of the snapshot marker if that is higher."""
        return self._last_index

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def segments(self) -> list[Path]:
        """Paths of the segment files, oldest first (the last one is being appended to)."""
        return [segment.path for segment in self._segments]

    def key_ids_in_use(self) -> set[str | None]:
        """The key ids the entries in the segments on disk are sealed with (None: in clear)."""
        with self._keys_mutex:
            return set().union(*self._segment_keys)

    def rekey(self, switch: Callable[[], None]) -> None:
        """Run `switch` (which changes the keyring's active key) between two saves, and have
        the next append start a new segment: every entry sealed with the earlier key then
        lies in older segments, which release_before() drops once a snapshot covers them."""
        with self._mutex:
            switch()
            self._cut_pending = True

    # ----------------------------------------------------------------------------- writes

    def save(
        self, entries: Sequence[Entry], hard_state: HardState | None = None, *, sync: bool = True
    ) -> None:
        """Durably append `entries` and then `hard_state`: one buffer, one write, one fdatasync.

        `sync=False` skips the fdatasync for a hard state whose term and vote are unchanged:
        only its commit index moved, which Raft can always learn again from the leader (and
        a member from its applied index), so it need not cost a disk flush. Entries are
        always synced: an entry may be acknowledged as soon as save() returns.

        Entries must be consecutive and start at most one past last_index; starting lower
        replaces the conflicting suffix. They may not reach back into the latest snapshot.
        Raises ValueError for such misuse (nothing is written) and WALError if the disk fails,
        after which this WAL object refuses further writes: reopen it to recover.
        """
        if not entries and hard_state is None:
            return
        if entries and not sync:
            raise ValueError("entries are always fdatasync'd")
        parts: list[bytes] = []
        with self._mutex:
            self._check_writable()
            keyring = self._keyring
            key_id = keyring.active
            if entries:
                first = entries[0].index
                floor = self._snapshot.index if self._snapshot is not None else 0
                if not floor < first <= self._last_index + 1:
                    raise ValueError(
                        f"first entry index {first} must be in ({floor}, {self._last_index + 1}]"
                    )
                for position, entry in enumerate(entries):
                    if entry.index != first + position:
                        raise ValueError(f"entry indexes not consecutive at {entry.index}")
                    if key_id is None:
                        parts.append(frame(encode_entry(entry)))
                    else:
                        context = seal_context(entry.index, entry.term, entry.kind)
                        sealed = keyring.seal(entry.data, context)
                        parts.append(frame(encode_sealed_entry(entry, sealed)))
            if hard_state is not None:
                parts.append(frame(encode(hard_state)))
            self._append(b"".join(parts), sync=sync)
            if entries:
                with self._keys_mutex:
                    self._segment_keys[-1].add(key_id)
            if entries:
                self._last_index = entries[-1].index
            if hard_state is not None:
                self._hard_state = hard_state

    def save_snapshot(self, marker: SnapshotMarker) -> None:
        """Durably record that a snapshot covers the log up to `marker.index`.

        Replay then starts after the latest marker, and release_before() may delete segments
        it covers. Markers may not go backwards.
        """
        with self._mutex:
            self._check_writable()
            if self._snapshot is not None and marker.index < self._snapshot.index:
                raise ValueError(
                    f"snapshot marker {marker.index} is older than {self._snapshot.index}"
                )
            self._append(frame(encode(marker)))
            self._snapshot = marker
            self._last_index = max(self._last_index, marker.index)

    def release_before(self, index: int) -> int:
        """Delete whole segments whose entries are all below `index`; returns how many.

        Never deletes the live segment, nor entries after the latest snapshot marker: replay
        needs those, so `index` is capped at that marker's index + 1. Call it after a snapshot
        (typically with the snapshot index) to bound disk use.
        """
        with self._mutex:
            self._check_writable()
            covered = self._snapshot.index if self._snapshot is not None else 0
            limit = min(index, covered + 1)
            count = 0
            # Every live entry of segment k is below the first index of segment k + 1.
            while (
                count < len(self._segments) - 1 and self._segments[count + 1].first_index <= limit
            ):
                count += 1
            # Oldest first, so a crash midway never leaves a gap in the sequence.
            try:
                for _ in range(count):
                    os.remove(self._segments[0].path)
                    del self._segments[0]
                    with self._keys_mutex:
                        del self._segment_keys[0]
                if count:
                    fsync_dir(self._dir)
            except OSError as exc:
                raise WALError(f"{self._dir}: cannot release segments: {exc}") from exc
            return count

    # ----------------------------------------------------------------------------- internals

    def _check_writable(self) -> None:
        if self._fd is None:
            raise WALError(f"{self._dir}: WAL is closed")
        if self._failure is not None:
            raise WALError(
                f"{self._dir}: WAL is unusable after an earlier I/O error; reopen it"
            ) from self._failure

    def _append(self, data: bytes, sync: bool = True) -> None:
        """Write `data` at the end of the live segment and (unless told not to) fdatasync it.

        After an I/O error the state of the file (and, after a failed fdatasync, of the page
        cache) is unknown, so the WAL is marked failed instead of risking appends after a
        partial record; reopening truncates whatever partial record is left.
        """
        if self._size >= self._segment_bytes or self._cut_pending:
            self._cut()
        fd = self._fd
        assert fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync or self._unsynced:
                self._timed_fdatasync(fd)
                self._unsynced = False
            else:
                self._unsynced = True
        except OSError as exc:
            self._failure = exc
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise WALError(f"{self._segments[-1].path}: write failed: {exc}") from exc
        self._size += len(data)
        self.bytes_written += len(data)

    def _timed_fdatasync(self, fd: int) -> None:
        started = time.monotonic()
        if self.fsync_delay_s > 0:
            time.sleep(self.fsync_delay_s)
        fdatasync(fd)
        if self.on_fsync is not None:
            self.on_fsync(time.monotonic() - started)

    def _cut(self) -> None:
        """Start a new live segment, after making the old one durable (an unsynced hard state
        may be at its end)."""
        if self._unsynced and self._fd is not None:
            fdatasync(self._fd)
            self._unsynced = False
        seq = self._segments[-1].seq + 1
        first_index = self._last_index + 1
        records = start_records(seq, first_index, self._metadata, self._snapshot, self._hard_state)
        try:
            path = create_segment(self._dir, seq, first_index, records)
            fd = _open_for_append(path)
        except OSError as exc:
            # The new segment may or may not exist now; appending to the old one could then
            # break continuity, so stop here.
            self._failure = exc
            raise WALError(f"{self._dir}: cannot start segment {seq}: {exc}") from exc
        assert self._fd is not None
        os.close(self._fd)
        self._fd = fd
        self._segments.append(SegmentFile(path, seq, first_index))
        with self._keys_mutex:
            self._segment_keys.append(set())
        self._size = path.stat().st_size
        self._cut_pending = False


def _key_ids(contents: SegmentContents) -> set[str | None]:
    """The key ids a segment's entries are sealed with (None for entries in clear)."""
    found: set[str | None] = set()
    for _, record in contents.records:
        if isinstance(record, Entry):
            found.add(key_id_of(record.data) if record.sealed and is_sealed(record.data) else None)
    return found


def _unseal(replay: Replay, keyring: Keyring) -> Replay:
    """The replay with every sealed entry opened (entries a snapshot covers are gone already)."""
    if not any(entry.sealed for entry in replay.entries):
        return replay
    entries = [
        Entry(
            e.index,
            e.term,
            keyring.open(e.data, seal_context(e.index, e.term, e.kind)),
            e.kind,
        )
        if e.sealed
        else e
        for e in replay.entries
    ]
    return Replay(replay.metadata, replay.hard_state, replay.snapshot, entries)


def _truncate_torn_tail(contents: SegmentContents) -> None:
    """Drop the incomplete record(s) a crash left at the end of the newest segment."""
    path = contents.file.path
    dropped = contents.size - contents.end
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, contents.end)
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning(
        "%s: torn tail at byte offset %d (%s); truncated %d bytes left by an interrupted write",
        path,
        contents.end,
        contents.torn_reason,
        dropped,
    )
