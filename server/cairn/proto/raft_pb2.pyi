from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RaftEntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RAFT_ENTRY_NORMAL: _ClassVar[RaftEntryKind]
    RAFT_ENTRY_CONF_CHANGE: _ClassVar[RaftEntryKind]

class RaftMessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RAFT_MSG_UNSPECIFIED: _ClassVar[RaftMessageType]
    RAFT_MSG_PROP: _ClassVar[RaftMessageType]
    RAFT_MSG_APP: _ClassVar[RaftMessageType]
    RAFT_MSG_APP_RESP: _ClassVar[RaftMessageType]
    RAFT_MSG_VOTE: _ClassVar[RaftMessageType]
    RAFT_MSG_VOTE_RESP: _ClassVar[RaftMessageType]
    RAFT_MSG_PRE_VOTE: _ClassVar[RaftMessageType]
    RAFT_MSG_PRE_VOTE_RESP: _ClassVar[RaftMessageType]
    RAFT_MSG_SNAP: _ClassVar[RaftMessageType]
    RAFT_MSG_HEARTBEAT: _ClassVar[RaftMessageType]
    RAFT_MSG_HEARTBEAT_RESP: _ClassVar[RaftMessageType]
    RAFT_MSG_TRANSFER_LEADER: _ClassVar[RaftMessageType]
    RAFT_MSG_TIMEOUT_NOW: _ClassVar[RaftMessageType]
    RAFT_MSG_READ_INDEX: _ClassVar[RaftMessageType]
    RAFT_MSG_READ_INDEX_RESP: _ClassVar[RaftMessageType]
RAFT_ENTRY_NORMAL: RaftEntryKind
RAFT_ENTRY_CONF_CHANGE: RaftEntryKind
RAFT_MSG_UNSPECIFIED: RaftMessageType
RAFT_MSG_PROP: RaftMessageType
RAFT_MSG_APP: RaftMessageType
RAFT_MSG_APP_RESP: RaftMessageType
RAFT_MSG_VOTE: RaftMessageType
RAFT_MSG_VOTE_RESP: RaftMessageType
RAFT_MSG_PRE_VOTE: RaftMessageType
RAFT_MSG_PRE_VOTE_RESP: RaftMessageType
RAFT_MSG_SNAP: RaftMessageType
RAFT_MSG_HEARTBEAT: RaftMessageType
RAFT_MSG_HEARTBEAT_RESP: RaftMessageType
RAFT_MSG_TRANSFER_LEADER: RaftMessageType
RAFT_MSG_TIMEOUT_NOW: RaftMessageType
RAFT_MSG_READ_INDEX: RaftMessageType
RAFT_MSG_READ_INDEX_RESP: RaftMessageType

class RaftEntry(_message.Message):
    __slots__ = ("index", "term", "kind", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    kind: RaftEntryKind
    data: bytes
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., kind: _Optional[_Union[RaftEntryKind, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RaftConfState(_message.Message):
    __slots__ = ("voters", "learners")
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    LEARNERS_FIELD_NUMBER: _ClassVar[int]
    voters: _containers.RepeatedScalarFieldContainer[int]
    learners: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, voters: _Optional[_Iterable[int]] = ..., learners: _Optional[_Iterable[int]] = ...) -> None: ...

class RaftSnapshotMetadata(_message.Message):
    __slots__ = ("index", "term", "conf_state")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    CONF_STATE_FIELD_NUMBER: _ClassVar[int]
    index: int
    term: int
    conf_state: RaftConfState
    def __init__(self, index: _Optional[int] = ..., term: _Optional[int] = ..., conf_state: _Optional[_Union[RaftConfState, _Mapping]] = ...) -> None: ...

class RaftMessage(_message.Message):
    __slots__ = ("type", "to_id", "from_id", "term", "log_term", "index", "entries", "commit", "snapshot", "snapshot_data", "reject", "reject_hint", "context")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TO_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LOG_TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_DATA_FIELD_NUMBER: _ClassVar[int]
    REJECT_FIELD_NUMBER: _ClassVar[int]
    REJECT_HINT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    type: RaftMessageType
    to_id: int
    from_id: int
    term: int
    log_term: int
    index: int
    entries: _containers.RepeatedCompositeFieldContainer[RaftEntry]
    commit: int
    snapshot: RaftSnapshotMetadata
    snapshot_data: bytes
    reject: bool
    reject_hint: int
    context: bytes
    def __init__(self, type: _Optional[_Union[RaftMessageType, str]] = ..., to_id: _Optional[int] = ..., from_id: _Optional[int] = ..., term: _Optional[int] = ..., log_term: _Optional[int] = ..., index: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[RaftEntry, _Mapping]]] = ..., commit: _Optional[int] = ..., snapshot: _Optional[_Union[RaftSnapshotMetadata, _Mapping]] = ..., snapshot_data: _Optional[bytes] = ..., reject: _Optional[bool] = ..., reject_hint: _Optional[int] = ..., context: _Optional[bytes] = ...) -> None: ...
