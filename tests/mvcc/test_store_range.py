"""Which keys a range covers: half-open [key, range_end), with etcd's special ends."""

from __future__ import annotations

import pytest
from tests.mvcc.harness import KV, keys_of, prefix_end


def put_all(kv: KV, *keys: bytes) -> None:
    for key in keys:
        kv.put(key, b"v")


def test_fresh_store_is_at_revision_one(kv: KV) -> None:
    response = kv.get(b"\x00", b"\x00")
    assert response.header.revision == 1
    assert response.count == 0
    assert list(response.kvs) == []


def test_without_range_end_only_the_exact_key_is_read(kv: KV) -> None:
    put_all(kv, b"a", b"a\x00", b"ab")
    assert keys_of(kv.get(b"a")) == [b"a"]


def test_reading_a_missing_single_key_finds_nothing(kv: KV) -> None:
    put_all(kv, b"a", b"ab")
    response = kv.get(b"aa")
    assert response.count == 0
    assert list(response.kvs) == []


def test_range_is_half_open(kv: KV) -> None:
    put_all(kv, b"a", b"ab", b"b", b"c")
    assert keys_of(kv.get(b"a", b"b")) == [b"a", b"ab"]


def test_range_end_equal_to_key_is_empty(kv: KV) -> None:
    put_all(kv, b"a", b"b")
    response = kv.get(b"a", b"a")
    assert (response.count, list(response.kvs)) == (0, [])


def test_range_end_below_key_is_empty(kv: KV) -> None:
    put_all(kv, b"a", b"b", b"c")
    response = kv.get(b"c", b"a")
    assert (response.count, list(response.kvs)) == (0, [])


def test_nul_range_end_reads_every_key_from_key_on(kv: KV) -> None:
    put_all(kv, b"a", b"b", b"c", b"\xff\xff")
    assert keys_of(kv.get(b"b", b"\x00")) == [b"b", b"c", b"\xff\xff"]


def test_nul_key_with_nul_range_end_reads_everything(kv: KV) -> None:
    put_all(kv, b"\x00", b"\x00\x00", b"a", b"\xff")
    assert keys_of(kv.get(b"\x00", b"\x00")) == [b"\x00", b"\x00\x00", b"a", b"\xff"]


def test_range_end_key_plus_nul_reads_just_the_key(kv: KV) -> None:
    put_all(kv, b"a", b"a\x00", b"a\x00\x00")
    assert keys_of(kv.get(b"a", b"a\x00")) == [b"a"]


def test_prefix_range_reads_keys_with_that_prefix_and_no_sibling(kv: KV) -> None:
    put_all(kv, b"a", b"a\x00", b"a\xff", b"ab", b"b", b"\x60")
    assert keys_of(kv.get(b"a", prefix_end(b"a"))) == [b"a", b"a\x00", b"ab", b"a\xff"]


def test_keys_that_are_prefixes_of_each_other_sort_shorter_first(kv: KV) -> None:
    put_all(kv, b"abc", b"a", b"ab")
    assert keys_of(kv.get(b"a", b"\x00")) == [b"a", b"ab", b"abc"]


def test_binary_keys_sort_bytewise_unsigned(kv: KV) -> None:
    keys = [b"\xff\x00", b"\x80", b"\x01", b"\x7f", b"\xff", b"\x00"]
    put_all(kv, *keys)
    assert keys_of(kv.get(b"\x00", b"\x00")) == sorted(keys)


def test_prefix_of_ff_bytes_has_no_upper_bound(kv: KV) -> None:
    put_all(kv, b"\xfe", b"\xff", b"\xff\xff", b"\xff\xff\x00", b"\xff\xff\xff")
    assert prefix_end(b"\xff\xff") == b"\x00"
    assert keys_of(kv.get(b"\xff\xff", prefix_end(b"\xff\xff"))) == [
        b"\xff\xff",
        b"\xff\xff\x00",
        b"\xff\xff\xff",
    ]


def test_prefix_end_increments_the_last_byte_below_ff() -> None:
    assert prefix_end(b"a") == b"b"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"a\x00") == b"a\x01"
    assert prefix_end(b"\x00") == b"\x01"


def test_deleted_keys_are_not_in_a_range(kv: KV) -> None:
    put_all(kv, b"a", b"b", b"c")
    kv.delete(b"b")
    assert keys_of(kv.get(b"a", b"\x00")) == [b"a", b"c"]


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        pytest.param(None, [b"b"], id="None-is-the-single-key"),
        pytest.param(b"", [b"b", b"c", b"d"], id="empty-is-unbounded"),
        pytest.param(b"d", [b"b", b"c"], id="bytes-is-exclusive-end"),
        pytest.param(b"b", [], id="end-equal-to-key"),
        pytest.param(b"a", [], id="end-below-key"),
    ],
)
def test_store_range_end_convention(kv: KV, end: bytes | None, expected: list[bytes]) -> None:
    put_all(kv, b"a", b"b", b"c", b"d")
    result = kv.store.range(b"b", end)
    assert [item.key for item in result.kvs] == expected
    assert result.count == len(expected)
    assert result.rev == kv.revision
