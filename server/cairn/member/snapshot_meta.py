"""The Raft configuration at a snapshot index, kept in LevelDB next to the state it describes.

A WAL snapshot marker holds only (index, term), but a restarted member must hand Raft the
configuration *at that index* (Raft replays later conf changes from the log on top of it).
The member writes a record (index, term, ConfState) in the same synced LevelDB batch that
makes the state durable, before the WAL marker. Two slots are kept, the latest and the one
before, because a crash can fall between the LevelDB write and the marker: on restart the
slot whose index equals the marker's is the right one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cairn.member.raft_codec import decode_conf_state, encode_conf_state
from cairn.mvcc.backend import Backend, meta_key
from cairn.proto import raft_pb2 as rpb
from cairn.raft import ConfState

LATEST = meta_key("raft_snapshot")
PREVIOUS = meta_key("raft_snapshot_prev")
KEYS = (LATEST, PREVIOUS)
_HEAD = struct.Struct(">QQ")


@dataclass(frozen=True)
class SnapshotMeta:
    index: int
    term: int
    conf_state: ConfState

    def encode(self) -> bytes:
        conf = encode_conf_state(self.conf_state).SerializeToString()
        return _HEAD.pack(self.index, self.term) + conf

    @classmethod
    def decode(cls, raw: bytes) -> SnapshotMeta:
        index, term = _HEAD.unpack_from(raw)
        conf = decode_conf_state(rpb.RaftConfState.FromString(raw[_HEAD.size :]))
        return cls(index, term, conf)


def load(backend: Backend) -> list[SnapshotMeta]:
    """The stored records, latest first."""
    found = []
    for key in KEYS:
        raw = backend.get(key)
        if raw is not None:
            found.append(SnapshotMeta.decode(raw))
    return found


def records(backend: Backend, meta: SnapshotMeta) -> dict[bytes, bytes]:
    """The puts that make `meta` the latest record and keep the current latest as previous."""
    puts = {LATEST: meta.encode()}
    current = backend.get(LATEST)
    if current is not None:
        puts[PREVIOUS] = current
    return puts
