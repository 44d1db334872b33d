"""HashKV and Hash in steps: the same result as in one go, read from a LevelDB snapshot, and
an honest HashInterrupted when a compaction or a replaced database would mix two states."""

from __future__ import annotations

import os
import shutil

import pytest
from tests.mvcc.harness import KV

from cairn.mvcc.backend import HashInterrupted, run_steps


def write_history(kv: KV, writes: int = 60) -> None:
    """Overwrites and deletes over a few keys, then a compaction whose records stay
    physically present (the deleter has not run): every rule of the hash is exercised."""
    for i in range(writes):
        kv.put(b"k%d" % (i % 7), b"v%d" % i)
        if i % 9 == 4:
            kv.delete(b"k%d" % (i % 5))
    kv.compact(writes // 2, finish=False)


def test_hash_kv_in_steps_equals_the_hash_in_one_go(kv: KV) -> None:
    write_history(kv)
    for rev in (0, 31, 45, kv.revision):
        assert run_steps(kv.store.hash_kv_steps(rev, chunk_records=1)) == kv.store.hash_kv(rev)


def test_hash_kv_steps_yield_after_every_chunk(kv: KV) -> None:
    write_history(kv)
    records = len(kv.history_revisions())
    steps = kv.store.hash_kv_steps(0, chunk_records=10)
    yields = 0
    with pytest.raises(StopIteration):
        while True:
            next(steps)
            yields += 1
    assert yields == records // 10


def test_writes_between_steps_do_not_change_the_hash_kv(kv: KV) -> None:
    write_history(kv)
    expected = kv.store.hash_kv(0)
    steps = kv.store.hash_kv_steps(0, chunk_records=2)
    next(steps)
    kv.put(b"k1", b"later")
    kv.delete(b"k2")
    kv.finish_compactions()  # the deleter removes the records the compaction dropped
    assert run_steps(steps) == expected


def test_a_compaction_between_steps_interrupts_the_hash_kv(kv: KV) -> None:
    write_history(kv)
    steps = kv.store.hash_kv_steps(0, chunk_records=2)
    next(steps)
    kv.compact(kv.revision - 5)
    with pytest.raises(HashInterrupted):
        run_steps(steps)


def replace_by_a_copy(kv: KV) -> None:
    """What Defragment does: copy the live records, swap the directory, reopen."""
    copy = f"{kv.path}.copy"
    kv.backend.copy_to(copy)

    def swap() -> None:
        shutil.rmtree(kv.path)
        os.rename(copy, kv.path)

    kv.backend.reopen(swap)


def test_a_replaced_database_interrupts_the_hash_kv(kv: KV) -> None:
    write_history(kv)
    steps = kv.store.hash_kv_steps(0, chunk_records=2)
    next(steps)
    replace_by_a_copy(kv)
    with pytest.raises(HashInterrupted):
        run_steps(steps)


def test_hash_in_steps_is_of_the_database_when_it_began(kv: KV) -> None:
    write_history(kv)
    expected = kv.backend.hash_all()
    steps = kv.backend.hash_all_steps(chunk_records=2)
    next(steps)
    kv.put(b"k1", b"later")  # a new record and a new applied index
    assert kv.backend.hash_all() != expected
    assert run_steps(steps) == expected


def test_a_replaced_database_interrupts_the_hash(kv: KV) -> None:
    write_history(kv)
    steps = kv.backend.hash_all_steps(chunk_records=2)
    next(steps)
    replace_by_a_copy(kv)
    with pytest.raises(HashInterrupted):
        run_steps(steps)
