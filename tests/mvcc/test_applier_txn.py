"""TxnRequest: compares (missing keys, ranges), branches, nested txns, reads of the txn's own
writes, one revision for all its changes, and failures that leave the store untouched."""

from __future__ import annotations

import pytest
from tests.mvcc.harness import (
    EVERYTHING,
    KV,
    compare,
    delete_op,
    get_op,
    keys_of,
    put_op,
    txn_op,
    values_of,
)

from cairn.errors import (
    ErrCompacted,
    ErrDuplicateKey,
    ErrFutureRev,
    ErrKeyNotFound,
    EtcdError,
)
from cairn.proto import rpc_pb2 as pb


def state(kv: KV) -> tuple[int, list[pb.RangeResponse]]:
    reads = [
        kv.get(*EVERYTHING, revision=rev)
        for rev in range(max(kv.store.compact_rev, 1), kv.revision + 1)
    ]
    return kv.revision, reads


def holds(kv: KV, *compares: pb.Compare) -> bool:
    """Whether the compares hold, asked through a read-only txn."""
    return kv.txn(compare=compares).succeeded


# ---- compares on missing keys and ranges -----------------------------------------------------


@pytest.mark.parametrize("target", ["version", "create", "mod", "lease"])
def test_missing_key_compares_as_zero(kv: KV, target: str) -> None:
    assert holds(kv, compare(b"missing", target, "==", 0))
    assert not holds(kv, compare(b"missing", target, ">", 0))


@pytest.mark.parametrize("result", ["==", "!=", ">", "<"])
def test_value_compare_on_a_missing_key_is_false(kv: KV, result: str) -> None:
    assert not holds(kv, compare(b"missing", "value", result, b""))
    assert not holds(kv, compare(b"missing", "value", result, b"x"))


