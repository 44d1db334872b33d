"""Log replication, commit and flow-control rules, one behaviour per test."""

from __future__ import annotations

from tests.raft.cluster import Cluster, make_node

from cairn.raft import Entry, HardState, MemoryStorage, Message, MessageType, Role
from cairn.raft.progress import Inflights, Progress, ProgressState

MT = MessageType


def take(node) -> list[Message]:
    msgs, node.raft.msgs = node.raft.msgs, []
    return msgs


def follower_with(entries: list[Entry], term: int, commit: int = 0):
    storage = MemoryStorage()
    storage.append(entries)
    storage.set_hard_state(HardState(term=term, commit=commit))
    return make_node(2, [1, 2, 3], storage=storage)


def test_proposal_is_replicated_and_committed_everywhere():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(1, b"x")
    for i in c.nodes:
        assert c.applied[i][-1] == b"x"


def test_follower_forwards_proposal_to_leader():
    c = Cluster.new(3)
    c.elect(1)
    c.propose(3, b"via-follower")
    assert c.applied[1][-1] == b"via-follower"


def test_proposal_without_leader_is_dropped():
    import pytest

    from cairn.raft import ProposalDropped

    node = make_node(1, [1, 2, 3])
    with pytest.raises(ProposalDropped):
        node.propose(b"x")


def test_follower_rejects_append_whose_prev_entry_does_not_match():
    node = follower_with([Entry(1, 1), Entry(2, 1)], term=2)
    node.step(Message(MT.APP, to=2, frm=1, term=2, index=2, log_term=2, entries=(Entry(3, 2),)))
    [resp] = take(node)
    assert resp.type is MT.APP_RESP and resp.reject and resp.index == 2
    assert node.raft.log.last_index() == 2


def test_reject_hint_points_below_entries_of_higher_term():
    # Follower has many entries of term 3 the leader (term 2 at those indexes) never had.
    node = follower_with([Entry(1, 1)] + [Entry(i, 3) for i in range(2, 10)], term=3)
    node.step(Message(MT.APP, to=2, frm=1, term=4, index=9, log_term=2))
    [resp] = take(node)
    assert resp.reject and resp.reject_hint == 1 and resp.log_term == 1


def test_reject_hint_is_capped_at_follower_last_index():
    node = follower_with([Entry(1, 1), Entry(2, 1)], term=1)
    node.step(Message(MT.APP, to=2, frm=1, term=2, index=50, log_term=2))
    [resp] = take(node)
    assert resp.reject and resp.reject_hint == 2 and resp.log_term == 1


def test_follower_truncates_conflicting_uncommitted_suffix():
    node = follower_with([Entry(1, 1), Entry(2, 1), Entry(3, 1)], term=1, commit=1)
    node.step(
        Message(MT.APP, to=2, frm=1, term=2, index=1, log_term=1, entries=(Entry(2, 2),), commit=1)
    )
    assert [(e.index, e.term) for e in node.raft.log.all_entries()] == [(1, 1), (2, 2)]
    [resp] = take(node)
    assert not resp.reject and resp.index == 2


def test_follower_ignores_append_duplicating_what_it_has():
    node = follower_with([Entry(1, 1), Entry(2, 1), Entry(3, 1)], term=1)
    node.step(Message(MT.APP, to=2, frm=1, term=1, index=0, log_term=0, entries=(Entry(1, 1),)))
    assert node.raft.log.last_index() == 3  # a stale, shorter append does not truncate


def test_follower_commit_is_bounded_by_what_the_append_covers():
    node = follower_with([Entry(1, 1), Entry(2, 1), Entry(3, 9)], term=1)
    node.step(Message(MT.APP, to=2, frm=1, term=2, index=1, log_term=1, commit=3))
    assert node.raft.log.committed == 1


def test_leader_fast_backtracks_divergent_follower():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(3)
    for i in range(20):
        c.propose(1, f"a{i}".encode())
    # Node 3 holds a long uncommitted tail of a term the leader never saw.
    r3 = c.raft(3)
    r3.become_follower(2, 0)
    r3.log.append([Entry(i, 2, b"junk") for i in range(5, 25)])
    c.stabilize()
    c.heal()
    c.sent.clear()
    c.raft(1).become_follower(1, 0)
    c.elect(1)  # term 2: node 3's longer log of term 2 does not stop node 2 electing node 1
    c.propose(1, b"after")
    rejects = [m for m in c.sent if m.type is MT.APP_RESP and m.frm == 3 and m.reject]
    assert len(rejects) <= 3
    assert c.applied[3][-1] == b"after"
    assert [e.term for e in c.raft(3).log.all_entries()] == [
        e.term for e in c.raft(1).log.all_entries()
    ]


