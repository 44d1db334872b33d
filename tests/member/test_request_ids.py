"""Proposal IDs follow etcd's layout: member bits, start time, counter."""

from __future__ import annotations

from cairn.member.request_ids import RequestIDs


def test_ids_carry_the_low_16_bits_of_the_member_id() -> None:
    ids = RequestIDs(member_id=0x1234_5678_9ABC_DEF0, now_ms=0)
    assert ids.next() >> 48 == 0xDEF0


def test_ids_start_after_the_start_time_and_count_up() -> None:
    ids = RequestIDs(member_id=1, now_ms=1000)
    assert [ids.next() for _ in range(3)] == [(1 << 48) | (1000 << 8) + n for n in (1, 2, 3)]


def test_counter_overflow_carries_into_the_time_part_not_the_member_part() -> None:
    ids = RequestIDs(member_id=0xFFFF, now_ms=(1 << 40) - 1)
    for _ in range(255):
        ids.next()
    assert ids.next() == 0xFFFF << 48
