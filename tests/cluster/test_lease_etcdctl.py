"""Leases on a cluster of three `cairn serve` processes, driven by the real etcdctl: a
keep-alive sent to a follower reaches the leader, a lease outlives the kill -9 of its
leader without expiring early, and leases survive the kill -9 of every member.

The members tick every 50 ms with a 500 ms election timeout (etcd's minimum TTL: 1 s; a new
leader extends every lease by 0.5 s).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster
from tests.support.etcdctl import EXIT_SUCCESS, etcdctl_path, run_etcdctl
from tests.support.tls import CTL_TIMEOUTS, build_pki

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]

_GRANTED = re.compile(r"lease ([0-9a-f]+) granted with TTL\((\d+)s\)")
_REMAINING = re.compile(r"granted with TTL\((\d+)s\), remaining\((-?\d+)s\)")


def ctl(member: ClusterProcess, *args: str) -> str:
    """etcdctl against one member; retried while an election is under way."""
    result = run_etcdctl(member.client_endpoint, list(args))
    for _ in range(50):
        if result.returncode == 0:
            return result.stdout
        time.sleep(0.2)
        result = run_etcdctl(member.client_endpoint, list(args))
    raise AssertionError(f"etcdctl {' '.join(args)} failed: {result.stderr}")


def grant(member: ClusterProcess, ttl: int) -> str:
    found = _GRANTED.search(ctl(member, "lease", "grant", str(ttl)))
    assert found is not None
    return found.group(1)


def value_of(member: ClusterProcess, key: str) -> str:
    return ctl(member, "get", key, "--print-value-only").strip()


def until_gone(members: list[ClusterProcess], key: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(value_of(m, key) == "" for m in members):
            return
        time.sleep(0.2)
    raise AssertionError(f"{key} still present after {timeout}s")


def test_keep_alive_sent_to_a_follower_keeps_a_lease_alive_past_its_ttl(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.running() if m is not leader)
        lease = grant(follower, 2)
        ctl(follower, "put", "k", "v", "--lease", lease)
        # TimeToLive asked of the follower is answered from the leader's clock.
        shown = ctl(follower, "lease", "timetolive", lease, "--keys")
        assert re.search(
            r"granted with TTL\(2s\), remaining\([12]s\), attached keys\(\[k\]\)", shown
        )
        binary = etcdctl_path()
        assert binary is not None
        keeper = subprocess.Popen(
            [binary, f"--endpoints={follower.client_endpoint}", "lease", "keep-alive", lease],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        )
        try:
            time.sleep(6.0)  # three TTLs
            assert value_of(leader, "k") == "v"
        finally:
            keeper.kill()
            out, err = keeper.communicate(timeout=10)
        assert f"lease {lease} keepalived with TTL(2)" in out.decode(), err.decode()
        until_gone(cluster.running(), "k", timeout=6.0)


def test_a_lease_outlives_the_kill_9_of_its_leader_without_expiring_early(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        lease = grant(leader, 4)
        ctl(leader, "put", "k", "v", "--lease", lease)
        granted_at = time.monotonic()
        leader.kill()
        new_leader = cluster.wait_for_leader()
        found = _REMAINING.search(ctl(new_leader, "lease", "timetolive", lease))
        assert found is not None and int(found.group(2)) >= 3, found
        time.sleep(max(0.0, granted_at + 4.5 - time.monotonic()))  # past the old deadline
        assert value_of(new_leader, "k") == "v"
        until_gone(cluster.running(), "k", timeout=8.0)


def test_leases_survive_the_kill_9_of_every_member(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        lease = grant(leader, 600)
        ctl(leader, "put", "k", "v", "--lease", lease)
        for member in cluster.members.values():
            member.kill()
        for member in cluster.members.values():
            member.start()
        leader = cluster.wait_for_leader()
        shown = ctl(leader, "lease", "timetolive", lease, "--keys")
        found = _REMAINING.search(shown)
        # The new leader restarts every lease's clock when it takes over; a loaded machine
        # may take a few seconds between that and this query.
        assert found is not None and found.group(1) == "600" and int(found.group(2)) >= 590
        assert "attached keys([k])" in shown
        assert lease in ctl(leader, "lease", "list")
        ctl(leader, "lease", "revoke", lease)
        until_gone(cluster.running(), "k", timeout=5.0)


def test_keep_alive_through_a_follower_reaches_the_leader_over_peer_tls(tmp_path: Path) -> None:
    """With TLS on both ports (client certificates required), a follower forwards keep-alives
    and TimeToLive over the mutually authenticated peer transport."""
    certs = build_pki(tmp_path, members=("m1", "m2", "m3"))
    flags = (*certs.ctl_flags(), *CTL_TIMEOUTS)
    (tmp_path / "cluster").mkdir()
    with ProcessCluster(
        tmp_path / "cluster", tls_args=certs.server_flags, ctl_flags=flags
    ) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.running() if m is not leader)

        def secured(*args: str) -> str:
            result = run_etcdctl(follower.client_endpoint, list(args), extra_global_flags=flags)
            assert result.returncode == EXIT_SUCCESS, result
            return result.stdout

        found = _GRANTED.search(secured("lease", "grant", "60"))
        assert found is not None
        lease = found.group(1)
        assert secured("lease", "keep-alive", "--once", lease) == (
            f"lease {lease} keepalived with TTL(60)\n"
        )
        assert "remaining(" in secured("lease", "timetolive", lease)