def test_leader_commits_only_entries_of_its_own_term_by_counting():
    # Leader of term 3 holds an entry from term 2 that a quorum has; it must not be committed
    # by counting replicas, only once an entry of term 3 is replicated.
    storage = MemoryStorage()
    storage.append([Entry(1, 1), Entry(2, 2)])
    storage.set_hard_state(HardState(term=2, commit=1))
    leader = make_node(1, [1, 2, 3], storage=storage)
    leader.raft.become_candidate()
    leader.raft.become_leader()  # term 3, appends entry 3 of term 3
    take(leader)
    leader.step(Message(MT.APP_RESP, to=1, frm=2, term=3, index=2))
    assert leader.raft.log.committed == 1
    leader.step(Message(MT.APP_RESP, to=1, frm=2, term=3, index=3))
    assert leader.raft.log.committed == 3


def test_heartbeat_carries_commit_no_higher_than_follower_match():
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(3)
    c.propose(1, b"x")
    c.heal()
    c.sent.clear()
    c.drop_types = {MT.APP}
    c.raft(1).bcast_heartbeat()
    c.stabilize()
    hb = {m.to: m.commit for m in c.sent if m.type is MT.HEARTBEAT}
    assert hb[2] == c.raft(1).log.committed
    assert hb[3] < c.raft(1).log.committed
    assert c.raft(3).log.committed <= hb[3]


def test_heartbeat_advances_follower_commit():
    c = Cluster.new(3)
    c.elect(1)
    c.drop_types = {MT.APP_RESP}
    c.nodes[1].propose(b"x")
    c.stabilize()
    c.drop_types = set()
    c.raft(1).log.commit_to(c.raft(1).log.last_index())
    c.raft(1).tracker.progress[2].match = c.raft(1).log.last_index()
    c.raft(1).bcast_heartbeat()
    c.stabilize()
    assert c.raft(2).log.committed == c.raft(1).log.committed


def test_new_follower_progress_starts_in_probe_and_moves_to_replicate_on_ack():
    c = Cluster.new(3)
    c.nodes[1].campaign()
    pr = c.raft(1).tracker.progress[2]
    assert pr.state is ProgressState.PROBE
    c.stabilize()
    assert pr.state is ProgressState.REPLICATE


def test_probe_state_sends_one_append_until_answered():
    c = Cluster.new(3)
    c.nodes[1].campaign()
    c.stabilize()
    c.isolate(2)
    leader = c.raft(1)
    leader.tracker.progress[2].become_probe()
    c.sent.clear()
    for i in range(5):
        c.propose(1, f"p{i}".encode())
    apps_to_2 = [m for m in c.sent if m.type is MT.APP and m.to == 2]
    assert len(apps_to_2) == 1


def test_replicate_state_is_limited_by_inflight_window():
    c = Cluster.new(3, max_inflight_msgs=3)
    c.elect(1)
    c.isolate(2)
    c.sent.clear()
    for i in range(10):
        c.propose(1, f"p{i}".encode())
    apps_to_2 = [m for m in c.sent if m.type is MT.APP and m.to == 2 and m.entries]
    assert len(apps_to_2) == 3
    assert c.raft(1).tracker.progress[2].inflights.full()


def test_inflight_window_frees_on_ack_and_resumes():
    c = Cluster.new(3, max_inflight_msgs=2)
    c.elect(1)
    c.isolate(2)
    for i in range(6):
        c.propose(1, f"p{i}".encode())
    c.heal()
    c.tick_all(2)  # heartbeats provoke responses that free the window
    assert c.raft(2).log.last_index() == c.raft(1).log.last_index()


def test_max_size_per_msg_splits_appends():
    c = Cluster.new(3, max_size_per_msg=100)
    c.elect(1)
    c.sent.clear()
    c.isolate(2)
    c.isolate(3)
    for i in range(10):
        c.nodes[1].propose(bytes(50) + bytes([i]))
    c.heal()
    c.stabilize()
    c.tick_all(3)
    assert c.raft(3).log.last_index() == c.raft(1).log.last_index()
    assert max(len(m.entries) for m in c.sent if m.type is MT.APP) <= 2


