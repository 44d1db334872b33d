"""Requests etcd refuses before they reach the log are refused by cairn with the same error."""

from __future__ import annotations

import pytest

from cairn.api.validation import check_delete_range, check_put, check_range, check_txn
from cairn.errors import (
    ErrDuplicateKey,
    ErrEmptyKey,
    ErrKeyNotFound,
    ErrLeaseProvided,
    ErrTooManyOps,
    ErrValueProvided,
)
from cairn.proto import rpc_pb2 as pb


def put(key: bytes) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=b"v"))


def delete(key: bytes, end: bytes = b"") -> pb.RequestOp:
    return pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key, range_end=end))


def nested(success: list[pb.RequestOp], failure: list[pb.RequestOp]) -> pb.RequestOp:
    return pb.RequestOp(request_txn=pb.TxnRequest(success=success, failure=failure))


def test_range_without_key_is_refused() -> None:
    with pytest.raises(ErrEmptyKey):
        check_range(pb.RangeRequest())


def test_put_without_key_is_refused() -> None:
    with pytest.raises(ErrEmptyKey):
        check_put(pb.PutRequest(value=b"v"))


def test_put_with_ignore_value_and_a_value_is_refused() -> None:
    with pytest.raises(ErrValueProvided):
        check_put(pb.PutRequest(key=b"k", value=b"v", ignore_value=True))


def test_put_with_ignore_lease_and_a_lease_is_refused() -> None:
    with pytest.raises(ErrLeaseProvided):
        check_put(pb.PutRequest(key=b"k", lease=7, ignore_lease=True))


def test_delete_without_key_is_refused() -> None:
    with pytest.raises(ErrEmptyKey):
        check_delete_range(pb.DeleteRangeRequest())


def test_txn_at_the_op_limit_is_accepted() -> None:
    check_txn(pb.TxnRequest(success=[put(b"k%d" % i) for i in range(128)]), max_txn_ops=128)


def test_txn_over_the_op_limit_is_refused() -> None:
    with pytest.raises(ErrTooManyOps):
        check_txn(pb.TxnRequest(success=[put(b"k%d" % i) for i in range(129)]), max_txn_ops=128)


def test_nested_txn_shares_the_outer_op_budget() -> None:
    inner = nested([put(b"a"), put(b"b")], [])
    with pytest.raises(ErrTooManyOps):
        check_txn(pb.TxnRequest(success=[inner, put(b"c")]), max_txn_ops=3)


def test_compare_without_key_is_refused() -> None:
    with pytest.raises(ErrEmptyKey):
        check_txn(pb.TxnRequest(compare=[pb.Compare()]), max_txn_ops=128)


def test_empty_request_op_is_refused_as_key_not_found() -> None:
    with pytest.raises(ErrKeyNotFound):
        check_txn(pb.TxnRequest(success=[pb.RequestOp()]), max_txn_ops=128)


def test_two_puts_of_one_key_in_a_branch_are_refused() -> None:
    with pytest.raises(ErrDuplicateKey):
        check_txn(pb.TxnRequest(success=[put(b"k"), put(b"k")]), max_txn_ops=128)


def test_put_inside_a_deleted_range_is_refused() -> None:
    with pytest.raises(ErrDuplicateKey):
        check_txn(pb.TxnRequest(success=[delete(b"a", b"c"), put(b"b")]), max_txn_ops=128)


def test_put_at_the_end_of_a_deleted_range_is_accepted() -> None:
    check_txn(pb.TxnRequest(success=[delete(b"a", b"c"), put(b"c")]), max_txn_ops=128)


def test_same_key_in_success_and_failure_is_accepted() -> None:
    check_txn(pb.TxnRequest(success=[put(b"k")], failure=[put(b"k")]), max_txn_ops=128)


def test_same_key_in_both_branches_of_a_nested_txn_is_accepted() -> None:
    check_txn(pb.TxnRequest(success=[nested([put(b"k")], [put(b"k")])]), max_txn_ops=128)


def test_nested_put_of_a_key_the_outer_branch_puts_is_refused() -> None:
    with pytest.raises(ErrDuplicateKey):
        check_txn(pb.TxnRequest(success=[nested([put(b"k")], []), put(b"k")]), max_txn_ops=128)


def test_nested_delete_covering_an_outer_put_is_refused() -> None:
    with pytest.raises(ErrDuplicateKey):
        check_txn(pb.TxnRequest(success=[nested([delete(b"k")], []), put(b"k")]), max_txn_ops=128)


def test_from_key_delete_does_not_conflict_with_a_put_as_in_etcd() -> None:
    # etcd treats the "\0" range end literally in this check, so the interval is empty.
    check_txn(pb.TxnRequest(success=[delete(b"a", b"\x00"), put(b"b")]), max_txn_ops=128)
