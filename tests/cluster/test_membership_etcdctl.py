"""Membership changes driven by the real etcdctl against real `cairn serve` processes:
member add --learner, a new member joining with --initial-cluster-state existing, member
promote, member remove of a founder, move-leader, and the data on the new member."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.support.etcdctl import etcdctl_path, run_etcdctl

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]


def ctl(endpoints: str, *args: str) -> str:
    result = run_etcdctl(endpoints, list(args))
    assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stderr}"
    return result.stdout


def until_ok(endpoints: str, *args: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = run_etcdctl(endpoints, ["--command-timeout=3s", *args])
        if result.returncode == 0:
            return result.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"etcdctl {' '.join(args)} kept failing: {result.stderr}")
        time.sleep(0.2)


def until_shows(endpoints: str, expected: str, *args: str, timeout: float = 20.0) -> str:
    """Retry until the output contains `expected`: a serializable read on a member that has
    just joined succeeds before it has caught up, and answers from its (empty) local state."""
    deadline = time.monotonic() + timeout
    while True:
        output = until_ok(endpoints, *args, timeout=timeout)
        if expected in output:
            return output
        if time.monotonic() > deadline:
            raise AssertionError(f"etcdctl {' '.join(args)} never showed {expected!r}: {output!r}")
        time.sleep(0.2)


def member_list(endpoints: str) -> list[dict[str, object]]:
    return json.loads(ctl(endpoints, "member", "list", "-w", "json"))["members"]  # type: ignore[no-any-return]


def peer_url_of(member: ClusterProcess) -> str:
    return next(a.split("=", 1)[1] for a in member.argv if a.startswith("--listen-peer-urls="))


def join_learner(cluster: ProcessCluster, tmp_path: Path) -> tuple[ClusterProcess, str]:
    """`member add m4 --learner`, then start m4 with --initial-cluster-state existing."""
    endpoints = cluster.endpoints()
    peer_port, client_port = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer_port}"
    added = json.loads(
        ctl(
            endpoints,
            "member",
            "add",
            "m4",
            f"--peer-urls={peer_url}",
            "--learner",
            "-w",
            "json",
        )
    )
    new_id = format(added["member"]["ID"], "x")
    assert added["member"]["isLearner"] is True
    assert len(added["members"]) == 4

    founders = ",".join(f"{m.name}={peer_url_of(m)}" for m in cluster.members.values())
    m4 = ClusterProcess(tmp_path, "m4", f"{founders},m4={peer_url}", client_port, peer_port)
    m4.argv.append("--initial-cluster-state=existing")
    cluster.members["m4"] = m4
    m4.start()
    return m4, new_id


def test_learner_joins_is_promoted_founder_removed_and_leadership_moved(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        endpoints = cluster.endpoints()
        ctl(endpoints, "put", "before", "1")
        m4, new_id = join_learner(cluster, tmp_path)
        until_shows(m4.client_endpoint, "1", "get", "before", "--consistency=s")
        # The joined member took the ID `member add` printed from the cluster (it hashes the
        # second of the add, so m4 could not have derived it).
        own = json.loads(ctl(m4.client_endpoint, "endpoint", "status", "-w", "json"))
        assert format(own[0]["Status"]["header"]["member_id"], "x") == new_id

        leader = cluster.wait_for_leader()
        # Through a follower: it forwards the promote to the leader, as etcd does.
        follower = next(m for m in cluster.members.values() if m not in (leader, m4))
        until_ok(follower.client_endpoint, "member", "promote", new_id)
        again = run_etcdctl(follower.client_endpoint, ["member", "promote", new_id])
        assert "etcdserver: can only promote a learner member" in again.stderr
        listed = {format(m["ID"], "x"): m for m in member_list(endpoints)}  # type: ignore[arg-type]
        assert not listed[new_id].get("isLearner", False)

        leader = cluster.wait_for_leader()
        victim = next(m for m in cluster.members.values() if m not in (leader, m4))
        assert victim.member_id is not None
        ctl(leader.client_endpoint, "member", "remove", victim.member_id)
        victim.stop()
        remaining = cluster.endpoints()
        ids = {format(m["ID"], "x") for m in member_list(remaining)}  # type: ignore[arg-type]
        assert victim.member_id not in ids and new_id in ids and len(ids) == 3

        until_ok(remaining, "move-leader", new_id)
        status = json.loads(ctl(m4.client_endpoint, "endpoint", "status", "-w", "json"))
        assert format(status[0]["Status"]["leader"], "x") == new_id

        until_ok(remaining, "put", "after", "2")
        assert "2" in until_ok(m4.client_endpoint, "get", "after")
        assert "1" in until_ok(m4.client_endpoint, "get", "before")


def test_a_learner_serves_serializable_reads_and_status_and_refuses_the_rest(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        ctl(cluster.endpoints(), "put", "before", "1")
        m4, _ = join_learner(cluster, tmp_path)
        until_shows(m4.client_endpoint, "1", "get", "before", "--consistency=s")
        status = json.loads(ctl(m4.client_endpoint, "endpoint", "status", "-w", "json"))
        assert status[0]["Status"]["isLearner"] is True
        for refused in (["get", "before"], ["put", "k", "v"], ["member", "list"]):
            result = run_etcdctl(m4.client_endpoint, refused)
            assert result.returncode != 0, refused
            assert "etcdserver: rpc not supported for learner" in result.stderr, refused


def test_a_learner_refuses_watch_and_keep_alive_streams_before_reading_them(
    tmp_path: Path,
) -> None:
    """etcd's stream interceptor refuses every stream on a learner (Unavailable, so clients
    move on to another endpoint); etcdctl would retry that forever, so a gRPC client asks."""
    with ProcessCluster(tmp_path) as cluster:
        ctl(cluster.endpoints(), "put", "k", "1")
        m4, _ = join_learner(cluster, tmp_path)
        until_shows(m4.client_endpoint, "1", "get", "k", "--consistency=s")
        with grpc.insecure_channel(m4.client_endpoint) as channel:
            watch = rpc_pb2_grpc.WatchStub(channel).Watch(
                iter([pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k"))]),
                timeout=10,
            )
            with pytest.raises(grpc.RpcError) as refused:
                next(watch)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert refused.value.details() == "etcdserver: rpc not supported for learner"
            keep_alive = rpc_pb2_grpc.LeaseStub(channel).LeaseKeepAlive(
                iter([pb.LeaseKeepAliveRequest(ID=1)]), timeout=10
            )
            with pytest.raises(grpc.RpcError) as refused:
                next(keep_alive)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
            assert refused.value.details() == "etcdserver: rpc not supported for learner"
