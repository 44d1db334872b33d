"""Raft as a deterministic state machine, driven through a Ready/Advance boundary.

The package does no I/O, reads no clock and starts no threads: the member ticks it, feeds it
messages from peers, and acts on each `Ready` (persist, send, apply) before calling `advance`.
That is what lets the simulation tests run thousands of seeded clusters in CI.
"""

from cairn.raft.errors import (
    CompactedError,
    ProposalDropped,
    RaftError,
    SnapshotOutOfDateError,
    UnavailableError,
)
from cairn.raft.rawnode import Config, RawNode, Ready, Status
from cairn.raft.storage import MemoryStorage
from cairn.raft.types import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SnapshotMetadata,
    SoftState,
)

__all__ = [
    "NONE",
    "CompactedError",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Config",
    "Entry",
    "EntryKind",
    "HardState",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDropped",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMetadata",
    "SnapshotOutOfDateError",
    "SoftState",
    "Status",
    "UnavailableError",
]
