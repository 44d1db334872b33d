"""The values Raft exchanges with its driver and its peers: messages, entries, states.

All are plain dataclasses with slots so that the member can map them onto its own wire and
WAL formats without the core knowing about either.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

#: The id that means "nobody" (no leader known, no vote cast). Real member ids are never 0.
NONE = 0


class MessageType(enum.Enum):
    """Kinds of message. Local ones (HUP, BEAT, CHECK_QUORUM, UNREACHABLE, SNAP_STATUS) are
    only ever stepped into a node by its own driver and never cross the network."""

    HUP = "hup"  # local: start an election now
    BEAT = "beat"  # local: leader should send heartbeats now
    PROP = "prop"  # a proposal; followers forward it to the leader
    APP = "app"  # append entries (leader -> follower)
    APP_RESP = "app_resp"
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    SNAP = "snap"  # install a snapshot (leader -> follower)
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    UNREACHABLE = "unreachable"  # local: the transport could not reach a peer
    SNAP_STATUS = "snap_status"  # local: result of sending a snapshot
    CHECK_QUORUM = "check_quorum"  # local: leader checks it still hears from a quorum
    TRANSFER_LEADER = "transfer_leader"  # from = the transferee
    TIMEOUT_NOW = "timeout_now"  # leader -> transferee: campaign immediately
    READ_INDEX = "read_index"
    READ_INDEX_RESP = "read_index_resp"


#: Messages that carry no term because they are "local" to the cluster's leader: a follower
#: forwards them unchanged, and the leader must not reject them as stale.
TERMLESS = frozenset({MessageType.PROP, MessageType.READ_INDEX})

#: Messages that are never sent over the network.
LOCAL = frozenset(
    {
        MessageType.HUP,
        MessageType.BEAT,
        MessageType.UNREACHABLE,
        MessageType.SNAP_STATUS,
        MessageType.CHECK_QUORUM,
    }
)


class EntryKind(enum.Enum):
    NORMAL = "normal"
    CONF_CHANGE = "conf_change"


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(slots=True, frozen=True)
class Entry:
    """One log entry. `data` is opaque to Raft except for CONF_CHANGE entries, whose data is an
    encoded `ConfChange`. The leader appends an entry with empty data when elected."""

    index: int
    term: int
    data: bytes = b""
    kind: EntryKind = EntryKind.NORMAL

    def size(self) -> int:
        """Approximate wire size, used to cap the bytes per append message."""
        return len(self.data) + 16


@dataclass(slots=True, frozen=True)
class HardState:
    """What must be on disk before any message that depends on it leaves the node."""

    term: int = 0
    vote: int = NONE
    commit: int = 0

    def is_empty(self) -> bool:
        return self == EMPTY_HARD_STATE


EMPTY_HARD_STATE = HardState()


@dataclass(slots=True, frozen=True)
class SoftState:
    """Volatile state worth telling the driver about (for metrics, request routing)."""

    lead: int
    role: Role


@dataclass(slots=True, frozen=True)
class ConfState:
    """The cluster configuration: who votes and who only learns."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()

    def is_empty(self) -> bool:
        return not self.voters and not self.learners


class ConfChangeType(enum.Enum):
    ADD_VOTER = 1  # also promotes an existing learner
    ADD_LEARNER = 2  # also demotes an existing voter
    REMOVE = 3


_CC_HEADER = struct.Struct(">BQ")


@dataclass(slots=True, frozen=True)
class ConfChange:
    """A one-member membership change. Travels in a CONF_CHANGE entry's data; takes effect on a
    node only when its driver calls `apply_conf_change` for the committed entry."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def encode(self) -> bytes:
        return _CC_HEADER.pack(self.type.value, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node_id = _CC_HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[_CC_HEADER.size :]))


@dataclass(slots=True, frozen=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(slots=True, frozen=True)
class Snapshot:
    """The state machine's image at `metadata.index`; `data` is opaque to Raft."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(slots=True, frozen=True)
class Message:
    """A message between nodes (or from the driver into a node).

    Field use by type: APP carries `index`/`log_term` of the entry preceding `entries` and the
    leader's `commit`; APP_RESP carries the new last `index`, or on `reject` the rejected index
    plus a hint (`reject_hint`, `log_term`) of where the follower's log may match; VOTE and
    PRE_VOTE carry the candidate's last `index`/`log_term`; HEARTBEAT(_RESP) and READ_INDEX(_RESP)
    carry a `context`.
    """

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""


@dataclass(slots=True, frozen=True)
class ReadState:
    """A linearizable read may be served once the local applied index reaches `index`.
    `ctx` is the caller's request context given to `read_index`."""

    index: int
    ctx: bytes
