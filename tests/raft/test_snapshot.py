"""Log compaction and snapshots, one behaviour per test."""

from __future__ import annotations

import pytest
from tests.raft.cluster import Cluster, make_node

from cairn.raft import (
    CompactedError,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    MessageType,
    SnapshotOutOfDateError,
    UnavailableError,
)
from cairn.raft.progress import ProgressState

MT = MessageType


def filled_storage(n: int) -> MemoryStorage:
    s = MemoryStorage()
    s.append([Entry(i, 1, b"e%d" % i) for i in range(1, n + 1)])
    return s


def test_compact_discards_entries_but_keeps_term_of_last_compacted():
    s = filled_storage(10)
    s.create_snapshot(4, ConfState((1,)), b"")
    s.compact(4)
    assert s.first_index() == 5 and s.last_index() == 10
    assert s.term(4) == 1
    with pytest.raises(CompactedError):
        s.term(3)
    with pytest.raises(CompactedError):
        s.entries(4, 6)
    assert [e.index for e in s.entries(5, 7)] == [5, 6]


def test_compact_twice_at_same_index_is_refused():
    s = filled_storage(5)
    s.create_snapshot(3, ConfState((1,)), b"")
    s.compact(3)
    with pytest.raises(CompactedError):
        s.compact(3)


def test_compact_past_the_snapshot_is_refused():
    s = filled_storage(5)
    s.create_snapshot(2, ConfState((1,)), b"")
    with pytest.raises(UnavailableError):
        s.compact(3)


def test_compact_beyond_last_index_is_refused():
    with pytest.raises(UnavailableError):
        filled_storage(3).compact(4)


def test_create_snapshot_records_index_term_and_conf_state():
    s = filled_storage(5)
    snap = s.create_snapshot(3, ConfState((1, 2, 3)), b"state")
    assert (snap.index, snap.term, snap.data) == (3, 1, b"state")
    assert s.snapshot() == snap
    with pytest.raises(SnapshotOutOfDateError):
        s.create_snapshot(2, ConfState((1,)), b"")


def test_storage_append_replaces_conflicting_tail():
    s = filled_storage(5)
    s.append([Entry(3, 2, b"new")])
    assert s.last_index() == 3 and s.term(3) == 2


def test_entries_respect_max_size_but_return_at_least_one():
    s = MemoryStorage()
    s.append([Entry(i, 1, bytes(100)) for i in range(1, 6)])
    assert len(s.entries(1, 6, max_size=250)) == 2
    assert len(s.entries(1, 6, max_size=1)) == 1


def _compacted_cluster() -> Cluster:
    c = Cluster.new(3)
    c.elect(1)
    c.isolate(3)
    for i in range(10):
        c.propose(1, b"v%d" % i)
    applied = c.raft(1).log.applied
    c.storages[1].create_snapshot(applied, ConfState((1, 2, 3)), b"snapshot-of-%d" % applied)
    c.storages[1].compact(applied)
    c.heal()
    return c


def test_leader_sends_snapshot_when_follower_needs_compacted_entries():
    c = _compacted_cluster()
    c.sent.clear()
    c.tick_all(2)
    snaps = [m for m in c.sent if m.type is MT.SNAP]
    assert [m.to for m in snaps] == [3]
    assert snaps[0].snapshot.index == c.storages[1].snapshot().index


def test_follower_installs_snapshot_through_ready_and_catches_up():
    c = _compacted_cluster()
    snap_index = c.storages[1].snapshot().index
    c.tick(1)
    c.stabilize()
    c.nodes[1].report_snapshot(3, True)
    c.tick_all(2)
    assert c.storages[3].snapshot().index == snap_index
    assert c.storages[3].snapshot().data == b"snapshot-of-%d" % snap_index
    c.propose(1, b"after")
    assert c.applied[3][-1] == b"after"
    assert c.raft(1).tracker.progress[3].state is ProgressState.REPLICATE


def test_failed_snapshot_report_returns_follower_to_probe_and_retries():
    c = _compacted_cluster()
    c.drop_types = {MT.SNAP}
    c.tick_all(1)
    pr = c.raft(1).tracker.progress[3]
    assert pr.state is ProgressState.SNAPSHOT
    c.nodes[1].report_snapshot(3, False)
    assert pr.state is ProgressState.PROBE
    c.drop_types = set()
    c.sent.clear()
    c.tick_all(3)
    assert any(m.type is MT.SNAP and m.to == 3 for m in c.sent)


def test_leader_sends_nothing_else_while_snapshot_in_flight():
    c = _compacted_cluster()
    c.drop_types = {MT.SNAP}
    c.tick_all(1)
    c.sent.clear()
    c.propose(1, b"more")
    assert not any(m.type is MT.APP and m.to == 3 for m in c.sent)


def test_follower_ignores_snapshot_not_newer_than_its_commit():
    c = Cluster.new(3)
    c.elect(1)
    for i in range(3):
        c.propose(1, b"v%d" % i)
    r2 = c.raft(2)
    from cairn.raft import Snapshot, SnapshotMetadata

    old = Snapshot(SnapshotMetadata(2, 1, ConfState((1, 2, 3))), b"old")
    assert not r2.restore(old)
    assert r2.log.first_index() == 1


def test_restart_from_snapshot_resumes_after_its_index():
    s = filled_storage(10)
    s.create_snapshot(6, ConfState((1, 2, 3)), b"img")
    s.compact(6)
    s.set_hard_state(HardState(term=1, vote=0, commit=8))
    node = make_node(1, [], storage=s, applied=6)
    assert node.raft.tracker.voters == {1, 2, 3}
    rd = node.ready()
    assert [e.index for e in rd.committed_entries] == [7, 8]


def test_node_added_after_leaders_snapshot_installs_it_then_learns_its_addition():
    from tests.raft.test_membership import add_node

    from cairn.raft import ConfChange, ConfChangeType

    c = Cluster.new(3)
    c.elect(1)
    for i in range(5):
        c.propose(1, b"v%d" % i)
    applied = c.raft(1).log.applied
    c.storages[1].create_snapshot(applied, ConfState((1, 2, 3)), b"img")
    c.storages[1].compact(applied)
    add_node(c, 4)
    c.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    c.stabilize()
    c.nodes[1].report_snapshot(4, True)
    c.tick_all(3)
    assert c.storages[4].snapshot().index == applied
    assert c.raft(4).tracker.learners == {4}
    c.propose(1, b"after")
    assert c.applied[4][-1] == b"after"
