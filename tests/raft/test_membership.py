"""Learners and one-at-a-time membership changes, one behaviour per test."""

from __future__ import annotations

import pytest
from tests.raft.cluster import Cluster, handle_ready, make_node

from cairn.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    Role,
)

MT = MessageType
ADD, LEARNER, REMOVE = ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER, ConfChangeType.REMOVE


def add_node(c: Cluster, node_id: int, **kw) -> None:
    """Start an empty node that learns the configuration from the log it receives."""
    c.storages[node_id] = MemoryStorage()
    c.nodes[node_id] = make_node(node_id, [], storage=c.storages[node_id], **kw)
    c.applied[node_id] = []
    c.read_states[node_id] = []


def test_learner_receives_and_applies_the_log():
    c = Cluster.new(3, learners=[4])
    c.elect(1)
    c.propose(1, b"x")
    assert c.applied[4][-1] == b"x"


def test_learner_does_not_count_for_commit_quorum():
    c = Cluster.new(3, learners=[4])
    c.elect(1)
    c.isolate(2)
    c.isolate(3)
    commit = c.raft(1).log.committed
    c.propose(1, b"x")
    assert c.raft(4).log.last_index() == c.raft(1).log.last_index()
    assert c.raft(1).log.committed == commit


def test_learner_vote_does_not_count():
    node = make_node(1, [1, 2, 3], learners=[4])
    node.campaign()
    node.step(Message(MT.VOTE_RESP, to=1, frm=4, term=1))
    assert node.raft.role is Role.CANDIDATE
    node.step(Message(MT.VOTE_RESP, to=1, frm=2, term=1))
    assert node.raft.role is Role.LEADER


def test_candidate_does_not_ask_learners_for_votes():
    node = make_node(1, [1, 2, 3], learners=[4])
    node.campaign()
    assert 4 not in {m.to for m in node.raft.msgs}


def test_add_learner_then_promote_to_voter():
    c = Cluster.new(3)
    c.elect(1)
    add_node(c, 4)
    c.nodes[1].propose_conf_change(ConfChange(LEARNER, 4))
    c.stabilize()
    c.tick_all(2)
    assert c.raft(1).tracker.learners == {4}
    assert c.raft(4).log.last_index() == c.raft(1).log.last_index()
    c.nodes[1].propose_conf_change(ConfChange(ADD, 4))
    c.stabilize()
    assert c.raft(1).tracker.voters == {1, 2, 3, 4}
    assert c.raft(4).tracker.voters == {1, 2, 3, 4}
    # Node 4 now counts: with 2 and 3 down, 1 and 4 are not a quorum of 4.
    c.isolate(2)
    c.isolate(3)
    commit = c.raft(1).log.committed
    c.propose(1, b"y")
    assert c.raft(1).log.committed == commit


def test_conf_change_takes_effect_only_when_applied():
    node = make_node(1, [1])
    node.campaign()
    handle_ready(node)  # the bootstrap entry is applied
    node.propose_conf_change(ConfChange(ADD, 2))
    assert node.raft.tracker.voters == {1}
    rd = node.ready()
    cc_entries = [e for e in rd.committed_entries if e.data and ConfChange.decode(e.data).node_id]
    assert cc_entries
    assert node.raft.tracker.voters == {1}
    cs = node.apply_conf_change(ConfChange.decode(cc_entries[0].data))
    assert cs == ConfState((1, 2), ())
    node.advance(rd)


def test_only_one_conf_change_may_be_pending():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].propose_conf_change(ConfChange(LEARNER, 4))
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose_conf_change(ConfChange(LEARNER, 5))
    c.nodes[1].propose(b"normal entries are still fine")


def test_next_conf_change_accepted_once_previous_applied():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(LEARNER, 4))
    c.stabilize()
    c.nodes[1].propose_conf_change(ConfChange(LEARNER, 5))
    c.stabilize()
    assert c.raft(1).tracker.learners == {4, 5}


def test_removing_a_voter_shrinks_the_quorum():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 3))
    c.stabilize()
    assert c.raft(1).tracker.voters == {1, 2}
    c.isolate(3)
    c.propose(1, b"x")
    assert c.applied[1][-1] == b"x"


def test_removing_a_voter_can_commit_pending_entries():
    c = Cluster.new(4)
    c.elect(1)
    c.isolate(3)
    c.isolate(4)
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 4))
    c.stabilize()
    assert c.raft(1).tracker.voters == {1, 2, 3, 4}  # not committed: 2 of 4 is no quorum
    c.heal()
    c.isolate(4)
    c.tick_all(2)
    assert c.raft(1).tracker.voters == {1, 2, 3}


def test_removed_leader_steps_down():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    c.stabilize()
    assert c.raft(1).role is Role.FOLLOWER
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"x")
    for _ in range(100):
        if any(c.raft(i).role is Role.LEADER for i in (2, 3)):
            break
        c.tick_all()
    assert c.raft(2).tracker.voters == {2, 3}
    assert any(c.raft(i).role is Role.LEADER for i in (2, 3))


def test_node_does_not_campaign_with_unapplied_committed_conf_change():
    node = make_node(1, [1])
    node.campaign()
    handle_ready(node)
    node.propose_conf_change(ConfChange(ADD, 2))
    r = node.raft
    r.become_follower(r.term, 0)
    assert r.log.committed > r.log.applied
    node.campaign()
    assert r.role is Role.FOLLOWER


def test_demoting_a_voter_to_learner():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].propose_conf_change(ConfChange(LEARNER, 3))
    c.stabilize()
    assert c.raft(1).tracker.voters == {1, 2} and c.raft(1).tracker.learners == {3}
    c.propose(1, b"x")
    assert c.applied[3][-1] == b"x"


def test_conf_change_round_trips_through_entry_data():
    cc = ConfChange(ADD, 0xDEADBEEF, b"peer-urls")
    assert ConfChange.decode(cc.encode()) == cc
