"""The driver-facing API: feed the node input, collect a `Ready`, act on it, `advance`.

The member's loop, for every Ready, in this order:

1. If `snapshot` is set: persist it (WAL snapshot record + state image) and install it in
   storage (`storage.apply_snapshot`), then restore the state machine from it.
2. Persist `entries` and `hard_state` (one fsync for the batch) and append them to storage.
3. Only now send `messages`: they may promise that those entries and that vote are durable
   (an append ack, a granted vote). Sending earlier can lose acknowledged writes on a crash.
4. Apply `committed_entries` in order (calling `apply_conf_change` for CONF_CHANGE entries),
   and serve each `read_states` entry once the applied index reaches its index.
5. Call `advance(ready)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cairn.raft.progress import ProgressState
from cairn.raft.raft import Config, Raft
from cairn.raft.types import (
    LOCAL,
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Role,
    Snapshot,
    SoftState,
)

__all__ = ["Config", "ProgressStatus", "RawNode", "Ready", "Status"]


@dataclass(slots=True)
class Ready:
    """Everything the node needs its driver to do; see the module docstring for the order."""

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)

    @property
    def must_sync(self) -> bool:
        """Whether persisting this Ready needs an fsync (new entries, or term/vote changed)."""
        return bool(self.entries) or self.hard_state is not None


@dataclass(slots=True, frozen=True)
class ProgressStatus:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool
    inflight: int


@dataclass(slots=True, frozen=True)
class Status:
    id: int
    term: int
    vote: int
    lead: int
    role: Role
    commit: int
    applied: int
    last_index: int
    lead_transferee: int
    conf_state: ConfState
    #: Only on the leader: what it knows of every member.
    progress: dict[int, ProgressStatus]


class RawNode:
    """A Raft node without a goroutine-style loop: every call returns immediately."""

    def __init__(self, config: Config) -> None:
        self.raft = Raft(config)
        self._prev_soft = self.raft.soft_state()
        # Compare against what is on disk, so a bootstrap's commit index is reported.
        self._prev_hard = config.storage.hard_state()

    # --- input ---

    def tick(self) -> None:
        """Advance the logical clock by one heartbeat interval."""
        self.raft.tick()

    def step(self, message: Message) -> None:
        """Feed a message received from a peer. Local message types are refused."""
        if message.type in LOCAL:
            raise ValueError(f"{message.type} is local and cannot come from the network")
        if message.frm not in self.raft.tracker.progress and _is_response(message.type):
            return  # an answer from a node that is no longer a member
        self.raft.step(message)

    def campaign(self) -> None:
        """Start an election now (with a pre-vote round first if pre-vote is enabled)."""
        self.raft.step(Message(MessageType.HUP, frm=self.raft.id))

    def propose(self, data: bytes) -> None:
        """Propose a normal entry; raises ProposalDropped if it cannot be accepted now."""
        self.raft.step(
            Message(
                MessageType.PROP,
                frm=self.raft.id,
                entries=(Entry(0, 0, data, EntryKind.NORMAL),),
            )
        )

    def propose_conf_change(self, change: ConfChange) -> None:
        """Propose a one-member membership change (it takes effect when applied)."""
        self.raft.step(
            Message(
                MessageType.PROP,
                frm=self.raft.id,
                entries=(Entry(0, 0, change.encode(), EntryKind.CONF_CHANGE),),
            )
        )

    def apply_conf_change(self, change: ConfChange) -> ConfState:
        """Make a committed conf change effective here; returns the new configuration."""
        return self.raft.apply_conf_change(change)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read; a `ReadState` with this `ctx` appears in a later Ready
        (or never, if leadership is lost: the driver times the request out)."""
        self.raft.step(Message(MessageType.READ_INDEX, frm=self.raft.id, context=ctx))

    def transfer_leadership(self, to: int) -> None:
        """Ask the leader to hand leadership to `to` (forwarded if we are a follower)."""
        self.raft.step(Message(MessageType.TRANSFER_LEADER, frm=to, to=self.raft.id))

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to deliver to `node_id`: stop streaming to it optimistically."""
        self.raft.step(Message(MessageType.UNREACHABLE, frm=node_id))

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        """Outcome of streaming a snapshot to `node_id`."""
        self.raft.step(Message(MessageType.SNAP_STATUS, frm=node_id, reject=not ok))

    # --- output ---

    def has_ready(self) -> bool:
        """Whether `ready()` would return anything. Cheap: called after every input."""
        r = self.raft
        log = r.log
        if r.msgs or log.unstable.entries or r.read_states or log.unstable.snapshot is not None:
            return True
        if r.read_only.queued or r.appends_pending:
            return True
        hard = self._prev_hard
        if r.term != hard.term or r.vote != hard.vote or log.committed != hard.commit:
            return True
        soft = self._prev_soft
        if r.lead != soft.lead or r.role is not soft.role:
            return True
        return log.has_next_committed_entries()

    def ready(self) -> Ready:
        """Collect what is to be done. Call `advance` with it once it has been handled."""
        r = self.raft
        r.flush_appends()
        r.flush_reads()
        rd = Ready(
            entries=r.log.unstable_entries(),
            snapshot=r.log.unstable.snapshot,
            committed_entries=r.log.next_committed_entries(),
            messages=r.msgs,
            read_states=r.read_states,
        )
        soft = r.soft_state()
        if soft != self._prev_soft:
            rd.soft_state = soft
            self._prev_soft = soft
        hard = r.hard_state()
        if hard != self._prev_hard:
            rd.hard_state = hard
            self._prev_hard = hard
        r.msgs = []
        r.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        """Acknowledge that `rd` was persisted, sent and applied."""
        log = self.raft.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.index)
            if rd.snapshot.index > log.applied:
                log.applied = rd.snapshot.index
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)

    def status(self) -> Status:
        r = self.raft
        progress: dict[int, ProgressStatus] = {}
        if r.role is Role.LEADER:
            progress = {
                node_id: ProgressStatus(
                    pr.match,
                    pr.next,
                    pr.state,
                    pr.is_learner,
                    pr.recent_active,
                    pr.inflights.count(),
                )
                for node_id, pr in r.tracker.progress.items()
            }
        return Status(
            r.id,
            r.term,
            r.vote,
            r.lead,
            r.role,
            r.log.committed,
            r.log.applied,
            r.log.last_index(),
            r.lead_transferee,
            r.tracker.conf_state(),
            progress,
        )


def _is_response(t: MessageType) -> bool:
    return t in (
        MessageType.APP_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
    )
