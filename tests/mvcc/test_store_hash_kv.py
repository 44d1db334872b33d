"""HashKV: a hash of the history a read at a revision may use, equal on every store that
applied the same changes, whatever its physical compaction progress; etcd's errors for a
compacted or future revision."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.mvcc.harness import KV

from cairn.errors import ErrCompacted, ErrFutureRev


def write_history(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    kv.put(b"b", b"1")  # 3
    kv.put(b"a", b"2")  # 4
    kv.delete(b"b")  # 5
    kv.put(b"c", b"1")  # 6


def test_hash_kv_is_equal_on_stores_that_applied_the_same_changes(tmp_path: Path) -> None:
    one, two = KV(tmp_path / "one"), KV(tmp_path / "two")
    try:
        write_history(one)
        write_history(two)
        for rev in range(0, 7):
            assert one.store.hash_kv(rev) == two.store.hash_kv(rev)
    finally:
        one.close()
        two.close()


def test_hash_kv_at_a_revision_ignores_later_writes(kv: KV) -> None:
    write_history(kv)
    at_four = kv.store.hash_kv(4)
    kv.put(b"a", b"3")
    assert kv.store.hash_kv(4) == at_four
    assert kv.store.hash_kv(0) != at_four


def test_hash_kv_changes_when_a_value_differs(tmp_path: Path) -> None:
    one, two = KV(tmp_path / "one"), KV(tmp_path / "two")
    try:
        one.put(b"k", b"v")
        two.put(b"k", b"w")
        assert one.store.hash_kv(0) != two.store.hash_kv(0)
    finally:
        one.close()
        two.close()


def test_hash_kv_zero_means_the_current_revision(kv: KV) -> None:
    write_history(kv)
    assert kv.store.hash_kv(0) == kv.store.hash_kv(kv.revision)


def test_hash_kv_reports_the_compacted_revision(kv: KV) -> None:
    write_history(kv)
    assert kv.store.hash_kv(0)[1] == -1  # as etcd before any compaction
    kv.compact(4)
    assert kv.store.hash_kv(0)[1] == 4


def test_hash_kv_at_or_below_the_compacted_revision_is_refused(kv: KV) -> None:
    write_history(kv)
    kv.compact(4)
    with pytest.raises(ErrCompacted):
        kv.store.hash_kv(4)  # etcd: the compacted revision itself is refused here
    with pytest.raises(ErrCompacted):
        kv.store.hash_kv(2)
    kv.store.hash_kv(5)


def test_hash_kv_above_the_current_revision_is_refused(kv: KV) -> None:
    write_history(kv)
    with pytest.raises(ErrFutureRev):
        kv.store.hash_kv(kv.revision + 1)


def test_hash_kv_does_not_depend_on_physical_deletion_progress(tmp_path: Path) -> None:
    done, pending = KV(tmp_path / "done"), KV(tmp_path / "pending")
    try:
        for kv in (done, pending):
            write_history(kv)
        done.compact(5)
        pending.compact(5, finish=False)  # dropped records still in LevelDB
        assert len(pending.history_revisions()) > len(done.history_revisions())
        assert pending.store.hash_kv(0) == done.store.hash_kv(0)
        assert pending.store.hash_kv(6) == done.store.hash_kv(6)
    finally:
        done.close()
        pending.close()


def test_hash_kv_survives_a_restart(kv: KV) -> None:
    write_history(kv)
    kv.compact(3)
    before = kv.store.hash_kv(0)
    kv.restart()
    assert kv.store.hash_kv(0) == before


def test_backend_hash_covers_every_record(kv: KV) -> None:
    write_history(kv)
    before = kv.store.backend.hash_all()
    assert kv.store.backend.hash_all() == before
    kv.put(b"z", b"1")
    assert kv.store.backend.hash_all() != before


def test_hash_kv_of_an_empty_history_is_not_zero(kv: KV) -> None:
    # proto3 leaves a 0 out of the response, and etcdctl's JSON then has no "hash" field.
    assert kv.store.hash_kv(0)[0] != 0
