"""The records stored in the WAL and their payload encoding.

A payload is one type byte followed by a fixed little-endian layout (plus trailing bytes for
entries and metadata). Type bytes start at 1 so that a zero-filled region can never decode as a
record (see framing.py). An unknown type byte in a frame whose checksum is good is corruption:
this version cannot know what the record meant, so it must not skip it.

A sealed entry (encryption at rest) is a record of its own type with the entry layout, whose
trailing bytes are the entry data sealed by `cairn.sealing` (see `seal_context`); decode()
returns it as an Entry with `sealed` set, and the WAL opens it after replay.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: Entry kinds. Config changes are interpreted by the Raft layer; the WAL only stores the byte.
ENTRY_NORMAL = 0
ENTRY_CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One Raft log entry. An entry at an index that is already in the log replaces it."""

    index: int
    term: int
    data: bytes
    kind: int = ENTRY_NORMAL
    sealed: bool = False
    """`data` is still sealed (only between decode() and the WAL opening it)."""


@dataclass(frozen=True, slots=True)
class HardState:
    """Raft's persistent state besides the log: current term, vote in that term, commit index."""

    term: int
    vote: int
    commit: int


@dataclass(frozen=True, slots=True)
class SnapshotMarker:
    """Says that a state-machine snapshot covers every entry up to and including `index`."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """First record of every segment file; lets replay check that no segment is missing."""

    seq: int
    first_index: int


@dataclass(frozen=True, slots=True)
class Metadata:
    """Opaque bytes given at WAL creation (member and cluster identity), repeated per segment."""

    data: bytes


Record = Entry | HardState | SnapshotMarker | SegmentHeader | Metadata

TYPE_SEGMENT_HEADER = 1
TYPE_METADATA = 2
TYPE_ENTRY = 3
TYPE_HARD_STATE = 4
TYPE_SNAPSHOT = 5
TYPE_SEALED_ENTRY = 6

MAGIC = b"CAIRNWAL"
FORMAT_VERSION = 1

_SEGMENT_HEADER = struct.Struct("<B8sHQQ")
_ENTRY = struct.Struct("<BQQB")
_HARD_STATE = struct.Struct("<BQQQ")
_SNAPSHOT = struct.Struct("<BQQ")
_METADATA_TYPE = bytes([TYPE_METADATA])


class RecordError(Exception):
    """A frame with a good checksum holds a payload this version cannot decode."""


def encode_entry(entry: Entry) -> bytes:
    """Payload of an entry record (kept separate from encode() because it is the hot path)."""
    try:
        return _ENTRY.pack(TYPE_ENTRY, entry.index, entry.term, entry.kind) + entry.data
    except struct.error as exc:
        raise ValueError(f"cannot encode {entry!r:.200}: {exc}") from None


def seal_context(index: int, term: int, kind: int) -> bytes:
    """What a sealed entry's data is bound to: it cannot be moved to another index or term."""
    return b"wal-entry" + _ENTRY.pack(TYPE_SEALED_ENTRY, index, term, kind)


def encode_sealed_entry(entry: Entry, sealed_data: bytes) -> bytes:
    """Payload of a sealed entry record: the entry layout with its data already sealed."""
    try:
        return _ENTRY.pack(TYPE_SEALED_ENTRY, entry.index, entry.term, entry.kind) + sealed_data
    except struct.error as exc:
        raise ValueError(f"cannot encode {entry!r:.200}: {exc}") from None


def encode(record: Record) -> bytes:
    """Payload of any record."""
    try:
        match record:
            case Entry():
                return encode_entry(record)
            case HardState(term, vote, commit):
                return _HARD_STATE.pack(TYPE_HARD_STATE, term, vote, commit)
            case SnapshotMarker(index, term):
                return _SNAPSHOT.pack(TYPE_SNAPSHOT, index, term)
            case SegmentHeader(seq, first_index):
                return _SEGMENT_HEADER.pack(
                    TYPE_SEGMENT_HEADER, MAGIC, FORMAT_VERSION, seq, first_index
                )
            case Metadata(data):
                return _METADATA_TYPE + bytes(data)
    except struct.error as exc:
        raise ValueError(f"cannot encode {record!r:.200}: {exc}") from None
    raise TypeError(f"not a WAL record: {type(record).__name__}")


def _fixed(layout: struct.Struct, payload: bytes, name: str) -> tuple[int, ...]:
    if len(payload) != layout.size:
        raise RecordError(f"{name} record has {len(payload)} bytes, expected {layout.size}")
    return layout.unpack(payload)


def decode(payload: bytes) -> Record:
    """Decode a payload whose frame checksum was good. Raises RecordError."""
    kind = payload[0]
    if kind in (TYPE_ENTRY, TYPE_SEALED_ENTRY):
        if len(payload) < _ENTRY.size:
            raise RecordError(f"entry record has only {len(payload)} bytes")
        _, index, term, entry_kind = _ENTRY.unpack_from(payload)
        sealed = kind == TYPE_SEALED_ENTRY
        return Entry(index, term, payload[_ENTRY.size :], entry_kind, sealed)
    if kind == TYPE_HARD_STATE:
        _, term, vote, commit = _fixed(_HARD_STATE, payload, "hard state")
        return HardState(term, vote, commit)
    if kind == TYPE_SNAPSHOT:
        _, index, term = _fixed(_SNAPSHOT, payload, "snapshot marker")
        return SnapshotMarker(index, term)
    if kind == TYPE_METADATA:
        return Metadata(payload[1:])
    if kind == TYPE_SEGMENT_HEADER:
        _, magic, version, seq, first_index = _fixed(_SEGMENT_HEADER, payload, "segment header")
        if magic != MAGIC:
            raise RecordError(f"segment header has bad magic {magic!r}")
        if version != FORMAT_VERSION:
            raise RecordError(f"unsupported WAL format version {version}")
        return SegmentHeader(seq, first_index)
    raise RecordError(f"unknown record type {kind}")