def test_unreachable_follower_drops_from_replicate_to_probe():
    c = Cluster.new(3)
    c.elect(1)
    assert c.raft(1).tracker.progress[2].state is ProgressState.REPLICATE
    c.nodes[1].report_unreachable(2)
    assert c.raft(1).tracker.progress[2].state is ProgressState.PROBE


def test_stale_reject_does_not_move_next_backwards():
    pr = Progress(match=5, next=10, inflights=Inflights(4))
    pr.become_replicate()
    assert not pr.maybe_decr_to(4, 0)
    assert pr.next == 6


def test_inflights_free_up_to_acked_index():
    inf = Inflights(3)
    for i in (2, 4, 6):
        inf.add(i)
    assert inf.full()
    inf.free_le(4)
    assert inf.count() == 1 and not inf.full()


def test_leader_of_minority_cannot_commit():
    c = Cluster.new(5)
    c.elect(1)
    for other in (3, 4, 5):
        c.isolate(other)
    commit = c.raft(1).log.committed
    c.propose(1, b"lost?")
    assert c.raft(1).log.committed == commit
    assert c.raft(1).role is Role.LEADER


def test_proposals_between_two_readies_travel_in_one_append_per_follower():
    c = Cluster.new(3)
    c.elect(1)
    for i in range(5):
        c.nodes[1].propose(b"p%d" % i)
    rd = c.nodes[1].ready()
    apps = [m for m in rd.messages if m.type is MT.APP]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(len(m.entries) == 5 for m in apps)


def test_figure_8_an_old_term_entry_on_a_majority_is_not_committed_and_can_be_replaced():
    """The scenario of figure 8 in the Raft paper, step by step (indexes shifted by the five
    bootstrap entries): entry A (index 7, term 1) reaches a majority only after its leader
    came back in term 3. Counting replicas would commit it; it must not be, because a leader
    of term 4 can still legitimately overwrite it."""
    c = Cluster.new(5, max_size_per_msg=1)  # one entry per append: A can travel alone
    c.elect(1)  # term 1, entry 6 (empty) committed everywhere
    # (a) Leader 1 appends A; only node 2 receives it.
    for other in (3, 4, 5):
        c.isolate(other)
    c.nodes[1].propose(b"A")
    c.stabilize()
    c.heal()
    assert c.raft(2).log.term(7) == 1 and c.raft(3).log.last_index() == 6
    # (b) Node 5 wins term 2 with votes from 3 and 4, appends entries nobody receives.
    c.cut |= {(1, 5), (5, 1), (2, 5), (5, 2)}
    c.drop_types = {MT.APP}
    c.elect(5)
    c.nodes[5].propose(b"B")
    c.stabilize()
    c.drop_types = set()
    c.isolate(5)
    # (c) Node 1 wins term 3 (votes of 2 and 3) and replicates A to node 3, but not yet its
    # own term-3 entry: A is now on a majority (1, 2, 3).
    c.isolate(4)
    c.drop_if = lambda m: (
        m.type is MT.APP
        and m.to == 3
        and c.raft(3).log.term(7) == 1  # once node 3 holds A, hold back entry 8
        and any(e.index >= 8 for e in m.entries)
    )
    c.raft(1).become_follower(c.raft(1).term, 0)
    for _ in range(2):  # term 2 is lost (3 already voted for 5 there); term 3 is won
        c.nodes[1].campaign()
        c.stabilize()
    assert c.raft(1).role is Role.LEADER and c.raft(1).term == 3
    assert c.raft(3).log.term(7) == 1
    assert c.raft(1).log.committed == 6  # not 7: A is from term 1, counting it is not enough
    # (d) Leader 1 is cut off; node 5 wins term 4 with 2, 3 and 4 (its last term 2 beats their
    # last term 1) and overwrites A everywhere. Had A been committed, this would lose it.
    c.drop_if = None
    c.heal()
    c.isolate(1)
    c.raft(5).become_follower(c.raft(5).term, 0)  # it restarts, as in the paper
    for _ in range(3):
        c.nodes[5].campaign()
        c.stabilize()
        if c.raft(5).role is Role.LEADER:
            break
    assert c.raft(5).role is Role.LEADER
    for i in (2, 3, 4, 5):
        assert c.raft(i).log.term(7) == 2
        assert b"A" not in c.applied[i]
