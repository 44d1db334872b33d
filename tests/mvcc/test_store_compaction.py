"""Compaction at R: reads at R and later are unchanged, reads below R are refused, and only
history no such read can reach is removed from LevelDB — also across restarts."""

from __future__ import annotations

import pytest
from tests.mvcc.harness import EVERYTHING, KV, keys_of, values_of

from cairn.errors import ErrCompacted, ErrFutureRev
from cairn.proto import rpc_pb2 as pb


def snapshot(kv: KV, revisions: range) -> dict[int, pb.RangeResponse]:
    """Everything the store holds, read at each revision."""
    return {rev: kv.get(*EVERYTHING, revision=rev) for rev in revisions}


def write_history(kv: KV) -> None:
    """A key updated, one deleted, one deleted and recreated, one untouched."""
    kv.put(b"upd", b"1")  # 2
    kv.put(b"del", b"1")  # 3
    kv.put(b"re", b"1")  # 4
    kv.put(b"upd", b"2")  # 5
    kv.delete(b"del")  # 6
    kv.delete(b"re")  # 7
    kv.put(b"re", b"2")  # 8
    kv.put(b"same", b"1")  # 9
    kv.put(b"upd", b"3")  # 10


def test_compaction_at_the_current_revision_keeps_every_live_key(kv: KV) -> None:
    write_history(kv)
    before = kv.get(*EVERYTHING)
    kv.compact(kv.revision)
    assert kv.get(*EVERYTHING) == before


def test_compaction_keeps_reads_at_and_after_the_compacted_revision(kv: KV) -> None:
    write_history(kv)
    expected = snapshot(kv, range(7, 11))
    kv.compact(7)
    assert snapshot(kv, range(7, 11)) == expected


@pytest.mark.parametrize("below", [1, 6])
def test_reads_below_the_compacted_revision_are_refused(kv: KV, below: int) -> None:
    write_history(kv)
    kv.compact(7)
    with pytest.raises(ErrCompacted):
        kv.get(b"upd", revision=below)


def test_compaction_removes_exactly_the_unreachable_history(kv: KV) -> None:
    write_history(kv)
    kv.compact(7)
    kept = {rev.main for rev in kv.history_revisions()}
    # upd: 5 is its newest change at or below 7, 10 is later. del: deleted at 6, all gone.
    # re: deleted at 7, all gone but the re-create at 8. same: 9, after the compaction.
    assert kept == {5, 8, 9, 10}


def test_compaction_does_not_make_a_revision(kv: KV) -> None:
    write_history(kv)
    response = kv.compact(5)
    assert response.header.revision == 10
    assert kv.revision == 10
    assert kv.put(b"next", b"1").header.revision == 11


@pytest.mark.parametrize("again", [4, 5], ids=["below", "equal"])
def test_compacting_at_or_below_the_compacted_revision_is_refused(kv: KV, again: int) -> None:
    write_history(kv)
    kv.compact(5)
    with pytest.raises(ErrCompacted):
        kv.compact(again)


def test_compacting_a_future_revision_is_refused_and_changes_nothing(kv: KV) -> None:
    write_history(kv)
    with pytest.raises(ErrFutureRev):
        kv.compact(11)
    assert values_of(kv.get(b"upd", revision=2)) == [b"1"]


def test_later_compaction_can_follow_an_earlier_one(kv: KV) -> None:
    write_history(kv)
    kv.compact(5)
    assert {rev.main for rev in kv.history_revisions()} == {3, 4, 5, 6, 7, 8, 9, 10}
    kv.compact(9)
    assert {rev.main for rev in kv.history_revisions()} == {5, 8, 9, 10}
    assert keys_of(kv.get(*EVERYTHING, revision=9)) == [b"re", b"same", b"upd"]


def test_versions_continue_after_compaction_dropped_earlier_versions(kv: KV) -> None:
    write_history(kv)
    kv.compact(kv.revision)
    kv.put(b"upd", b"4")
    upd = kv.get(b"upd").kvs[0]
    assert (upd.create_revision, upd.version, upd.mod_revision) == (2, 4, 11)


def test_key_deleted_before_compaction_is_recreated_fresh(kv: KV) -> None:
    write_history(kv)
    kv.compact(kv.revision)
    kv.put(b"del", b"again")
    recreated = kv.get(b"del").kvs[0]
    assert (recreated.create_revision, recreated.version) == (11, 1)


def test_compaction_then_restart_reads_identically(kv: KV) -> None:
    write_history(kv)
    kv.compact(7)
    expected = snapshot(kv, range(7, 11))
    kv.restart()
    assert snapshot(kv, range(7, 11)) == expected
    with pytest.raises(ErrCompacted):
        kv.get(b"upd", revision=6)
    with pytest.raises(ErrCompacted):
        kv.compact(7)


def test_interrupted_compaction_is_finished_on_restart(kv: KV) -> None:
    write_history(kv)
    expected = snapshot(kv, range(7, 11))
    kv.compact(7, finish=False)
    assert len(kv.history_revisions()) == 9, "nothing is deleted before the compaction finishes"
    kv.restart()
    assert {rev.main for rev in kv.history_revisions()} == {5, 8, 9, 10}
    assert snapshot(kv, range(7, 11)) == expected
    with pytest.raises(ErrCompacted):
        kv.get(b"upd", revision=6)


def test_interrupted_compaction_is_recorded_finished_after_restart(kv: KV) -> None:
    write_history(kv)
    kv.compact(7, finish=False)
    kv.restart()
    kv.restart()
    assert kv.store.compact_rev == 7
    kv.compact(10)
    assert {rev.main for rev in kv.history_revisions()} == {8, 9, 10}


def test_writes_after_compaction_survive_restart_with_the_right_versions(kv: KV) -> None:
    write_history(kv)
    kv.compact(kv.revision)
    kv.put(b"upd", b"4")
    kv.restart()
    kv.put(b"upd", b"5")
    upd = kv.get(b"upd").kvs[0]
    assert (upd.create_revision, upd.version, upd.mod_revision) == (2, 5, 12)


def test_compaction_at_the_current_revision_after_deleting_everything(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    kv.delete(b"a", b"\x00")  # 4
    kv.compact(4)
    assert kv.history_revisions() == []
    kv.restart()
    assert kv.revision == 4
    assert kv.get(*EVERYTHING).count == 0
    assert kv.put(b"a", b"2").header.revision == 5


def test_history_an_unfinished_compaction_left_behind_does_not_change_reads(kv: KV) -> None:
    """A later compaction recorded finished first, then a restart: the earlier one's dropped
    records are back in LevelDB's scan, yet reads at and after the compaction are unchanged,
    and the next compaction removes them."""
    write_history(kv)
    kv.compact(5, finish=False)
    left_behind = kv.pending_compactions.pop()
    kv.compact(7)
    expected = snapshot(kv, range(7, 11))
    kv.restart()
    assert {rev.main for rev in kv.history_revisions()} >= {r.main for r in left_behind[1]}
    assert snapshot(kv, range(7, 11)) == expected
    kv.compact(8)
    assert {rev.main for rev in kv.history_revisions()} == {5, 8, 9, 10}
