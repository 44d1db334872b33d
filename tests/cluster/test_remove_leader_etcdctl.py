"""`etcdctl member remove` of the leader itself, sent to the leader, on real `cairn serve`
processes: the removed leader stops, the two survivors elect a new leader and keep serving."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster
from tests.cluster.test_membership_etcdctl import ctl, member_list, until_ok
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(90),
]

# etcdctl 3.4 prints `Member %16x removed from cluster %16x`: hex ids padded with spaces.
_REMOVED = re.compile(r"^Member\s+([0-9a-f]+) removed from cluster\s+([0-9a-f]+)$", re.M)


def status_of(endpoint: str) -> dict[str, object]:
    """`endpoint status -w json` of one member: its header and its view of the leader."""
    (entry,) = json.loads(ctl(endpoint, "endpoint", "status", "-w", "json"))
    return entry["Status"]  # type: ignore[no-any-return]


def leader_by_status(cluster: ProcessCluster) -> ClusterProcess:
    """The member whose own endpoint status names itself leader."""
    cluster.wait_for_leader()
    for member in cluster.running():
        status = status_of(member.client_endpoint)
        if status["header"]["member_id"] == status["leader"]:  # type: ignore[index]
            return member
    raise AssertionError("no member reports itself as leader")


def test_member_remove_of_the_leader_stops_it_and_the_survivors_carry_on(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        until_ok(cluster.endpoints(), "put", "before", "1")
        leader = leader_by_status(cluster)
        header = status_of(leader.client_endpoint)["header"]
        leader_id = format(header["member_id"], "x")  # type: ignore[index]
        cluster_id = format(header["cluster_id"], "x")  # type: ignore[index]

        removed = run_etcdctl(leader.client_endpoint, ["member", "remove", leader_id])

        assert removed.returncode == 0, removed.stderr
        match = _REMOVED.search(removed.stdout)
        assert match is not None, removed.stdout
        assert match.groups() == (leader_id, cluster_id)
        assert leader.process is not None
        leader.process.wait(timeout=20)
        assert "permanently removed from the cluster" in leader.log_path.read_text()

        survivors = cluster.running()
        assert len(survivors) == 2 and leader not in survivors
        new_leader = cluster.wait_for_leader()
        assert new_leader.member_id != leader_id
        endpoints = cluster.endpoints()
        listed = {format(m["ID"], "x") for m in member_list(endpoints)}  # type: ignore[arg-type]
        assert len(listed) == 2 and listed == {m.member_id for m in survivors}

        for member in survivors:
            until_ok(member.client_endpoint, "put", f"after/{member.name}", member.name)
        for member in survivors:
            for writer in survivors:
                got = ctl(
                    member.client_endpoint, "get", f"after/{writer.name}", "--print-value-only"
                )
                assert got == f"{writer.name}\n"
            assert ctl(member.client_endpoint, "get", "before", "--print-value-only") == "1\n"


def test_a_removed_member_exits_with_status_0_as_etcds_does(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = leader_by_status(cluster)
        follower = next(m for m in cluster.running() if m is not leader)
        assert follower.member_id is not None
        ctl(leader.client_endpoint, "member", "remove", follower.member_id)
        assert follower.process is not None
        assert follower.process.wait(timeout=20) == 0
