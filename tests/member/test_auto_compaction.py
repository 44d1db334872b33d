"""Auto-compaction: etcd 3.4's reading of the flags and its two schedules, on a fake clock.

The error texts were taken from etcd 3.4.23 started with the same flags.
"""

from __future__ import annotations

import asyncio

import pytest

from cairn.errors import ErrCompacted, ErrNoLeader
from cairn.go_duration import format_go_duration
from cairn.member.auto_compaction import (
    AutoCompactionError,
    Host,
    parse,
    run_periodic,
    run_revision,
)


def test_a_bare_integer_is_hours_in_periodic_mode() -> None:
    assert parse("periodic", "1").period_s == 3600.0


def test_a_duration_is_taken_as_is_in_periodic_mode() -> None:
    assert parse("periodic", "30m").period_s == 1800.0
    assert parse("", "1h30m").period_s == 5400.0


def test_a_bare_integer_is_a_revision_count_in_revision_mode() -> None:
    assert parse("revision", "1000").revisions == 1000


def test_retention_zero_disables_auto_compaction() -> None:
    assert not parse("periodic", "0").enabled
    assert not parse("revision", "0").enabled
    assert parse("periodic", "5m").enabled


@pytest.mark.parametrize(
    ("mode", "retention", "message"),
    [
        (
            "foo",
            "1",
            "error verifying flags, unknown auto-compaction-mode \"foo\". See 'etcd --help'.",
        ),
        ("periodic", "abc", 'error parsing CompactionRetention: time: invalid duration "abc"'),
        (
            "periodic",
            "1.5",
            'error parsing CompactionRetention: time: missing unit in duration "1.5"',
        ),
        (
            "revision",
            "-5",
            'error parsing CompactionRetention: time: missing unit in duration "-5"',
        ),
        (
            "periodic",
            "5x",
            'error parsing CompactionRetention: time: unknown unit "x" in duration "5x"',
        ),
    ],
)
def test_bad_flags_fail_with_etcds_message(mode: str, retention: str, message: str) -> None:
    with pytest.raises(AutoCompactionError) as error:
        parse(mode, retention)
    assert str(error.value) == message


def test_durations_print_as_go_prints_them() -> None:
    assert [format_go_duration(s) for s in (2, 1800, 3600, 1.5, 0.5, 5400)] == [
        "2s",
        "30m0s",
        "1h0m0s",
        "1.5s",
        "500ms",
        "1h30m0s",
    ]


class FakeMember:
    """A revision that grows by one per clock second, a leader flag and recorded compactions."""

    def __init__(self, leads: bool = True) -> None:
        self.now = 0.0
        self.leading = leads
        self.compacted: list[tuple[float, int]] = []
        self.failures: list[BaseException] = []

    def host(self) -> Host:
        async def sleep(seconds: float) -> None:
            self.now += seconds
            await asyncio.sleep(0)

        async def compact(rev: int) -> None:
            if self.failures:
                raise self.failures.pop(0)
            self.compacted.append((round(self.now, 6), rev))

        return Host(
            revision=lambda: int(self.now) + 1,
            leads=lambda: self.leading,
            compact=compact,
            sleep=sleep,
            clock=lambda: self.now,
        )

    def run_until(self, work: object, until: float) -> None:
        async def drive() -> None:
            task = asyncio.create_task(work)  # type: ignore[arg-type]
            while self.now < until:
                await asyncio.sleep(0)
            task.cancel()

        asyncio.run(drive())


def test_periodic_compacts_to_the_revision_seen_a_retention_ago_every_retention() -> None:
    member = FakeMember()
    member.run_until(run_periodic(member.host(), 100.0), until=350)
    # Samples every 10 s; each compaction goes to the revision sampled 100 s before it.
    assert member.compacted == [(100.0, 1), (200.0, 101), (300.0, 201)]


def test_periodic_with_a_long_retention_compacts_hourly_to_the_revision_a_retention_ago() -> None:
    member = FakeMember()
    member.run_until(run_periodic(member.host(), 7200.0), until=3 * 3600 + 1)
    assert member.compacted == [(7200.0, 1), (10800.0, 3601)]


def test_periodic_retries_a_failed_compaction_at_the_next_sample() -> None:
    member = FakeMember()
    member.failures.append(ErrNoLeader())
    member.run_until(run_periodic(member.host(), 100.0), until=115)
    assert member.compacted == [(110.0, 11)]


def test_revision_mode_keeps_the_latest_n_revisions_checked_every_interval() -> None:
    member = FakeMember()
    member.run_until(run_revision(member.host(), 50, 30.0), until=125)
    # t=30: revision 31 - 50 <= 0, nothing; then 61-50, 91-50, 121-50.
    assert member.compacted == [(60.0, 11), (90.0, 41), (120.0, 71)]


def test_revision_mode_treats_an_already_compacted_revision_as_done() -> None:
    member = FakeMember()
    member.failures.append(ErrCompacted())
    member.run_until(run_revision(member.host(), 50, 30.0), until=95)
    assert member.compacted == [(90.0, 41)]


def test_a_follower_never_compacts() -> None:
    member = FakeMember(leads=False)
    member.run_until(run_periodic(member.host(), 100.0), until=500)
    member.run_until(run_revision(member.host(), 5, 30.0), until=1000)
    assert member.compacted == []
