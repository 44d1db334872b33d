"""Revisions, versions and reads of the past: every change is kept until compaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.mvcc.harness import KV, keys_of, values_of

from cairn.errors import ErrFutureRev
from cairn.proto.kv_pb2 import KeyValue


def only_kv(kv: KV, key: bytes, revision: int = 0) -> KeyValue:
    response = kv.get(key, revision=revision)
    assert len(response.kvs) == 1, f"{key!r} at {revision}: {response}"
    return response.kvs[0]


def test_each_put_makes_one_new_revision(kv: KV) -> None:
    assert kv.put(b"a", b"1").header.revision == 2
    assert kv.put(b"b", b"1").header.revision == 3
    assert kv.put(b"a", b"2").header.revision == 4
    assert kv.revision == 4


def test_updates_count_versions_and_keep_the_create_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"other", b"x")
    kv.put(b"a", b"2")
    kv.put(b"a", b"3")
    a = only_kv(kv, b"a")
    assert (a.value, a.create_revision, a.mod_revision, a.version) == (b"3", 2, 5, 3)


def test_read_at_a_revision_sees_the_state_right_after_it(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    kv.put(b"a", b"2")  # 3
    kv.put(b"b", b"1")  # 4
    assert values_of(kv.get(b"a", revision=2)) == [b"1"]
    assert values_of(kv.get(b"a", revision=3)) == [b"2"]
    assert keys_of(kv.get(b"a", b"\x00", revision=3)) == [b"a"]
    assert keys_of(kv.get(b"a", b"\x00", revision=4)) == [b"a", b"b"]


def test_historical_values_carry_their_own_version_and_mod_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a", b"2")
    old = only_kv(kv, b"a", revision=2)
    assert (old.value, old.create_revision, old.mod_revision, old.version) == (b"1", 2, 2, 1)


def test_historical_read_header_carries_the_current_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"a", b"2")
    assert kv.get(b"a", revision=2).header.revision == 3


def test_reading_revision_one_of_a_written_store_finds_nothing(kv: KV) -> None:
    kv.put(b"a", b"1")
    assert kv.get(b"\x00", b"\x00", revision=1).count == 0


def test_read_before_a_key_was_created_finds_nothing(kv: KV) -> None:
    kv.put(b"x", b"1")  # 2
    kv.put(b"a", b"1")  # 3
    assert list(kv.get(b"a", revision=2).kvs) == []


def test_read_above_the_current_revision_is_a_future_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    with pytest.raises(ErrFutureRev):
        kv.get(b"a", revision=3)


def test_read_at_the_current_revision_equals_a_plain_read(kv: KV) -> None:
    kv.put(b"a", b"1")
    kv.put(b"b", b"2")
    assert kv.get(b"a", b"\x00", revision=3) == kv.get(b"a", b"\x00")


def test_a_delete_hides_the_key_from_its_revision_on(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    assert kv.delete(b"a").header.revision == 3
    assert values_of(kv.get(b"a", revision=2)) == [b"1"]
    assert list(kv.get(b"a", revision=3).kvs) == []
    assert list(kv.get(b"a").kvs) == []


def test_delete_of_a_missing_key_does_not_make_a_revision(kv: KV) -> None:
    kv.put(b"a", b"1")
    response = kv.delete(b"nothing")
    assert response.deleted == 0
    assert response.header.revision == 2
    assert kv.revision == 2
    assert kv.put(b"b", b"1").header.revision == 3


def test_a_range_delete_is_one_revision_for_all_its_keys(kv: KV) -> None:
    for key in (b"a", b"b", b"c"):
        kv.put(key, b"1")  # 2, 3, 4
    response = kv.delete(b"a", b"c")
    assert (response.deleted, response.header.revision, kv.revision) == (2, 5, 5)
    assert keys_of(kv.get(b"a", b"\x00", revision=4)) == [b"a", b"b", b"c"]
    assert keys_of(kv.get(b"a", b"\x00", revision=5)) == [b"c"]


def test_recreating_a_deleted_key_starts_a_new_generation(kv: KV) -> None:
    kv.put(b"a", b"1")  # 2
    kv.put(b"a", b"2")  # 3
    kv.delete(b"a")  # 4
    kv.put(b"a", b"3")  # 5
    a = only_kv(kv, b"a")
    assert (a.value, a.create_revision, a.mod_revision, a.version) == (b"3", 5, 5, 1)


def test_each_generation_of_a_recreated_key_stays_readable(kv: KV) -> None:
    kv.put(b"a", b"first")  # 2
    kv.delete(b"a")  # 3
    kv.put(b"a", b"second")  # 4
    kv.put(b"a", b"second again")  # 5
    first = only_kv(kv, b"a", revision=2)
    assert (first.value, first.create_revision, first.version) == (b"first", 2, 1)
    assert list(kv.get(b"a", revision=3).kvs) == []
    second = only_kv(kv, b"a", revision=5)
    assert (second.value, second.create_revision, second.version) == (b"second again", 4, 2)


def test_writes_are_readable_before_they_are_flushed(tmp_path: Path) -> None:
    kv = KV(tmp_path / "db", autoflush=False)
    try:
        kv.put(b"a", b"1")
        kv.put(b"a", b"2")
        assert values_of(kv.get(b"a", revision=2)) == [b"1"]
        assert values_of(kv.get(b"a")) == [b"2"]
    finally:
        kv.close()
