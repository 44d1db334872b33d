"""Segment files: naming, atomic creation, and reading one segment back into records.

A segment is named ``{seq:016x}-{first_index:016x}.wal``: `seq` counts segments from 0 without
gaps, `first_index` is the log index the segment was started at (last index + 1). Every segment
begins with the same start records, so that any segment can be the first one read after older
segments were released:

    SegmentHeader(seq, first_index), Metadata, [latest SnapshotMarker], [latest HardState]

A segment is written to a ``.tmp`` file, fsync'd, and then renamed into place (and the directory
fsync'd), so a segment under its final name always has intact start records and a crash while
cutting a segment leaves at most a stray ``.tmp`` file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from cairn.wal.errors import WALCorruptError
from cairn.wal.framing import FrameCorruptError, frame, scan_frames
from cairn.wal.records import (
    HardState,
    Metadata,
    Record,
    RecordError,
    SegmentHeader,
    SnapshotMarker,
    decode,
    encode,
)

SUFFIX = ".wal"
TMP_SUFFIX = ".wal.tmp"
_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")

#: Uses fdatasync where the platform has it: the file size is part of what it flushes, and
#: it skips the timestamps fsync would also write.
fdatasync = getattr(os, "fdatasync", os.fsync)


def segment_name(seq: int, first_index: int) -> str:
    return f"{seq:016x}-{first_index:016x}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class SegmentFile:
    path: Path
    seq: int
    first_index: int


def list_segments(directory: Path) -> list[SegmentFile]:
    """Segment files in `directory`, ordered by sequence number."""
    found = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match:
            seq, first_index = (int(group, 16) for group in match.groups())
            found.append(SegmentFile(directory / name, seq, first_index))
    found.sort(key=lambda segment: segment.seq)
    return found


def remove_tmp_files(directory: Path) -> bool:
    """Delete segments left half-created by a crash. Returns True if anything was deleted."""
    removed = False
    for name in os.listdir(directory):
        if name.endswith(TMP_SUFFIX):
            os.remove(directory / name)
            removed = True
    return removed


def fsync_dir(directory: Path) -> None:
    """Make creations, renames and deletions of directory entries durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def start_records(
    seq: int,
    first_index: int,
    metadata: bytes,
    snapshot: SnapshotMarker | None,
    hard_state: HardState | None,
) -> list[Record]:
    records: list[Record] = [SegmentHeader(seq, first_index), Metadata(metadata)]
    if snapshot is not None:
        records.append(snapshot)
    if hard_state is not None:
        records.append(hard_state)
    return records


def create_segment(directory: Path, seq: int, first_index: int, records: list[Record]) -> Path:
    """Atomically create a segment holding `records`; returns its path. Fsyncs file and dir."""
    path = directory / segment_name(seq, first_index)
    tmp = path.with_name(path.name[: -len(SUFFIX)] + TMP_SUFFIX)
    data = b"".join(frame(encode(record)) for record in records)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(directory)
    return path


@dataclass
class SegmentContents:
    """What one segment file holds.

    `records` are (offset, record) pairs. `end` is where the intact records stop; if the file
    is longer, `torn_reason` explains why the rest is a torn tail.
    """

    file: SegmentFile
    header: SegmentHeader
    metadata: bytes
    records: list[tuple[int, Record]]
    size: int
    end: int
    torn_reason: str | None


def read_segment(segment: SegmentFile, *, last: bool) -> SegmentContents:
    """Read and validate one segment. Only the `last` segment may end in a torn tail.

    Raises WALCorruptError for anything a crash cannot explain.
    """
    path = segment.path
    data = path.read_bytes()
    try:
        scan = scan_frames(data)
    except FrameCorruptError as exc:
        raise WALCorruptError(path, exc.offset, exc.reason) from None
    if scan.torn_reason is not None and not last:
        # Only the newest segment is ever written to after it is created.
        raise WALCorruptError(
            path, scan.end, scan.torn_reason + " in a segment that is not the last"
        )

    records: list[tuple[int, Record]] = []
    for offset, payload in scan.frames:
        try:
            records.append((offset, decode(payload)))
        except RecordError as exc:
            raise WALCorruptError(path, offset, str(exc)) from None

    # Start records are written before the file gets its name, so they cannot be torn.
    if len(records) < 2:
        raise WALCorruptError(path, scan.end, "segment is missing its header or metadata record")
    (_, header), (metadata_offset, metadata) = records[0], records[1]
    if not isinstance(header, SegmentHeader):
        raise WALCorruptError(path, 0, "segment does not start with a segment header")
    if (header.seq, header.first_index) != (segment.seq, segment.first_index):
        raise WALCorruptError(
            path,
            0,
            f"segment header says seq {header.seq} first index {header.first_index}, "
            "which does not match the file name",
        )
    if not isinstance(metadata, Metadata):
        raise WALCorruptError(path, metadata_offset, "segment header not followed by metadata")
    for offset, record in records[2:]:
        if isinstance(record, SegmentHeader | Metadata):
            raise WALCorruptError(path, offset, f"{type(record).__name__} record inside segment")
    return SegmentContents(
        file=segment,
        header=header,
        metadata=metadata.data,
        records=records[2:],
        size=len(data),
        end=scan.end,
        torn_reason=scan.torn_reason,
    )
