"""Raft messages survive the trip to a peer unchanged; local messages never make it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.member.raft_codec import CodecError, decode_message, encode_message
from cairn.raft.types import (
    LOCAL,
    ConfState,
    Entry,
    EntryKind,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

ids = st.integers(min_value=0, max_value=2**64 - 1)
small = st.integers(min_value=0, max_value=2**63)
entries = st.builds(
    Entry, index=small, term=small, data=st.binary(max_size=64), kind=st.sampled_from(EntryKind)
)
conf_states = st.builds(
    ConfState,
    voters=st.lists(ids, max_size=5).map(tuple),
    learners=st.lists(ids, max_size=3).map(tuple),
)
snapshots = st.builds(
    Snapshot,
    metadata=st.builds(SnapshotMetadata, index=small, term=small, conf_state=conf_states),
    data=st.binary(max_size=64),
)
wire_types = st.sampled_from([t for t in MessageType if t not in LOCAL])
messages = st.builds(
    Message,
    type=wire_types,
    to=ids,
    frm=ids,
    term=small,
    log_term=small,
    index=small,
    entries=st.lists(entries, max_size=4).map(tuple),
    commit=small,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=small,
    context=st.binary(max_size=16),
)


@given(messages)
def test_every_network_message_round_trips(message: Message) -> None:
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize("kind", sorted(LOCAL, key=lambda t: t.value))
def test_local_messages_cannot_be_encoded(kind: MessageType) -> None:
    with pytest.raises(ValueError, match="local"):
        encode_message(Message(kind, to=1, frm=2))


def test_garbage_from_a_peer_is_a_codec_error() -> None:
    with pytest.raises(CodecError):
        decode_message(b"\xff\xff\xff")


def test_unknown_message_type_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="unknown Raft message type"):
        decode_message(bytes([0x08, 0x63]))  # type = 99
