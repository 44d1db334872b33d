"""Which key ranges a set of permissions covers (etcd's interval rules)."""

from __future__ import annotations

from cairn.member.auth_ranges import Coverage, UserAccess
from cairn.proto.auth_pb2 import Permission


def test_a_single_key_permission_covers_that_key_only() -> None:
    coverage = Coverage.of([(b"foo", b"")])
    assert coverage.covers(b"foo", b"")
    assert not coverage.covers(b"foo0", b"")
    assert not coverage.covers(b"fo", b"")


def test_a_range_covers_keys_from_its_start_up_to_but_not_including_its_end() -> None:
    coverage = Coverage.of([(b"k1", b"k5")])
    assert coverage.covers(b"k1", b"")
    assert coverage.covers(b"k4zzz", b"")
    assert not coverage.covers(b"k5", b"")
    assert coverage.covers(b"k1", b"k5")
    assert coverage.covers(b"k2", b"k3")
    assert not coverage.covers(b"k1", b"k6")
    assert not coverage.covers(b"k0", b"k2")


def test_from_key_covers_everything_after_and_ranges_open_at_the_top() -> None:
    coverage = Coverage.of([(b"zz", b"\x00")])
    assert coverage.covers(b"zzz", b"")
    assert coverage.covers(b"zz", b"\x00")
    assert not coverage.covers(b"zy", b"\x00")


def test_adjacent_grants_cover_their_union_but_a_gap_breaks_it() -> None:
    assert Coverage.of([(b"a", b"c"), (b"c", b"e")]).covers(b"a", b"e")
    assert not Coverage.of([(b"a", b"c"), (b"d", b"e")]).covers(b"a", b"e")
    assert Coverage.of([(b"a", b"c"), (b"b", b"\x00")]).covers(b"a", b"\x00")


def test_a_range_request_is_not_covered_by_single_key_grants_alone() -> None:
    assert not Coverage.of([(b"a", b""), (b"b", b"")]).covers(b"a", b"c")


def test_readwrite_counts_for_both_read_and_write() -> None:
    access = UserAccess.of(
        [
            Permission(permType=Permission.READ, key=b"r"),
            Permission(permType=Permission.WRITE, key=b"w"),
            Permission(permType=Permission.READWRITE, key=b"rw"),
        ]
    )
    assert access.read.covers(b"r", b"") and not access.write.covers(b"r", b"")
    assert access.write.covers(b"w", b"") and not access.read.covers(b"w", b"")
    assert access.read.covers(b"rw", b"") and access.write.covers(b"rw", b"")