def test_deleted_key_compares_as_missing(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.delete(b"a")
    assert holds(kv, compare(b"a", "version", "==", 0))
    assert not holds(kv, compare(b"a", "value", "!=", b"1"))


def test_compares_of_an_existing_key(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    kv.put(b"a", b"2")  # 3
    assert holds(
        kv,
        compare(b"a", "version", "==", 2),
        compare(b"a", "create", "==", 2),
        compare(b"a", "mod", "==", 3),
        compare(b"a", "value", "==", b"2"),
        compare(b"a", "lease", "==", 0),
    )


def test_value_compares_order_bytes_unsigned(kv: KV) -> None:
    kv.put(b"a", b"\x80")
    assert holds(kv, compare(b"a", "value", ">", b"\x7f"), compare(b"a", "value", "<", b"\xff"))
    assert holds(kv, compare(b"a", "value", ">", b"\x80"[:0]))


def test_all_compares_must_hold(kv: KV) -> None:
    kv.put(b"a", b"1")
    assert not holds(kv, compare(b"a", "version", "==", 1), compare(b"a", "value", "==", b"2"))


def test_range_compare_holds_only_if_every_key_holds(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    kv.put(b"b", b"2")
    assert holds(kv, compare(b"a", "version", ">", 0, range_end=b"c"))
    assert not holds(kv, compare(b"a", "version", "==", 1, range_end=b"c"))
    assert not holds(kv, compare(b"a", "value", "==", b"1", range_end=b"c"))
    assert holds(kv, compare(b"a", "value", "==", b"1", range_end=b"b"))


def test_range_compare_with_nul_end_covers_every_key_from_key_on(kv: KV) -> None:
    kv.put(b"a", b"old")
    kv.put(b"b", b"new")
    kv.put(b"c", b"new")
    assert holds(kv, compare(b"b", "value", "==", b"new", range_end=b"\x00"))
    assert not holds(kv, compare(b"a", "value", "==", b"new", range_end=b"\x00"))


def test_empty_range_compares_as_one_missing_key(kv: KV) -> None:
    kv.put(b"z", b"1")
    assert holds(kv, compare(b"a", "version", "==", 0, range_end=b"c"))
    assert not holds(kv, compare(b"a", "version", ">", 0, range_end=b"c"))
    assert not holds(kv, compare(b"a", "value", "==", b"", range_end=b"c"))


def test_compare_is_against_the_latest_state_not_history(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a", b"2")
    assert holds(kv, compare(b"a", "mod", "==", 3))
    assert not holds(kv, compare(b"a", "mod", "==", 2))


# ---- branches and revisions ------------------------------------------------------------------


def test_success_branch_runs_when_compares_hold(kv: KV) -> None:
    response = kv.txn(
        compare=[compare(b"a", "version", "==", 0)],
        success=[put_op(b"a", b"created")],
        failure=[put_op(b"a", b"existed")],
    )
    assert response.succeeded is True
    assert values_of(kv.get(b"a")) == [b"created"]


def test_failure_branch_runs_when_a_compare_fails(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(
        compare=[compare(b"a", "version", "==", 0)],
        success=[put_op(b"a", b"created")],
        failure=[put_op(b"a", b"existed")],
    )
    assert response.succeeded is False
    assert values_of(kv.get(b"a")) == [b"existed"]


def test_txn_without_compares_succeeds(kv: KV) -> None:
    assert kv.txn(success=[put_op(b"a")]).succeeded is True


def test_all_writes_of_a_txn_share_one_revision(kv: KV) -> None:
    kv.put(b"old", b"1")
    response = kv.txn(success=[put_op(b"a", b"1"), put_op(b"b", b"1"), delete_op(b"old")])
    assert response.header.revision == kv.revision == 3
    assert [item.mod_revision for item in kv.get(*EVERYTHING).kvs] == [3, 3]
    assert {rev.main for rev in kv.history_revisions()} == {2, 3}


def test_txn_that_changes_nothing_keeps_the_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(success=[delete_op(b"missing"), get_op(b"a")])
    assert response.header.revision == kv.revision == 2


def test_empty_txn_keeps_the_revision(kv: KV) -> None:
    response = kv.txn()
    assert (response.succeeded, list(response.responses), response.header.revision) == (
        True,
        [],
        1,
    )


def test_txn_responses_follow_the_ops_in_order(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(success=[get_op(b"a"), put_op(b"b", b"2"), delete_op(b"a")])
    kinds = [item.WhichOneof("response") for item in response.responses]
    assert kinds == ["response_range", "response_put", "response_delete_range"]


# ---- a txn reads its own writes --------------------------------------------------------------


def test_read_after_a_put_in_the_same_txn_sees_it(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(success=[put_op(b"a", b"2"), get_op(b"a")])
    read = response.responses[1].response_range
    assert (read.kvs[0].value, read.kvs[0].version, read.kvs[0].mod_revision) == (b"2", 2, 3)


def test_read_after_a_delete_in_the_same_txn_misses_it(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    response = kv.txn(success=[delete_op(b"a"), get_op(b"a", b"\x00")])
    assert keys_of(response.responses[1].response_range) == [b"b"]


def test_delete_after_a_put_in_the_same_txn_deletes_the_new_key(kv: KV) -> None:
    """Written as two nested txns: one branch may not both put and delete a key."""
    response = kv.txn(
        success=[
            txn_op(success=[put_op(b"a", b"1")]),
            txn_op(success=[delete_op(b"a", b"b", prev_kv=True)]),
        ]
    )
    deleted = response.responses[1].response_txn.responses[0].response_delete_range
    assert deleted.deleted == 1
    assert [(kv_.key, kv_.value) for kv_ in deleted.prev_kvs] == [(b"a", b"1")]
    assert kv.get(b"a").count == 0
    assert kv.revision == 2


def test_read_before_any_write_in_a_txn_carries_the_old_revision(kv: KV) -> None:
    """As in etcd: each op's header is the revision its txn view had at that point."""
    kv.put(b"a", b"1")
    response = kv.txn(success=[get_op(b"a"), put_op(b"b"), get_op(b"a"), delete_op(b"none")])
    headers = [
        response.responses[0].response_range.header.revision,
        response.responses[1].response_put.header.revision,
        response.responses[2].response_range.header.revision,
        response.responses[3].response_delete_range.header.revision,
    ]
    assert headers == [2, 3, 3, 3]


def test_put_prev_kv_in_a_txn_sees_an_earlier_delete(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    response = kv.txn(success=[delete_op(b"b"), put_op(b"a", b"2", prev_kv=True)])
    assert response.responses[1].response_put.prev_kv.value == b"1"


# ---- nested txns -----------------------------------------------------------------------------


def test_nested_compares_see_the_state_before_the_outer_txn(kv: KV) -> None:
    response = kv.txn(
        success=[
            put_op(b"a", b"1"),
            txn_op(
                compare=[compare(b"a", "version", "==", 0)],
                success=[put_op(b"saw", b"nothing")],
                failure=[put_op(b"saw", b"the put")],
            ),
        ]
    )
    assert response.responses[1].response_txn.succeeded is True
    assert values_of(kv.get(b"saw")) == [b"nothing"]


def test_nested_ops_see_the_outer_txns_earlier_writes(kv: KV) -> None:
    response = kv.txn(success=[put_op(b"a", b"1"), txn_op(success=[get_op(b"a")])])
    inner = response.responses[1].response_txn
    assert values_of(inner.responses[0].response_range) == [b"1"]


def test_nested_txn_failure_branch(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(
        success=[
            txn_op(
                compare=[compare(b"a", "value", "==", b"other")],
                success=[put_op(b"b", b"then")],
                failure=[put_op(b"b", b"else"), get_op(b"a")],
            )
        ]
    )
    inner = response.responses[0].response_txn
    assert inner.succeeded is False
    assert len(inner.responses) == 2
    assert values_of(kv.get(b"b")) == [b"else"]


def test_nested_txn_response_has_an_empty_header(kv: KV) -> None:
    """As etcd: only the outer txn's header carries the revision."""
    response = kv.txn(success=[txn_op(success=[put_op(b"a")])])
    inner = response.responses[0].response_txn
    assert inner.HasField("header")
    assert inner.header.revision == 0
    assert response.header.revision == 2


def test_nested_writes_share_the_outer_revision(kv: KV) -> None:
    kv.txn(
        success=[
            put_op(b"a", b"1"),
            txn_op(success=[put_op(b"b", b"1"), txn_op(success=[put_op(b"c", b"1")])]),
        ]
    )
    assert kv.revision == 2
    assert [item.mod_revision for item in kv.get(*EVERYTHING).kvs] == [2, 2, 2]


def test_nested_branches_in_the_outer_failure_branch_run(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(
        compare=[compare(b"a", "version", "==", 0)],
        failure=[txn_op(compare=[compare(b"a", "version", "==", 1)], success=[delete_op(b"a")])],
    )
    assert response.succeeded is False
    assert response.responses[0].response_txn.succeeded is True
    assert kv.get(b"a").count == 0


def test_read_only_nested_txn_runs_without_a_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.txn(success=[txn_op(success=[get_op(b"a")])])
    assert response.header.revision == kv.revision == 2


# ---- failures change nothing -----------------------------------------------------------------


def test_range_at_a_compacted_revision_fails_the_txn_and_changes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a", b"2")
    kv.compact(3)
    before = state(kv)
    with pytest.raises(ErrCompacted):
        kv.txn(success=[put_op(b"b", b"1"), get_op(b"a", revision=2)])
    assert state(kv) == before


def test_range_at_a_future_revision_fails_the_txn_and_changes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    before = state(kv)
    with pytest.raises(ErrFutureRev):
        kv.txn(success=[put_op(b"b", b"1"), get_op(b"b", revision=3)])
    assert state(kv) == before


def test_bad_revision_in_the_branch_not_taken_is_not_checked(kv: KV) -> None:
    response = kv.txn(
        compare=[compare(b"a", "version", "==", 0)],
        success=[put_op(b"a", b"1")],
        failure=[get_op(b"a", revision=99)],
    )
    assert response.succeeded is True


def test_ignore_value_put_of_a_missing_key_fails_the_txn_and_changes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    before = state(kv)
    with pytest.raises(ErrKeyNotFound):
        kv.txn(success=[put_op(b"a", b"2"), put_op(b"missing", ignore_value=True)])
    assert state(kv) == before


def test_ignore_value_put_in_a_nested_txn(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.txn(success=[txn_op(success=[put_op(b"a", ignore_value=True)])])
    a = kv.get(b"a").kvs[0]
    assert (a.value, a.version) == (b"1", 2)


def test_txn_failing_after_a_nul_ended_delete_changes_nothing(kv: KV) -> None:
    """Validation lets this through (its duplicate-key check reads range_end "\\0" as the
    literal bound "\\0", as etcd's does); the ignore_value check passes because "b" exists
    before the txn; then the delete removes "b" and the put fails. etcd 3.4 panics on this
    ("unexpected error during txn"); cairn must not keep half a txn."""
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    before = state(kv)
    with pytest.raises((ErrKeyNotFound, ErrDuplicateKey)):
        kv.txn(success=[delete_op(b"a", b"\x00"), put_op(b"b", ignore_value=True)])
    assert state(kv) == before
    kv.put(b"c", b"1")  # the next write reuses the revision the failed txn staged its delete at
    assert keys_of(kv.get(*EVERYTHING)) == [b"a", b"b", b"c"]
    kv.restart()
    assert keys_of(kv.get(*EVERYTHING)) == [b"a", b"b", b"c"]


def test_txn_with_an_unknown_sort_target_is_refused_and_changes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    before = state(kv)
    with pytest.raises(EtcdError, match=r"^etcdserver: invalid sort option$"):
        kv.txn(success=[put_op(b"b", b"1"), get_op(b"a", sort_target=99)])
    assert state(kv) == before
    kv.put(b"c", b"1")
    assert keys_of(kv.get(b"b")) == []


# ---- validation of txn shape -----------------------------------------------------------------


def test_putting_one_key_twice_in_a_branch_is_refused(kv: KV) -> None:
    with pytest.raises(ErrDuplicateKey):
        kv.txn(success=[put_op(b"a", b"1"), put_op(b"a", b"2")])
    assert kv.revision == 1


def test_putting_a_key_the_branch_deletes_is_refused(kv: KV) -> None:
    with pytest.raises(ErrDuplicateKey):
        kv.txn(success=[delete_op(b"a", b"c"), put_op(b"b", b"1")])


def test_the_two_branches_of_a_nested_txn_may_put_the_same_key(kv: KV) -> None:
    response = kv.txn(
        success=[
            txn_op(
                compare=[compare(b"a", "version", "==", 0)],
                success=[put_op(b"a", b"then")],
                failure=[put_op(b"a", b"else")],
            )
        ]
    )
    assert response.responses[0].response_txn.succeeded is True
    assert values_of(kv.get(b"a")) == [b"then"]


def test_success_and_failure_branches_may_write_the_same_key(kv: KV) -> None:
    kv.txn(success=[put_op(b"a", b"1")], failure=[put_op(b"a", b"2")])
    assert values_of(kv.get(b"a")) == [b"1"]
