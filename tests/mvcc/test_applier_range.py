"""RangeRequest options: limit, more and count; sorting; revision filters; keys/count only."""

from __future__ import annotations

import pytest
from tests.mvcc.harness import EVERYTHING, KV, keys_of, values_of

from cairn.errors import ErrEmptyKey, EtcdError
from cairn.proto import rpc_pb2 as pb

R = pb.RangeRequest


@pytest.fixture
def five(kv: KV) -> KV:
    """Keys a..e; puts in the order c, a, e, b, d, then c and b updated.

    key  value  create  mod  version
    a    "4"    3       3    1
    b    "3"    5       8    2
    c    "1"    2       7    2
    d    "2"    6       6    1
    e    "4"    4       4    1
    """
    kv.put(b"c", b"0")  # 2
    kv.put(b"a", b"4")  # 3
    kv.put(b"e", b"4")  # 4
    kv.put(b"b", b"9")  # 5
    kv.put(b"d", b"2")  # 6
    kv.put(b"c", b"1")  # 7
    kv.put(b"b", b"3")  # 8
    return kv


# ---- limit, more, count ----------------------------------------------------------------------


def test_limit_cuts_the_result_and_sets_more(five: KV) -> None:
    response = five.get(*EVERYTHING, limit=2)
    assert keys_of(response) == [b"a", b"b"]
    assert response.more is True


def test_count_is_every_matching_key_regardless_of_limit(five: KV) -> None:
    assert five.get(*EVERYTHING, limit=2).count == 5


def test_limit_equal_to_the_match_count_is_not_more(five: KV) -> None:
    response = five.get(*EVERYTHING, limit=5)
    assert (len(response.kvs), response.more, response.count) == (5, False, 5)


def test_limit_above_the_match_count_returns_everything(five: KV) -> None:
    response = five.get(*EVERYTHING, limit=50)
    assert (len(response.kvs), response.more, response.count) == (5, False, 5)


def test_zero_limit_means_no_limit(five: KV) -> None:
    response = five.get(*EVERYTHING, limit=0)
    assert (len(response.kvs), response.more) == (5, False)


def test_limit_applies_to_historical_reads(five: KV) -> None:
    response = five.get(*EVERYTHING, revision=4, limit=1)
    assert keys_of(response) == [b"a"]
    assert (response.more, response.count) == (True, 3)


def test_negative_limit_means_no_limit(five: KV) -> None:
    response = five.get(*EVERYTHING, limit=-1)
    assert (len(response.kvs), response.more, response.count) == (5, False, 5)


def test_limit_of_one_on_a_single_key(five: KV) -> None:
    response = five.get(b"c", limit=1)
    assert (keys_of(response), response.more, response.count) == ([b"c"], False, 1)


# ---- sorting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ascending"),
    [
        (R.KEY, [b"a", b"b", b"c", b"d", b"e"]),
        (R.VERSION, [b"a", b"d", b"e", b"b", b"c"]),
        (R.CREATE, [b"c", b"a", b"e", b"b", b"d"]),
        (R.MOD, [b"a", b"e", b"d", b"c", b"b"]),
        (R.VALUE, [b"c", b"d", b"b", b"a", b"e"]),
    ],
    ids=["key", "version", "create", "mod", "value"],
)
def test_sort_ascending_by_each_target(
    five: KV, target: R.SortTarget, ascending: list[bytes]
) -> None:
    assert keys_of(five.get(*EVERYTHING, sort_target=target, sort_order=R.ASCEND)) == ascending


@pytest.mark.parametrize(
    ("target", "descending"),
    [
        (R.KEY, [b"e", b"d", b"c", b"b", b"a"]),
        (R.VERSION, [b"b", b"c", b"a", b"d", b"e"]),
        (R.CREATE, [b"d", b"b", b"e", b"a", b"c"]),
        (R.MOD, [b"b", b"c", b"d", b"e", b"a"]),
        (R.VALUE, [b"a", b"e", b"b", b"d", b"c"]),
    ],
    ids=["key", "version", "create", "mod", "value"],
)
def test_sort_descending_by_each_target(
    five: KV, target: R.SortTarget, descending: list[bytes]
) -> None:
    assert keys_of(five.get(*EVERYTHING, sort_target=target, sort_order=R.DESCEND)) == descending


def test_sort_ties_keep_key_order_in_both_directions(five: KV) -> None:
    up = five.get(*EVERYTHING, sort_target=R.VERSION, sort_order=R.ASCEND)
    down = five.get(*EVERYTHING, sort_target=R.VERSION, sort_order=R.DESCEND)
    assert keys_of(up)[:3] == [b"a", b"d", b"e"]
    assert keys_of(down)[:2] == [b"b", b"c"]


def test_descending_by_key_with_limit_returns_the_last_keys(five: KV) -> None:
    response = five.get(*EVERYTHING, sort_target=R.KEY, sort_order=R.DESCEND, limit=2)
    assert keys_of(response) == [b"e", b"d"]
    assert (response.more, response.count) == (True, 5)


def test_sort_with_an_order_sorts_all_matches_before_the_limit(five: KV) -> None:
    response = five.get(*EVERYTHING, sort_target=R.VALUE, sort_order=R.ASCEND, limit=2)
    assert keys_of(response) == [b"c", b"d"]
    assert response.more is True


