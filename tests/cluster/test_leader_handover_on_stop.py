"""A leader stopped with SIGTERM hands leadership over first (as etcd does on shutdown).

A rolling restart then never leaves the cluster without a leader for an election timeout: the
member it names takes over before the old leader's process exits.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import run_etcdctl

pytestmark = pytest.mark.slow

_HANDOVER = re.compile(r"stopping: handing leadership to ([0-9a-f]+)")


def test_a_stopped_leader_hands_leadership_to_another_member(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        assert run_etcdctl(cluster.endpoints(), ["put", "k", "v"]).returncode == 0
        leader.stop()
        assert leader.process is not None and leader.process.returncode == 0
        handover = _HANDOVER.search(leader.log_path.read_text())
        assert handover is not None, leader.log_path.read_text()[-2000:]
        successor = cluster.wait_for_leader(timeout=10)
        assert successor.member_id == handover.group(1)
        get = run_etcdctl(successor.client_endpoint, ["get", "k", "--print-value-only"])
        assert get.stdout.strip() == "v"


def test_a_stopped_follower_does_not_touch_leadership(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.members.values() if m is not leader)
        follower.stop()
        assert "handing leadership" not in follower.log_path.read_text()
        assert cluster.wait_for_leader(timeout=10) is leader
