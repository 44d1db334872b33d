"""The Ready/Advance contract of RawNode, one behaviour per test."""

from __future__ import annotations

import random

import pytest
from tests.raft.cluster import Cluster, handle_ready, make_node

from cairn.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Role,
    SoftState,
)

MT = MessageType


def test_first_ready_persists_and_applies_the_bootstrap_configuration():
    node = make_node(1, [1, 2, 3])
    rd = node.ready()
    assert [e.index for e in rd.entries] == [1, 2, 3]
    assert all(e.kind is EntryKind.CONF_CHANGE and e.term == 0 for e in rd.entries)
    assert rd.committed_entries == rd.entries
    assert rd.hard_state == HardState(term=0, vote=0, commit=3)
    assert [ConfChange.decode(e.data) for e in rd.entries] == [
        ConfChange(ConfChangeType.ADD_VOTER, i) for i in (1, 2, 3)
    ]


def test_bootstrap_is_identical_on_every_founder():
    a = make_node(1, [3, 1, 2]).ready().entries
    b = make_node(2, [1, 2, 3]).ready().entries
    assert a == b


def test_no_ready_after_advance_when_nothing_happened():
    node = make_node(1, [1, 2, 3])
    handle_ready(node)
    assert not node.has_ready()


def test_ready_reports_hard_state_only_when_it_changed():
    node = make_node(1, [1, 2, 3])
    handle_ready(node)
    node.campaign()
    rd = handle_ready(node)
    assert rd.hard_state == HardState(term=1, vote=1, commit=3)
    node.tick()
    assert not node.has_ready()


def test_ready_reports_soft_state_on_role_change():
    node = make_node(1, [1])
    handle_ready(node)
    node.campaign()
    rd = handle_ready(node)
    assert rd.soft_state == SoftState(lead=1, role=Role.LEADER)


def test_vote_is_in_hard_state_of_the_ready_carrying_the_grant():
    node = make_node(2, [1, 2, 3])
    handle_ready(node)
    node.step(Message(MT.VOTE, to=2, frm=1, term=1, index=3, log_term=0))
    rd = node.ready()
    assert rd.hard_state is not None and rd.hard_state.vote == 1
    assert [m.type for m in rd.messages] == [MT.VOTE_RESP]
    assert rd.must_sync


def test_leader_entries_and_their_appends_come_in_the_same_ready():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose(b"x")
    rd = c.nodes[1].ready()
    assert [e.data for e in rd.entries] == [b"x"]
    assert any(m.type is MT.APP and m.entries and m.entries[0].data == b"x" for m in rd.messages)


def test_unadvanced_entries_are_not_in_storage():
    c = Cluster.new(3)
    c.elect(1)
    last = c.storages[1].last_index()
    c.nodes[1].propose(b"x")
    c.nodes[1].ready()
    assert c.storages[1].last_index() == last


def test_restart_from_storage_keeps_term_vote_log_and_commit():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    storage = c.storages[2]
    before = c.nodes[2].status()
    restarted = RawNode(Config(id=2, storage=storage, rng=random.Random(0), voters=(1, 2, 3)))
    after = restarted.status()
    assert (after.term, after.vote, after.commit) == (before.term, before.vote, before.commit)
    assert after.last_index == before.last_index
    # Not applied yet after restart (applied=0): committed entries are handed out again.
    rd = restarted.ready()
    assert rd.committed_entries[-1].data == b"x"


def test_restart_with_applied_skips_already_applied_entries():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    c.propose(1, b"y")
    applied = c.raft(2).log.applied
    restarted = RawNode(
        Config(id=2, storage=c.storages[2], rng=random.Random(0), applied=applied - 1)
    )
    assert [e.data for e in restarted.ready().committed_entries] == [b"y"]


def test_step_refuses_local_message_types():
    node = make_node(1, [1, 2, 3])
    for t in (MT.HUP, MT.BEAT, MT.CHECK_QUORUM, MT.UNREACHABLE, MT.SNAP_STATUS):
        with pytest.raises(ValueError):
            node.step(Message(t, to=1, frm=2))


def test_responses_from_non_members_are_ignored():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].step(Message(MT.APP_RESP, to=1, frm=9, term=1, index=100))
    assert 9 not in c.raft(1).tracker.progress


def test_propose_on_follower_without_leader_raises():
    node = make_node(2, [1, 2, 3])
    with pytest.raises(ProposalDropped):
        node.propose(b"x")


def test_status_of_leader_includes_progress_of_every_member():
    c = Cluster.new(3, learners=[4])
    c.elect(1)
    st = c.nodes[1].status()
    assert st.role is Role.LEADER and st.lead == 1
    assert set(st.progress) == {1, 2, 3, 4}
    assert st.progress[4].is_learner
    assert st.commit == st.applied == st.last_index


def test_status_of_follower_has_no_progress():
    c = Cluster.new(3)
    c.elect(1)
    st = c.nodes[2].status()
    assert st.lead == 1 and st.role is Role.FOLLOWER and st.progress == {}


def test_config_is_validated():
    with pytest.raises(ValueError):
        make_node(0, [1])
    with pytest.raises(ValueError):
        make_node(1, [1], election_tick=1, heartbeat_tick=1)


def test_same_seed_same_behaviour():
    def run(seed: int) -> list[int]:
        c = Cluster.new(5, seed=seed)
        c.tick_all(40)
        return [c.raft(i).term for i in c.nodes] + [c.leader() or 0]

    assert run(3) == run(3)


def test_restart_past_a_conf_change_rebuilds_the_configuration_from_the_log():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    c.stabilize()
    applied = c.raft(2).log.applied
    restarted = RawNode(Config(id=2, storage=c.storages[2], rng=random.Random(0), applied=applied))
    assert restarted.raft.tracker.voters == {1, 2, 3}
    assert restarted.raft.tracker.learners == {4}
    assert restarted.ready().committed_entries == []


def test_committed_entries_come_in_batches_when_capped():
    c = Cluster.new(3)
    c.elect(1)
    for i in range(10):
        c.propose(1, bytes(100) + bytes([i]))
    restarted = RawNode(
        Config(id=2, storage=c.storages[2], rng=random.Random(0), max_committed_size_per_ready=300)
    )
    batches = []
    while restarted.has_ready():
        rd = handle_ready(restarted)
        if rd.committed_entries:
            batches.append(sum(e.size() for e in rd.committed_entries))
    assert max(batches) <= 300 and len(batches) > 3
    assert restarted.status().applied == c.raft(2).log.committed


def test_restart_with_applied_beyond_persisted_commit_is_refused():
    c = Cluster.new(3)
    c.elect(1)
    with pytest.raises(ValueError, match="applied index"):
        RawNode(Config(id=2, storage=c.storages[2], rng=random.Random(0), applied=999))
