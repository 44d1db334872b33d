"""Leader election rules, one behaviour per test."""

from __future__ import annotations

from tests.raft.cluster import Cluster, make_node

from cairn.raft import Entry, HardState, MemoryStorage, Message, MessageType, Role

MT = MessageType


def take(node) -> list[Message]:
    msgs, node.raft.msgs = node.raft.msgs, []
    return msgs


def test_follower_starts_election_after_randomized_timeout():
    for seed in range(20):
        node = make_node(1, [1, 2, 3], seed=seed)
        timeout = node.raft.randomized_election_timeout
        assert 10 <= timeout < 20
        for _ in range(timeout - 1):
            node.tick()
        assert node.raft.role is Role.FOLLOWER
        node.tick()
        assert node.raft.role is Role.CANDIDATE
        assert node.raft.term == 1


def test_randomized_timeouts_differ_between_nodes():
    timeouts = {
        make_node(i, [1, 2, 3], seed=7).raft.randomized_election_timeout for i in range(1, 30)
    }
    assert len(timeouts) > 1


def test_candidate_votes_for_itself_and_requests_votes():
    node = make_node(1, [1, 2, 3])
    node.campaign()
    msgs = take(node)
    assert node.raft.vote == 1
    assert sorted(m.to for m in msgs if m.type is MT.VOTE) == [2, 3]
    assert all(m.term == 1 for m in msgs)


def test_single_node_becomes_leader_at_once():
    node = make_node(1, [1])
    node.campaign()
    assert node.raft.role is Role.LEADER
    assert node.raft.log.committed == 2  # bootstrap entry 1, then its empty entry


def test_candidate_with_quorum_of_votes_becomes_leader():
    c = Cluster.new(3)
    c.elect(1)
    assert c.raft(2).lead == 1 and c.raft(3).lead == 1


def test_leader_appends_empty_entry_of_its_term_on_election():
    c = Cluster.new(3)
    c.elect(1)
    entries = c.raft(1).log.all_entries()
    assert entries[-1] == Entry(4, 1, b"")  # after the 3 bootstrap entries


def test_node_grants_at_most_one_vote_per_term():
    node = make_node(1, [1, 2, 3])
    node.step(Message(MT.VOTE, to=1, frm=2, term=1, index=3, log_term=0))
    node.step(Message(MT.VOTE, to=1, frm=3, term=1, index=3, log_term=0))
    resps = [m for m in take(node) if m.type is MT.VOTE_RESP]
    assert [(m.to, m.reject) for m in resps] == [(2, False), (3, True)]


def test_node_repeats_grant_to_same_candidate():
    node = make_node(1, [1, 2, 3])
    for _ in range(2):
        node.step(Message(MT.VOTE, to=1, frm=2, term=1, index=3))
    assert [m.reject for m in take(node)] == [False, False]


def test_candidate_with_stale_log_loses():
    storage = MemoryStorage()
    storage.append([Entry(1, 1), Entry(2, 2)])
    storage.set_hard_state(HardState(term=2))
    voter = make_node(1, [1, 2, 3], storage=storage)
    # Candidate's last entry is from an older term, although its log is longer.
    voter.step(Message(MT.VOTE, to=1, frm=2, term=3, index=5, log_term=1))
    # Same last term but shorter log.
    voter.step(Message(MT.VOTE, to=1, frm=3, term=3, index=1, log_term=2))
    assert [m.reject for m in take(voter)] == [True, True]
    assert voter.raft.vote == 0


def test_candidate_with_longer_log_of_same_term_wins_vote():
    storage = MemoryStorage()
    storage.append([Entry(1, 1)])
    voter = make_node(1, [1, 2, 3], storage=storage)
    voter.step(Message(MT.VOTE, to=1, frm=2, term=2, index=2, log_term=1))
    assert [m.reject for m in take(voter)] == [False]


def test_higher_term_message_turns_leader_into_follower():
    c = Cluster.new(3)
    c.elect(1)
    c.raft(1).step(Message(MT.APP, to=1, frm=2, term=5, index=0, log_term=0))
    assert c.raft(1).role is Role.FOLLOWER
    assert c.raft(1).term == 5 and c.raft(1).lead == 2


def test_stale_term_messages_are_ignored():
    c = Cluster.new(3)
    c.elect(1)
    c.elect(2)
    r1 = c.raft(1)
    r1.step(Message(MT.HEARTBEAT, to=1, frm=3, term=1, commit=0))
    assert r1.lead == 2


def test_candidate_steps_down_when_a_quorum_rejects():
    node = make_node(1, [1, 2, 3])
    node.campaign()
    take(node)
    node.step(Message(MT.VOTE_RESP, to=1, frm=2, term=1, reject=True))
    node.step(Message(MT.VOTE_RESP, to=1, frm=3, term=1, reject=True))
    assert node.raft.role is Role.FOLLOWER


def test_candidate_becomes_follower_on_append_from_leader_of_same_term():
    node = make_node(1, [1, 2, 3])
    node.campaign()
    node.step(Message(MT.APP, to=1, frm=2, term=1, index=0, log_term=0))
    assert node.raft.role is Role.FOLLOWER and node.raft.lead == 2


def test_split_vote_resolves_eventually():
    c = Cluster.new(5)
    for i in c.nodes:
        c.nodes[i].campaign()
    c.stabilize()
    for _ in range(200):
        if c.leader() is not None:
            break
        c.tick_all()
    assert c.leader() is not None


def test_leader_does_not_campaign_on_hup():
    c = Cluster.new(3)
    c.elect(1)
    term = c.raft(1).term
    c.nodes[1].campaign()
    assert c.raft(1).term == term and c.raft(1).role is Role.LEADER


def test_learner_does_not_campaign():
    node = make_node(4, [1, 2, 3], learners=[4])
    for _ in range(100):
        node.tick()
    assert node.raft.role is Role.FOLLOWER and node.raft.term == 0


def test_restarted_node_keeps_term_and_vote():
    storage = MemoryStorage()
    storage.set_hard_state(HardState(term=4, vote=3, commit=0))
    node = make_node(1, [1, 2, 3], storage=storage)
    assert (node.raft.term, node.raft.vote) == (4, 3)
    node.step(Message(MT.VOTE, to=1, frm=2, term=4))
    assert take(node)[0].reject
