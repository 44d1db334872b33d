"""The lease store on a real LevelDB: grants and revokes, which keys each lease holds as
puts, deletes and txns move them, and what survives a restart (the table is stored, the
attachments are rebuilt from the history)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.mvcc.harness import KV, compare, delete_op, keys_of, put_op

from cairn.errors import ErrLeaseExist, ErrLeaseNotFound, ErrLeaseTTLTooLarge
from cairn.member.applier import MAX_LEASE_TTL
from cairn.mvcc.backend import LEASES


def test_grant_answers_the_id_and_ttl_and_the_current_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.grant(7, ttl=30)
    assert (response.ID, response.TTL, response.header.revision) == (7, 30, 2)


def test_grant_does_not_change_the_revision(kv: KV) -> None:
    kv.grant(7)
    assert kv.revision == 1


def test_granting_an_existing_id_is_refused(kv: KV) -> None:
    kv.grant(7)
    with pytest.raises(ErrLeaseExist):
        kv.grant(7)


def test_a_ttl_above_etcds_maximum_is_refused(kv: KV) -> None:
    with pytest.raises(ErrLeaseTTLTooLarge):
        kv.grant(7, ttl=MAX_LEASE_TTL + 1)
    assert not kv.store.leases.exists(7)


def test_the_maximum_ttl_itself_is_granted(kv: KV) -> None:
    assert kv.grant(7, ttl=MAX_LEASE_TTL).TTL == MAX_LEASE_TTL


def test_put_with_a_lease_attaches_the_key(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    assert kv.lease_keys(7) == [b"a"]
    assert kv.get(b"a").kvs[0].lease == 7


def test_put_without_a_lease_detaches_the_key(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"a", b"2")
    assert kv.lease_keys(7) == []


def test_put_with_another_lease_moves_the_key(kv: KV) -> None:
    kv.grant(7)
    kv.grant(8)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"a", b"2", lease=8)
    assert (kv.lease_keys(7), kv.lease_keys(8)) == ([], [b"a"])


def test_ignore_lease_keeps_the_key_attached(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"a", b"2", ignore_lease=True)
    assert kv.lease_keys(7) == [b"a"]
    assert kv.get(b"a").kvs[0].lease == 7


def test_delete_detaches_the_key(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"b", b"1", lease=7)
    kv.delete(b"a")
    assert kv.lease_keys(7) == [b"b"]


def test_txn_puts_and_deletes_move_attachments(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"gone", b"1", lease=7)
    kv.txn(success=[put_op(b"a", b"1", lease=7), delete_op(b"gone")])
    assert kv.lease_keys(7) == [b"a"]


def test_a_failed_txn_attaches_nothing(kv: KV) -> None:
    kv.grant(7)
    with pytest.raises(ErrLeaseNotFound):
        kv.txn(success=[put_op(b"a", b"1", lease=7), put_op(b"b", b"1", lease=99)])
    assert kv.lease_keys(7) == []


def test_revoke_deletes_every_attached_key_in_one_revision(kv: KV) -> None:
    kv.grant(7)
    for key in (b"c", b"a", b"b"):
        kv.put(key, b"1", lease=7)
    kv.put(b"other", b"1")
    response = kv.revoke(7)
    assert response.header.revision == 6
    assert keys_of(kv.get(b"\x00", b"\x00")) == [b"other"]
    deleted = kv.get(b"a", b"d", revision=5)
    assert keys_of(deleted) == [b"a", b"b", b"c"]


def test_revoke_of_a_lease_without_keys_keeps_the_revision(kv: KV) -> None:
    kv.grant(7)
    assert kv.revoke(7).header.revision == 1
    assert kv.revision == 1


def test_revoked_lease_is_gone_for_puts_and_revokes(kv: KV) -> None:
    kv.grant(7)
    kv.revoke(7)
    with pytest.raises(ErrLeaseNotFound):
        kv.put(b"a", b"1", lease=7)
    with pytest.raises(ErrLeaseNotFound):
        kv.revoke(7)


def test_revoke_of_an_unknown_lease_is_not_found(kv: KV) -> None:
    with pytest.raises(ErrLeaseNotFound):
        kv.revoke(12345)


def test_leases_survive_a_restart_with_their_ttl(kv: KV) -> None:
    kv.grant(7, ttl=30)
    kv.grant(-8, ttl=45)
    kv.restart()
    assert [(lease.id, lease.ttl) for lease in kv.store.leases.all()] == [(-8, 45), (7, 30)]


def test_attachments_are_rebuilt_at_restart_from_each_keys_latest_value(kv: KV) -> None:
    kv.grant(7)
    kv.grant(8)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"b", b"1", lease=7)
    kv.put(b"b", b"2", lease=8)  # moved
    kv.put(b"c", b"1", lease=7)
    kv.delete(b"c")  # gone
    kv.put(b"d", b"1", lease=7)
    kv.put(b"d", b"2")  # detached
    kv.restart()
    assert (kv.lease_keys(7), kv.lease_keys(8)) == ([b"a"], [b"b"])


def test_attachments_are_rebuilt_after_compaction(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    kv.put(b"x", b"1")
    kv.put(b"x", b"2")
    kv.compact(kv.revision)
    kv.restart()
    assert kv.lease_keys(7) == [b"a"]


def test_a_revoked_lease_stays_revoked_after_a_restart(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    kv.revoke(7)
    kv.restart()
    assert not kv.store.leases.exists(7)
    assert kv.get(b"a").count == 0


def test_grant_and_revoke_in_one_flush_leave_no_record(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db", autoflush=False)
    try:
        kv.grant(7)
        kv.revoke(7)
        kv.grant(8)
        kv.flush()
        assert [raw for raw, _ in kv.backend.scan(LEASES)] == [(8).to_bytes(8, "big")]
    finally:
        kv.close()


def test_lease_records_are_only_written_with_the_flush(tmp_path: Path) -> None:
    """Staged with the applied index: a crash before the flush loses the grant and the
    index together, so WAL replay grants it again instead of refusing a duplicate."""
    kv = KV(tmp_path / "db", autoflush=False)
    try:
        kv.grant(7)
        assert list(kv.backend.scan(LEASES)) == []
        kv.flush()
        assert len(list(kv.backend.scan(LEASES))) == 1
    finally:
        kv.close()


def test_txn_compare_on_lease(kv: KV) -> None:
    kv.grant(7)
    kv.put(b"a", b"1", lease=7)
    response = kv.txn([compare(b"a", "lease", "==", 7)], [put_op(b"hit", b"1")], [])
    assert response.succeeded
    response = kv.txn([compare(b"a", "lease", "==", 8)], [], [put_op(b"miss", b"1")])
    assert not response.succeeded
