"""The failure signals operators alert on, each provoked for a real reason on a 3-member
cluster of `cairn serve` processes: /health's RANGE ERROR, etcd_server_slow_apply_total and
etcd_server_proposals_failed_total.

- One DeleteRange of thousands of keys is one log entry whose apply takes over etcd's 100 ms
  "apply request took too long" threshold (about 170 ms here, on each member). (The WAL fsync delay
  fault does not count: like etcd, cairn times the apply of an entry, after its fsync.)
- A member cut off from both peers (the TEST-ONLY faults file drops its peer traffic) still
  believes in its leader for an election timeout, so /health gets past RAFT NO LEADER and
  its linearizable read, whose ReadIndex never reaches the leader, times out: RANGE ERROR.
- A linearizable read on a member cut off from its peers waits for a ReadIndex that never
  comes and times out; etcd counts a read-only Range slower than 100 ms (from its arrival)
  as a slow apply too, and so does cairn.
- A put to a leader cut off from both followers is appended but never committed: it times
  out after the request timeout, which etcd counts as a failed proposal (its metrics guide:
  failures come from leader elections or "a loss of quorum in the cluster").

Every fault is healed before the next test; the cluster serves the whole module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.observe.exposition import fetch, scrape
from tests.support.etcdctl import etcdctl_path, run_etcdctl

from cairn.member.stats import SLOW_APPLY_S
from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc as rpc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(240),
]

ELECTION_TIMEOUT_MS = 3000
"""Long enough that a member just cut off still names its leader while /health runs."""

LARGE_RANGE_KEYS = 4 * 64 * 128  # deleted by one request: several 100 ms of apply even unloaded
TXN_OPS = 128  # etcd's default --max-txn-ops


class FaultyCluster(ProcessCluster):
    """Three members with metrics URLs and TEST-ONLY faults files, slow to elect."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.metrics_urls: dict[str, str] = {}
        self.fault_files: dict[str, Path] = {}
        for name, member in self.members.items():
            self.metrics_urls[name] = f"http://127.0.0.1:{free_port()}"
            self.fault_files[name] = base / f"{name}.faults"
            member.argv += [
                f"--listen-metrics-urls={self.metrics_urls[name]}",
                f"--experimental-test-faults-file={self.fault_files[name]}",
                f"--election-timeout={ELECTION_TIMEOUT_MS}",
                "--heartbeat-interval=100",
            ]

    def counter(self, member: ClusterProcess, name: str) -> float:
        return scrape(self.metrics_urls[member.name])[name].value()

    def cut_off(self, member: ClusterProcess) -> None:
        """Drop all of `member`'s traffic with its peers (the file is polled every 50 ms)."""
        peers = [m.member_id for m in self.members.values() if m is not member]
        self.fault_files[member.name].write_text("".join(f"{p}\n" for p in peers))
        time.sleep(0.3)

    def heal(self) -> None:
        for path in self.fault_files.values():
            path.write_text("")
        time.sleep(0.3)
        self.wait_for_leader()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyCluster]:
    with FaultyCluster(tmp_path_factory.mktemp("faulty")) as running:
        yield running


def health(cluster: FaultyCluster, member: ClusterProcess) -> tuple[int, dict[str, str]]:
    status, body = fetch(f"{cluster.metrics_urls[member.name]}/health", timeout=20)
    return status, json.loads(body)


def put_many(member: ClusterProcess, prefix: bytes, count: int) -> None:
    """`count` keys under `prefix`, in transactions of 128 puts over gRPC."""
    with grpc.insecure_channel(member.client_endpoint) as channel:
        kv = rpc.KVStub(channel)
        for start in range(0, count, TXN_OPS):
            puts = [
                pb.RequestOp(request_put=pb.PutRequest(key=prefix + b"%06d" % i, value=b"v" * 64))
                for i in range(start, min(start + TXN_OPS, count))
            ]
            kv.Txn(pb.TxnRequest(success=puts), timeout=30)


def applies_over_100ms(cluster: FaultyCluster, member: ClusterProcess) -> float:
    """From cairn's apply histogram: entries that took longer than its 102.4 ms bucket."""
    family = scrape(cluster.metrics_urls[member.name])["cairn_server_apply_duration_seconds"]
    return family.value("_count") - family.value("_bucket", le="0.1024")


