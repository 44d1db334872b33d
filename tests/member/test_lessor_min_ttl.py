"""etcd's minimum lease TTL follows from the Raft timing flags: one and a half election
timeouts, rounded up to whole seconds (values checked against etcd 3.4.23 with etcdctl
`lease grant 1`: TTL(2s) with the default flags, TTL(1s) with 50 ms / 500 ms)."""

from __future__ import annotations

import pytest

from cairn.member.lessor import min_lease_ttl


@pytest.mark.parametrize(
    ("heartbeat_ms", "election_ms", "expected"),
    [
        (100, 1000, 2),  # etcd's defaults: 1.5 s -> 2 s
        (50, 500, 1),  # 0.75 s -> 1 s
        (20, 200, 1),  # 0.3 s -> 1 s
        (100, 2000, 3),  # 3 s exactly
        (100, 2100, 4),  # 21 ticks: 31 ticks (integer 1.5x) * 100 ms = 3.1 s -> 4 s
        (300, 1000, 2),  # 3 ticks (integer division): 4 ticks * 300 ms = 1.2 s -> 2 s
    ],
)
def test_min_lease_ttl_is_one_and_a_half_election_timeouts_in_whole_seconds(
    heartbeat_ms: int, election_ms: int, expected: int
) -> None:
    assert min_lease_ttl(heartbeat_ms, election_ms) == expected
