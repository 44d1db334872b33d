"""Leadership transfer (MsgTimeoutNow), one behaviour per test."""

from __future__ import annotations

import pytest
from tests.raft.cluster import Cluster

from cairn.raft import MessageType, ProposalDropped, Role

MT = MessageType


def test_transfer_to_up_to_date_follower_makes_it_leader():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    c.nodes[1].transfer_leadership(2)
    c.stabilize()
    assert c.raft(2).role is Role.LEADER and c.raft(2).term == 2
    assert c.raft(1).role is Role.FOLLOWER and c.raft(1).lead == 2


def test_transfer_sends_timeout_now_to_the_transferee():
    c = Cluster.new(3)
    c.elect(1)
    c.sent.clear()
    c.nodes[1].transfer_leadership(3)
    c.stabilize()
    assert [m.to for m in c.sent if m.type is MT.TIMEOUT_NOW] == [3]


def test_leader_refuses_proposals_during_transfer():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leadership(2)
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"x")


def test_transfer_to_lagging_follower_first_catches_it_up():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.propose(1, f"x{i}".encode())
    c.heal()
    assert c.raft(3).log.last_index() < c.raft(1).log.last_index()
    c.sent.clear()
    c.nodes[1].transfer_leadership(3)
    c.stabilize()
    first_timeout = next(i for i, m in enumerate(c.sent) if m.type is MT.TIMEOUT_NOW)
    assert any(m.type is MT.APP and m.to == 3 for m in c.sent[:first_timeout])
    assert c.raft(3).role is Role.LEADER
    assert b"x4" in c.applied[3]


def test_transfer_abandoned_after_election_timeout_accepts_proposals_again():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leadership(2)
    assert c.raft(1).lead_transferee == 2
    c.tick(1, c.raft(1).election_timeout)
    c.stabilize()
    assert c.raft(1).lead_transferee == 0
    c.nodes[1].propose(b"ok")


def test_transfer_to_self_is_ignored():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[1].transfer_leadership(1)
    assert c.raft(1).lead_transferee == 0


def test_transfer_to_learner_is_ignored():
    c = Cluster.new(3, learners=[4])
    c.elect(1)
    c.nodes[1].transfer_leadership(4)
    c.stabilize()
    assert c.raft(1).role is Role.LEADER and c.raft(1).lead_transferee == 0


def test_follower_forwards_transfer_request_to_leader():
    c = Cluster.new(3)
    c.elect(1)
    c.nodes[3].transfer_leadership(3)
    c.stabilize()
    assert c.raft(3).role is Role.LEADER


def test_transfer_works_despite_leader_lease_under_check_quorum():
    c = Cluster.new(3, check_quorum=True, pre_vote=True)
    c.elect(1)
    c.nodes[1].transfer_leadership(2)
    c.stabilize()
    assert c.raft(2).role is Role.LEADER


def test_new_transfer_target_replaces_pending_one():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(2)
    c.nodes[1].transfer_leadership(2)
    c.heal()
    c.isolate(2)  # 2 stays unreachable; retarget to 3
    c.nodes[1].transfer_leadership(3)
    c.stabilize()
    assert c.raft(3).role is Role.LEADER
