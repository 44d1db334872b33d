"""Raft values to bytes and back, for the peer transport (messages) and for persistence.

The Raft core deals in plain dataclasses and knows nothing about wire formats; the member
encodes with cairn's raft.proto. Local message types never cross the network, so encoding one
is a programming error and raises.
"""

from __future__ import annotations

from cairn.proto import raft_pb2 as rpb
from cairn.raft.types import (
    ConfState,
    Entry,
    EntryKind,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

_TYPE_TO_WIRE: dict[MessageType, int] = {
    MessageType.PROP: rpb.RAFT_MSG_PROP,
    MessageType.APP: rpb.RAFT_MSG_APP,
    MessageType.APP_RESP: rpb.RAFT_MSG_APP_RESP,
    MessageType.VOTE: rpb.RAFT_MSG_VOTE,
    MessageType.VOTE_RESP: rpb.RAFT_MSG_VOTE_RESP,
    MessageType.PRE_VOTE: rpb.RAFT_MSG_PRE_VOTE,
    MessageType.PRE_VOTE_RESP: rpb.RAFT_MSG_PRE_VOTE_RESP,
    MessageType.SNAP: rpb.RAFT_MSG_SNAP,
    MessageType.HEARTBEAT: rpb.RAFT_MSG_HEARTBEAT,
    MessageType.HEARTBEAT_RESP: rpb.RAFT_MSG_HEARTBEAT_RESP,
    MessageType.TRANSFER_LEADER: rpb.RAFT_MSG_TRANSFER_LEADER,
    MessageType.TIMEOUT_NOW: rpb.RAFT_MSG_TIMEOUT_NOW,
    MessageType.READ_INDEX: rpb.RAFT_MSG_READ_INDEX,
    MessageType.READ_INDEX_RESP: rpb.RAFT_MSG_READ_INDEX_RESP,
}
_WIRE_TO_TYPE = {wire: kind for kind, wire in _TYPE_TO_WIRE.items()}

_KIND_TO_WIRE = {
    EntryKind.NORMAL: rpb.RAFT_ENTRY_NORMAL,
    EntryKind.CONF_CHANGE: rpb.RAFT_ENTRY_CONF_CHANGE,
}
_WIRE_TO_KIND = {wire: kind for kind, wire in _KIND_TO_WIRE.items()}


class CodecError(ValueError):
    """Bytes from a peer that are not a Raft message cairn understands."""


def encode_conf_state(cs: ConfState) -> rpb.RaftConfState:
    return rpb.RaftConfState(voters=cs.voters, learners=cs.learners)


def decode_conf_state(wire: rpb.RaftConfState) -> ConfState:
    return ConfState(voters=tuple(wire.voters), learners=tuple(wire.learners))


def _encode_entry(entry: Entry) -> rpb.RaftEntry:
    return rpb.RaftEntry(
        index=entry.index, term=entry.term, kind=_KIND_TO_WIRE[entry.kind], data=entry.data
    )


def _decode_entry(wire: rpb.RaftEntry) -> Entry:
    kind = _WIRE_TO_KIND.get(wire.kind)
    if kind is None:
        raise CodecError(f"unknown entry kind {wire.kind}")
    return Entry(index=wire.index, term=wire.term, data=wire.data, kind=kind)


def encode_message(m: Message) -> bytes:
    """The bytes a peer decodes back into an equal Message."""
    wire_type = _TYPE_TO_WIRE.get(m.type)
    if wire_type is None:
        raise ValueError(f"{m.type} is local to a member and never sent to a peer")
    wire = rpb.RaftMessage(
        type=wire_type,
        to_id=m.to,
        from_id=m.frm,
        term=m.term,
        log_term=m.log_term,
        index=m.index,
        entries=[_encode_entry(e) for e in m.entries],
        commit=m.commit,
        reject=m.reject,
        reject_hint=m.reject_hint,
        context=m.context,
    )
    if m.snapshot is not None:
        meta = m.snapshot.metadata
        wire.snapshot.index = meta.index
        wire.snapshot.term = meta.term
        wire.snapshot.conf_state.CopyFrom(encode_conf_state(meta.conf_state))
        wire.snapshot_data = m.snapshot.data
    return wire.SerializeToString()


def decode_message(raw: bytes) -> Message:
    try:
        wire = rpb.RaftMessage.FromString(raw)
    except Exception as error:  # protobuf raises DecodeError; anything else is as bad
        raise CodecError(f"not a Raft message: {error}") from None
    kind = _WIRE_TO_TYPE.get(wire.type)
    if kind is None:
        raise CodecError(f"unknown Raft message type {wire.type}")
    snapshot = None
    if wire.HasField("snapshot"):
        snapshot = Snapshot(
            metadata=SnapshotMetadata(
                index=wire.snapshot.index,
                term=wire.snapshot.term,
                conf_state=decode_conf_state(wire.snapshot.conf_state),
            ),
            data=wire.snapshot_data,
        )
    return Message(
        type=kind,
        to=wire.to_id,
        frm=wire.from_id,
        term=wire.term,
        log_term=wire.log_term,
        index=wire.index,
        entries=tuple(_decode_entry(e) for e in wire.entries),
        commit=wire.commit,
        snapshot=snapshot,
        reject=wire.reject,
        reject_hint=wire.reject_hint,
        context=wire.context,
    )