def test_sort_target_without_order_means_ascending(five: KV) -> None:
    assert keys_of(five.get(*EVERYTHING, sort_target=R.MOD)) == [b"a", b"e", b"d", b"c", b"b"]


def test_sort_target_without_order_sorts_only_the_first_limit_plus_one_keys(five: KV) -> None:
    """etcd's behaviour (checked against etcd 3.4): with sort_order NONE the store fetches
    limit + 1 keys in key order and sorts just those, so the result is not the global top."""
    response = five.get(*EVERYTHING, sort_target=R.VALUE, limit=2)
    assert keys_of(response) == [b"c", b"b"]  # sorted from a, b, c — d (value "2") is missed
    assert response.more is True


def test_sort_applies_to_historical_reads(five: KV) -> None:
    response = five.get(*EVERYTHING, revision=5, sort_target=R.VALUE, sort_order=R.DESCEND)
    assert keys_of(response) == [b"b", b"a", b"e", b"c"]


# ---- revision filters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"min_mod_revision": 6}, [b"b", b"c", b"d"]),
        ({"max_mod_revision": 6}, [b"a", b"d", b"e"]),
        ({"min_create_revision": 4}, [b"b", b"d", b"e"]),
        ({"max_create_revision": 4}, [b"a", b"c", b"e"]),
        ({"min_mod_revision": 4, "max_mod_revision": 7}, [b"c", b"d", b"e"]),
        ({"min_create_revision": 3, "max_mod_revision": 6}, [b"a", b"d", b"e"]),
    ],
    ids=["min-mod", "max-mod", "min-create", "max-create", "mod-window", "create-and-mod"],
)
def test_revision_filters_are_inclusive_bounds(
    five: KV, fields: dict[str, int], expected: list[bytes]
) -> None:
    assert keys_of(five.get(*EVERYTHING, **fields)) == expected


def test_filters_apply_before_the_limit(five: KV) -> None:
    response = five.get(*EVERYTHING, min_mod_revision=6, limit=2)
    assert keys_of(response) == [b"b", b"c"]
    assert response.more is True


def test_limit_equal_to_the_filtered_matches_is_not_more(five: KV) -> None:
    response = five.get(*EVERYTHING, min_mod_revision=6, limit=3)
    assert (keys_of(response), response.more) == ([b"b", b"c", b"d"], False)


def test_count_ignores_the_filters(five: KV) -> None:
    """etcd reports the store's match count; the filters only prune the returned kvs."""
    assert five.get(*EVERYTHING, min_mod_revision=6).count == 5


def test_filter_matching_nothing_returns_no_kvs(five: KV) -> None:
    response = five.get(*EVERYTHING, min_create_revision=100)
    assert (list(response.kvs), response.more) == ([], False)


def test_filters_then_sort_then_limit(five: KV) -> None:
    response = five.get(
        *EVERYTHING,
        max_create_revision=5,
        sort_target=R.MOD,
        sort_order=R.DESCEND,
        limit=2,
    )
    assert keys_of(response) == [b"b", b"c"]
    assert response.more is True


# ---- keys_only / count_only ------------------------------------------------------------------


def test_keys_only_drops_values_and_keeps_everything_else(five: KV) -> None:
    full = five.get(*EVERYTHING)
    bare = five.get(*EVERYTHING, keys_only=True)
    assert values_of(bare) == [b""] * 5
    for with_value, without in zip(full.kvs, bare.kvs, strict=True):
        with_value.ClearField("value")
        assert with_value == without
    assert (bare.count, bare.header.revision) == (full.count, full.header.revision)


def test_keys_only_still_sorts_by_value(five: KV) -> None:
    response = five.get(*EVERYTHING, keys_only=True, sort_target=R.VALUE, sort_order=R.ASCEND)
    assert keys_of(response) == [b"c", b"d", b"b", b"a", b"e"]


def test_count_only_returns_the_count_and_no_kvs(five: KV) -> None:
    response = five.get(b"b", b"\x00", count_only=True)
    assert (response.count, list(response.kvs), response.more) == (4, [], False)


def test_count_only_ignores_the_limit(five: KV) -> None:
    response = five.get(*EVERYTHING, count_only=True, limit=1)
    assert (response.count, list(response.kvs), response.more) == (5, [], False)


def test_count_only_at_a_past_revision(five: KV) -> None:
    assert five.get(*EVERYTHING, count_only=True, revision=3).count == 2


# ---- header and validation -------------------------------------------------------------------


def test_header_carries_the_current_revision(five: KV) -> None:
    assert five.get(b"zzz").header.revision == 8


def test_empty_key_is_refused(kv: KV) -> None:
    with pytest.raises(ErrEmptyKey):
        kv.get(b"", b"\x00")


@pytest.mark.parametrize(
    "fields",
    [
        {"sort_target": 99, "sort_order": R.ASCEND},
        {"sort_target": 99},
        {"sort_order": 99},
    ],
    ids=["unknown-target-ascending", "unknown-target", "unknown-order"],
)
def test_unknown_sort_option_is_refused(kv: KV, fields: dict[str, int]) -> None:
    """etcd 3.5 answers "etcdserver: invalid sort option" (3.4 crashes on an unknown target)."""
    kv.put(b"a", b"1")
    with pytest.raises(EtcdError, match=r"^etcdserver: invalid sort option$"):
        kv.get(b"a", b"\x00", **fields)
