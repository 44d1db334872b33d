"""PutRequest and DeleteRangeRequest: responses, prev_kv, ignore_value/ignore_lease, and
requests that fail leaving the store exactly as it was."""

from __future__ import annotations

import pytest
from tests.mvcc.harness import EVERYTHING, KV, keys_of, prefix_end

from cairn.errors import ErrEmptyKey, ErrKeyNotFound, ErrLeaseNotFound, ErrValueProvided
from cairn.proto import rpc_pb2 as pb


def state(kv: KV) -> tuple[int, list[pb.RangeResponse]]:
    """The revision and everything readable at every revision."""
    reads = [kv.get(*EVERYTHING, revision=rev) for rev in range(1, kv.revision + 1)]
    return kv.revision, reads


# ---- put -------------------------------------------------------------------------------------


def test_put_response_carries_the_new_revision(kv: KV) -> None:
    response = kv.put(b"a", b"1")
    assert response.header.revision == 2
    assert not response.HasField("prev_kv")


def test_put_prev_kv_returns_the_replaced_value(kv: KV) -> None:
    kv.put(b"a", b"1")
    previous = kv.put(b"a", b"2", prev_kv=True).prev_kv
    assert (previous.key, previous.value, previous.mod_revision, previous.version) == (
        b"a",
        b"1",
        2,
        1,
    )


def test_put_prev_kv_of_a_new_key_is_absent(kv: KV) -> None:
    assert not kv.put(b"a", b"1", prev_kv=True).HasField("prev_kv")


def test_put_prev_kv_of_a_deleted_key_is_absent(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.delete(b"a")
    assert not kv.put(b"a", b"2", prev_kv=True).HasField("prev_kv")


def test_put_of_an_empty_value_is_a_real_value(kv: KV) -> None:
    kv.put(b"a", b"")
    response = kv.get(b"a")
    assert (response.count, response.kvs[0].value, response.kvs[0].version) == (1, b"", 1)


def test_put_of_the_same_value_still_makes_a_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    assert kv.put(b"a", b"1").header.revision == 3
    assert kv.get(b"a").kvs[0].version == 2


def test_put_ignore_value_keeps_the_value_and_bumps_the_version(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.put(b"a", ignore_value=True)
    a = kv.get(b"a").kvs[0]
    assert (response.header.revision, a.value, a.version, a.mod_revision) == (3, b"1", 2, 3)


def test_put_ignore_lease_keeps_the_value_given(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a", b"2", ignore_lease=True)
    a = kv.get(b"a").kvs[0]
    assert (a.value, a.lease, a.version) == (b"2", 0, 2)


@pytest.mark.parametrize("flag", ["ignore_value", "ignore_lease"])
def test_put_ignoring_a_missing_key_is_key_not_found_and_changes_nothing(kv: KV, flag: str) -> None:
    kv.put(b"other", b"1")
    before = state(kv)
    with pytest.raises(ErrKeyNotFound):
        kv.put(b"a", **{flag: True})
    assert state(kv) == before
    kv.restart()
    assert state(kv) == before
    assert kv.put(b"a", b"1").header.revision == 3


def test_put_ignore_value_of_a_deleted_key_is_key_not_found(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.delete(b"a")
    with pytest.raises(ErrKeyNotFound):
        kv.put(b"a", ignore_value=True)
    assert kv.revision == 3


def test_put_with_an_unknown_lease_is_lease_not_found_and_changes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    before = state(kv)
    with pytest.raises(ErrLeaseNotFound):
        kv.put(b"a", b"2", lease=7)
    assert state(kv) == before


def test_put_with_ignore_value_and_a_value_is_refused(kv: KV) -> None:
    kv.put(b"a", b"1")
    with pytest.raises(ErrValueProvided):
        kv.put(b"a", b"2", ignore_value=True)
    assert kv.revision == 2


def test_put_of_an_empty_key_is_refused(kv: KV) -> None:
    with pytest.raises(ErrEmptyKey):
        kv.put(b"", b"1")
    assert kv.revision == 1


def test_put_of_binary_key_and_value_round_trips(kv: KV) -> None:
    kv.put(b"\x00\xff\x00", b"\xff\x00")
    assert kv.get(b"\x00\xff\x00").kvs[0].value == b"\xff\x00"


# ---- delete ----------------------------------------------------------------------------------


def test_delete_reports_how_many_keys_it_deleted(kv: KV) -> None:
    for key in (b"a", b"ab", b"b"):
        kv.put(key, b"1")
    response = kv.delete(b"a", prefix_end(b"a"))
    assert (response.deleted, response.header.revision) == (2, 5)
    assert keys_of(kv.get(*EVERYTHING)) == [b"b"]


def test_delete_prev_kvs_returns_the_deleted_values(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")
    kv.put(b"c", b"3")
    response = kv.delete(b"a", b"c", prev_kv=True)
    assert [(item.key, item.value, item.mod_revision) for item in response.prev_kvs] == [
        (b"a", b"1", 2),
        (b"b", b"2", 3),
    ]


def test_delete_without_prev_kv_returns_no_prev_kvs(kv: KV) -> None:
    kv.put(b"a", b"1")
    assert list(kv.delete(b"a").prev_kvs) == []


def test_delete_of_nothing_keeps_the_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.delete(b"a")
    response = kv.delete(b"a", prev_kv=True)
    assert (response.deleted, list(response.prev_kvs), response.header.revision) == (0, [], 3)
    assert kv.revision == 3


def test_delete_with_nul_range_end_deletes_every_key_from_key_on(kv: KV) -> None:
    for key in (b"a", b"b", b"c", b"\xff"):
        kv.put(key, b"1")
    assert kv.delete(b"b", b"\x00").deleted == 3
    assert keys_of(kv.get(*EVERYTHING)) == [b"a"]


def test_delete_of_everything(kv: KV) -> None:
    for key in (b"\x00", b"a", b"\xff"):
        kv.put(key, b"1")
    assert kv.delete(*EVERYTHING).deleted == 3
    assert kv.get(*EVERYTHING).count == 0


def test_delete_with_range_end_not_above_key_deletes_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"1")
    assert kv.delete(b"b", b"b").deleted == 0
    assert kv.delete(b"b", b"a").deleted == 0
    assert kv.revision == 3


def test_delete_single_key_leaves_longer_keys_alone(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a\x00", b"1")
    kv.put(b"ab", b"1")
    assert kv.delete(b"a").deleted == 1
    assert keys_of(kv.get(*EVERYTHING)) == [b"a\x00", b"ab"]


def test_delete_of_an_empty_key_is_refused(kv: KV) -> None:
    with pytest.raises(ErrEmptyKey):
        kv.delete(b"", b"\x00")
