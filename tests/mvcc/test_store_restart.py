"""A restart rebuilds the in-memory key index from LevelDB: nothing a client can observe
changes, and new writes continue revisions, versions and generations where they left off."""

from __future__ import annotations

from pathlib import Path

from tests.mvcc.harness import EVERYTHING, KV, keys_of, put_op

from cairn.mvcc.backend import Backend
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb


def every_read(kv: KV) -> dict[int, pb.RangeResponse]:
    return {rev: kv.get(*EVERYTHING, revision=rev) for rev in range(1, kv.revision + 1)}


def write_history(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    kv.put(b"b", b"1")  # 3
    kv.put(b"a", b"2")  # 4
    kv.delete(b"b")  # 5
    kv.put(b"b", b"2")  # 6
    kv.txn(success=[put_op(b"c", b"1"), put_op(b"d", b"1")])  # 7
    kv.delete(b"c", b"\x00")  # 8: c and d


def test_restart_keeps_the_current_revision(kv: KV) -> None:
    write_history(kv)
    kv.restart()
    assert kv.revision == 8
    assert kv.get(b"a").header.revision == 8


def test_restart_reads_identically_at_every_revision(kv: KV) -> None:
    write_history(kv)
    expected = every_read(kv)
    kv.restart()
    assert every_read(kv) == expected


def test_revision_made_by_a_delete_survives_restart(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.delete(b"a")
    kv.restart()
    assert kv.revision == 3
    assert kv.put(b"a", b"2").header.revision == 4


def test_versions_continue_after_restart(kv: KV) -> None:
    write_history(kv)
    kv.restart()
    kv.put(b"a", b"3")
    a = kv.get(b"a").kvs[0]
    assert (a.create_revision, a.mod_revision, a.version) == (2, 9, 3)


def test_recreated_key_keeps_its_new_generation_after_restart(kv: KV) -> None:
    write_history(kv)
    kv.restart()
    kv.put(b"b", b"3")
    b = kv.get(b"b").kvs[0]
    assert (b.create_revision, b.version) == (6, 2)


def test_key_deleted_before_restart_is_recreated_fresh(kv: KV) -> None:
    write_history(kv)
    kv.restart()
    kv.put(b"c", b"2")
    c = kv.get(b"c").kvs[0]
    assert (c.create_revision, c.version) == (9, 1)


def test_delete_after_restart_finds_the_restored_keys(kv: KV) -> None:
    write_history(kv)
    kv.restart()
    response = kv.delete(b"a", b"\x00", prev_kv=True)
    assert response.deleted == 2
    assert keys_of(pb.RangeResponse(kvs=response.prev_kvs)) == [b"a", b"b"]
    assert response.header.revision == 9


def test_repeated_restarts_change_nothing(kv: KV) -> None:
    write_history(kv)
    expected = every_read(kv)
    for _ in range(3):
        kv.restart()
    assert every_read(kv) == expected


def test_restart_keeps_the_applied_index(kv: KV) -> None:
    write_history(kv)
    index = kv.applied_index
    kv.restart()
    assert kv.store.applied_index == index == 7


def test_unflushed_writes_are_not_on_disk(tmp_path: Path) -> None:
    """LevelDB is written per flush; WAL replay (not the store) redoes later entries."""
    kv = KV(tmp_path / "db", autoflush=False)
    kv.put(b"a", b"1")
    kv.flush()
    kv.put(b"a", b"2")
    kv.close()  # no flush: a crash between apply and flush
    reopened = MVCCStore(Backend(str(tmp_path / "db")))
    try:
        assert reopened.current_rev == 2
        assert reopened.applied_index == 1
        assert [item.value for item in reopened.range(b"a", None).kvs] == [b"1"]
    finally:
        reopened.backend.close()
