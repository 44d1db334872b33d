"""Pre-vote and check-quorum (leader lease), one behaviour per test."""

from __future__ import annotations

from tests.raft.cluster import Cluster, make_node

from cairn.raft import Entry, HardState, MemoryStorage, Message, MessageType, Role

MT = MessageType


def take(node) -> list[Message]:
    msgs, node.raft.msgs = node.raft.msgs, []
    return msgs


def test_pre_vote_does_not_bump_the_term():
    node = make_node(1, [1, 2, 3], pre_vote=True)
    node.campaign()
    assert node.raft.role is Role.PRE_CANDIDATE
    assert node.raft.term == 0 and node.raft.vote == 0
    msgs = take(node)
    assert {m.type for m in msgs} == {MT.PRE_VOTE}
    assert all(m.term == 1 for m in msgs)  # the term it would campaign in


def test_granting_a_pre_vote_changes_neither_term_nor_vote():
    node = make_node(2, [1, 2, 3], pre_vote=True)
    node.step(Message(MT.PRE_VOTE, to=2, frm=1, term=1, index=3, log_term=0))
    [resp] = take(node)
    assert resp.type is MT.PRE_VOTE_RESP and not resp.reject and resp.term == 1
    assert node.raft.term == 0 and node.raft.vote == 0


def test_pre_candidate_becomes_candidate_after_quorum_of_pre_votes():
    c = Cluster.new(3, pre_vote=True)
    c.elect(1)
    assert c.raft(1).term == 1


def test_pre_vote_rejected_for_stale_log():
    storage = MemoryStorage()
    storage.append([Entry(1, 1), Entry(2, 2)])
    storage.set_hard_state(HardState(term=2))
    node = make_node(2, [1, 2, 3], storage=storage, pre_vote=True)
    node.step(Message(MT.PRE_VOTE, to=2, frm=1, term=3, index=1, log_term=1))
    [resp] = take(node)
    assert resp.reject and resp.term == 2


def test_partitioned_node_with_pre_vote_does_not_disrupt_leader_on_rejoin():
    c = Cluster.new(3, pre_vote=True, check_quorum=True)
    c.elect(1)
    c.propose(1, b"x")
    c.isolate(3)
    for _ in range(100):
        c.tick(3)
        c.stabilize()
    assert c.raft(3).term == 1  # it never managed to bump its term
    c.heal()
    c.tick_all(30)
    assert c.raft(1).role is Role.LEADER and c.raft(1).term == 1
    assert c.raft(3).lead == 1


def test_partitioned_node_without_pre_vote_disrupts_on_rejoin():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(3)
    for _ in range(30):
        c.tick(3)
        c.stabilize()
    assert c.raft(3).term > 1
    c.heal()
    c.tick_all(50)
    assert c.raft(1).term > 1  # the leader was forced into a new term


def test_check_quorum_leader_steps_down_when_isolated():
    c = Cluster.new(3, check_quorum=True)
    c.elect(1)
    c.isolate(1)
    for _ in range(2 * c.raft(1).election_timeout + 1):
        c.tick(1)
        c.stabilize()
    assert c.raft(1).role is Role.FOLLOWER


def test_check_quorum_leader_stays_while_quorum_answers():
    c = Cluster.new(3, check_quorum=True)
    c.elect(1)
    c.isolate(3)
    for _ in range(5 * c.raft(1).election_timeout):
        c.tick(1)
        c.stabilize()
    assert c.raft(1).role is Role.LEADER


def test_leader_without_check_quorum_stays_leader_when_isolated():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(1)
    for _ in range(5 * c.raft(1).election_timeout):
        c.tick(1)
        c.stabilize()
    assert c.raft(1).role is Role.LEADER


def test_follower_with_live_leader_ignores_vote_requests_under_check_quorum():
    c = Cluster.new(3, check_quorum=True)
    c.elect(1)
    follower = c.nodes[2]
    follower.step(Message(MT.VOTE, to=2, frm=3, term=5, index=100, log_term=100))
    assert follower.raft.term == 1 and take(follower) == []


def test_follower_grants_vote_after_lease_expired():
    c = Cluster.new(3, check_quorum=True)
    c.elect(1)
    c.tick(2, c.raft(2).election_timeout)
    take(c.nodes[2])
    c.nodes[2].step(Message(MT.VOTE, to=2, frm=3, term=5, index=100, log_term=100))
    [resp] = take(c.nodes[2])
    assert not resp.reject and c.raft(2).term == 5


def test_stale_leader_learns_higher_term_from_response_to_its_append():
    c = Cluster.new(3, check_quorum=True, pre_vote=True)
    c.elect(1)
    c.raft(3).become_follower(7, 0)  # e.g. it was partitioned and campaigned without pre-vote
    c.sent.clear()
    c.raft(1).bcast_heartbeat()
    c.stabilize()
    assert any(m.type is MT.APP_RESP and m.frm == 3 and m.term == 7 for m in c.sent)
    assert c.raft(1).term == 7 and c.raft(1).role is Role.FOLLOWER


def test_pre_candidate_steps_down_when_leader_heard():
    c = Cluster.new(3, pre_vote=True)
    c.elect(1)
    c.isolate(3)
    c.nodes[3].campaign()
    c.stabilize()
    assert c.raft(3).role is Role.PRE_CANDIDATE
    c.heal()
    c.raft(1).bcast_heartbeat()
    c.stabilize()
    assert c.raft(3).role is Role.FOLLOWER and c.raft(3).lead == 1
