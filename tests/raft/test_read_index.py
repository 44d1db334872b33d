"""ReadIndex: linearizable reads confirmed by a heartbeat round, one behaviour per test."""

from __future__ import annotations

from tests.raft.cluster import Cluster, make_node

from cairn.raft import Message, MessageType, ReadState, Role

MT = MessageType


def test_leader_serves_read_after_quorum_acks_heartbeat_round():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    c.nodes[1].read_index(b"r")
    c.stabilize()
    assert c.read_states[1] == [ReadState(c.raft(1).log.committed, b"r")]


def test_read_waits_for_quorum_of_acks():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(1)
    c.nodes[1].read_index(b"r")
    c.stabilize()
    assert c.read_states[1] == []
    c.heal()
    c.tick_all(1)
    assert c.read_states[1] == []  # plain heartbeats do not confirm the queued round
    c.nodes[1].read_index(b"r2")
    c.stabilize()
    assert [rs.ctx for rs in c.read_states[1]] == [b"r", b"r2"]


def test_read_index_is_the_commit_index_when_requested():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"a")
    commit = c.raft(1).log.committed
    c.nodes[1].read_index(b"r")
    c.nodes[1].propose(b"b")  # committed later, not needed by this read
    c.stabilize()
    assert c.read_states[1][0].index == commit


def test_follower_forwards_read_to_leader_and_gets_read_state():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    c.nodes[3].read_index(b"f")
    c.stabilize()
    assert c.read_states[3] == [ReadState(c.raft(1).log.committed, b"f")]


def test_follower_without_leader_drops_read():
    node = make_node(2, [1, 2, 3])
    node.read_index(b"r")
    rd = node.ready()
    assert rd.read_states == [] and rd.messages == []


def test_read_index_on_new_leader_waits_until_it_commits_in_its_term():
    c = Cluster.new(3)
    c.elect(1)
    c.drop_types = {MT.APP_RESP}
    c.elect(2)  # its empty entry cannot commit: acks are dropped
    assert c.raft(2).log.term(c.raft(2).log.committed) != c.raft(2).term
    c.nodes[2].read_index(b"early")
    c.stabilize()
    assert c.read_states[2] == []
    c.drop_types = set()
    c.tick_all(2)
    assert c.read_states[2] == [ReadState(c.raft(2).log.committed, b"early")]
    assert c.raft(2).log.term(c.read_states[2][0].index) == c.raft(2).term


def test_reads_arriving_together_share_one_heartbeat_round():
    c = Cluster.new(3)
    c.elect(1)
    c.sent.clear()
    for i in range(5):
        c.nodes[1].read_index(f"r{i}".encode())
    c.stabilize()
    rounds = {m.context for m in c.sent if m.type is MT.HEARTBEAT and m.context}
    assert len(rounds) == 1
    assert len(c.read_states[1]) == 5


def test_single_voter_serves_read_immediately():
    node = make_node(1, [1])
    node.campaign()
    node.read_index(b"r")
    rd = node.ready()
    assert rd.read_states == [ReadState(node.raft.log.committed, b"r")]


def test_deposed_leader_does_not_serve_pending_reads():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(1)
    c.nodes[1].read_index(b"r")
    c.stabilize()
    c.raft(1).step(Message(MT.APP, to=1, frm=2, term=9))
    assert c.raft(1).role is Role.FOLLOWER
    c.heal()
    c.nodes[2].campaign()  # loses to node 1's higher term, adopts it
    c.stabilize()
    c.elect(2)
    c.tick_all(3)
    assert c.read_states[1] == []


def test_stale_heartbeat_ack_from_old_round_does_not_confirm_new_one():
    c = Cluster.new(5)
    c.elect(1)
    c.nodes[1].read_index(b"a")
    c.nodes[1].ready()  # round 1 starts; its heartbeats are lost
    c.nodes[1].read_index(b"b")
    rd = c.nodes[1].ready()  # round 2
    ctx2 = next(m.context for m in rd.messages if m.type is MT.HEARTBEAT)
    # Acks for the *first* round only: not enough for anything after it.
    ctx1 = (int.from_bytes(ctx2, "big") - 1).to_bytes(8, "big")
    for f in (2, 3):
        c.raft(1).step(Message(MT.HEARTBEAT_RESP, to=1, frm=f, term=1, context=ctx1))
    assert [rs.ctx for rs in c.raft(1).read_states] == [b"a"]
    for f in (2, 3):
        c.raft(1).step(Message(MT.HEARTBEAT_RESP, to=1, frm=f, term=1, context=ctx2))
    assert [rs.ctx for rs in c.raft(1).read_states] == [b"a", b"b"]