def test_deleting_a_large_range_in_one_request_counts_as_a_slow_apply(
    cluster: FaultyCluster,
) -> None:
    """Each member applies the entry; every member whose own apply histogram saw it take
    over 102.4 ms counted a slow apply, and at least one did. 8,192 keys applied in under
    100 ms on an idle CI machine, so the range is 32,768 keys."""
    assert SLOW_APPLY_S == 0.1  # etcd's warnApplyDuration
    leader = cluster.wait_for_leader()
    put_many(leader, b"large/", LARGE_RANGE_KEYS)
    members = list(cluster.members.values())

    def snapshot() -> list[tuple[float, float]]:
        return [
            (cluster.counter(m, "etcd_server_slow_apply_total"), applies_over_100ms(cluster, m))
            for m in members
        ]

    before = snapshot()
    deleted = run_etcdctl(leader.client_endpoint, ["del", "--prefix", "large/"], timeout=60)
    assert deleted.stdout.strip() == str(LARGE_RANGE_KEYS), deleted.stderr
    target = scrape(cluster.metrics_urls[leader.name])["cairn_server_applied_index"].value()
    deadline = time.monotonic() + 30
    for member in members:  # the followers apply the entry too
        url = cluster.metrics_urls[member.name]
        while scrape(url)["cairn_server_applied_index"].value() < target:
            assert time.monotonic() < deadline, f"{member.name} did not apply the delete"
            time.sleep(0.2)
    after = snapshot()
    counted = [a[0] - b[0] for a, b in zip(after, before, strict=True)]
    slow_seen = [a[1] - b[1] for a, b in zip(after, before, strict=True)]
    report = f"leader {leader.name}; counted {counted}; applies over 102.4 ms {slow_seen}"
    assert all(c >= s for c, s in zip(counted, slow_seen, strict=True)), report
    assert max(counted) >= 1, report


def test_a_member_cut_off_from_its_peers_fails_health_with_a_range_error(
    cluster: FaultyCluster,
) -> None:
    leader = cluster.wait_for_leader()
    follower = next(m for m in cluster.members.values() if m is not leader)
    failures = cluster.counter(follower, "etcd_server_health_failures")
    assert health(cluster, follower)[0] == 200
    cluster.cut_off(follower)
    try:
        status, verdict = health(cluster, follower)
        assert status == 503
        assert verdict == {
            "health": "false",
            "reason": "RANGE ERROR:etcdserver: request timed out",
        }
        assert cluster.counter(follower, "etcd_server_health_failures") == failures + 1
    finally:
        cluster.heal()
    assert health(cluster, follower)[0] == 200


def test_a_linearizable_read_that_times_out_counts_as_a_slow_apply(
    cluster: FaultyCluster,
) -> None:
    leader = cluster.wait_for_leader()
    follower = next(m for m in cluster.members.values() if m is not leader)
    slow = cluster.counter(follower, "etcd_server_slow_apply_total")
    cluster.cut_off(follower)
    try:
        # One Range over gRPC: etcdctl would retry the UNAVAILABLE answer until its timeout.
        with (
            grpc.insecure_channel(follower.client_endpoint) as channel,
            pytest.raises(grpc.RpcError) as failed,
        ):
            rpc.KVStub(channel).Range(pb.RangeRequest(key=b"anything"), timeout=20)
        assert failed.value.details() == "etcdserver: request timed out"
        assert cluster.counter(follower, "etcd_server_slow_apply_total") == slow + 1
    finally:
        cluster.heal()


def test_a_put_to_a_leader_cut_off_from_its_quorum_times_out_as_a_failed_proposal(
    cluster: FaultyCluster,
) -> None:
    leader = cluster.wait_for_leader()
    failed = cluster.counter(leader, "etcd_server_proposals_failed_total")
    cluster.cut_off(leader)
    try:
        put = run_etcdctl(
            leader.client_endpoint,
            ["put", "unreplicated", "v"],
            extra_global_flags=["--command-timeout=20s"],
            timeout=30,
        )
        assert put.returncode != 0
        assert "etcdserver: request timed out" in put.stderr
        assert cluster.counter(leader, "etcd_server_proposals_failed_total") == failed + 1
    finally:
        cluster.heal()
    # The entry was never committed: the majority's new leader does not have it.
    got = run_etcdctl(cluster.endpoints(), ["get", "unreplicated", "--print-value-only"])
    assert got.returncode == 0 and got.stdout.strip() == ""
