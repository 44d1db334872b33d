"""Errors the Raft core raises; the member turns them into etcd's client-facing errors."""

from __future__ import annotations


class RaftError(Exception):
    """Base class: something the caller asked for cannot be done by this node right now."""


class ProposalDropped(RaftError):
    """The proposal was not accepted: no known leader, a leadership transfer is in progress,
    this node was removed, or a configuration change is already pending. The caller should
    retry later (etcd answers such requests with a leader-changed or timeout error)."""


class CompactedError(RaftError):
    """The requested index lies before the storage's first index: it was compacted away."""


class UnavailableError(RaftError):
    """The requested index lies past the storage's last index."""


class SnapshotOutOfDateError(RaftError):
    """A snapshot older than the one already held was offered."""
