"""/metrics and /health of a 3-member cluster of real `cairn serve` processes.

One cluster serves the whole module (starting one costs seconds); the tests that break it
(killing members) run last, in file order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.observe.exposition import Family, fetch, scrape
from tests.support.etcdctl import etcdctl_path, run_etcdctl

from cairn.observe.catalog import CATALOG

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(240),
]

FSYNC_DELAY = "200ms"
SLOW_FSYNC_BOUND = "0.128"  # every delayed fsync lands above this bucket


class MetricsCluster(ProcessCluster):
    """Three members, each with a metrics URL and a TEST-ONLY faults file; the first one
    with --metrics=extensive."""

    def __init__(self, base: Path) -> None:
        super().__init__(base)
        self.metrics_urls: dict[str, str] = {}
        self.fault_files: dict[str, Path] = {}
        for index, (name, member) in enumerate(self.members.items()):
            url = f"http://127.0.0.1:{free_port()}"
            self.metrics_urls[name] = url
            self.fault_files[name] = base / f"{name}.faults"
            member.argv += [
                f"--listen-metrics-urls={url}",
                f"--experimental-test-faults-file={self.fault_files[name]}",
            ]
            if index == 0:
                member.argv.append("--metrics=extensive")

    def url(self, member: ClusterProcess) -> str:
        return self.metrics_urls[member.name]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsCluster]:
    with MetricsCluster(tmp_path_factory.mktemp("metrics")) as running:
        yield running


def put(cluster: MetricsCluster, key: str, value: str = "v") -> None:
    result = run_etcdctl(cluster.endpoints(), ["put", key, value])
    assert result.returncode == 0, result.stderr


def until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_every_catalog_metric_is_exported_with_its_type_labels_and_buckets(
    cluster: MetricsCluster,
) -> None:
    put(cluster, "catalog/a")
    first = next(iter(cluster.members.values()))  # the one with --metrics=extensive
    # Peer round trips are probed every few seconds: wait until one was observed.
    until(
        lambda: scrape(cluster.url(first))["etcd_network_peer_round_trip_time_seconds"].samples,
        "a peer round trip observed",
    )
    exported = scrape(cluster.url(first))
    missing = [entry.name for entry in CATALOG if entry.name not in exported]
    assert not missing
    for entry in CATALOG:
        family = exported[entry.name]
        assert family.type == entry.type.value, entry.name
        if family.samples:
            assert family.label_names == {frozenset(entry.labels)}, entry.name
        if entry.buckets and family.samples:
            assert sorted(family.buckets) == pytest.approx(list(entry.buckets)), entry.name
    unexpected = set(exported) - {entry.name for entry in CATALOG}
    assert not unexpected


def test_peer_metrics_are_labelled_with_hex_member_ids(cluster: MetricsCluster) -> None:
    leader = cluster.wait_for_leader()
    exported = scrape(cluster.url(leader))
    others = {m.member_id for m in cluster.members.values() if m is not leader}
    sent_to = {
        labels["To"] for _, labels, _ in exported["etcd_network_peer_sent_bytes_total"].samples
    }
    assert sent_to == others
    assert exported["etcd_server_id"].samples[0][1] == {"server_id": leader.member_id}


def test_puts_move_the_put_counter_on_every_member(cluster: MetricsCluster) -> None:
    def puts() -> dict[str, float]:
        return {
            name: scrape(url)["etcd_mvcc_put_total"].value()
            for name, url in cluster.metrics_urls.items()
        }

    before = puts()
    for i in range(5):
        put(cluster, f"puts/{i}")
    until(
        lambda: all(after - before[name] == 5 for name, after in puts().items()),
        "every member applied the five puts",
    )


def test_grpc_calls_are_counted_with_method_and_status(cluster: MetricsCluster) -> None:
    member = next(iter(cluster.members.values()))
    url = cluster.url(member)

    def handled(code: str) -> float:
        return scrape(url)["grpc_server_handled_total"].value(
            grpc_service="etcdserverpb.KV", grpc_method="Range", grpc_code=code
        )

    ok, bad = handled("OK"), handled("OutOfRange")
    assert run_etcdctl(member.client_endpoint, ["get", "grpc/a"]).returncode == 0
    # A revision in the future: etcd's OutOfRange.
    assert run_etcdctl(member.client_endpoint, ["get", "grpc/a", "--rev=99999999"]).returncode
    assert handled("OK") == ok + 1
    assert handled("OutOfRange") == bad + 1
    exported = scrape(url)
    assert (
        exported["grpc_server_handling_seconds"].value(
            "_count", grpc_method="Range", grpc_type="unary"
        )
        >= 2
    )
    assert exported["etcd_network_client_grpc_received_bytes_total"].value() > 0


def test_health_is_ok_on_a_healthy_cluster(cluster: MetricsCluster) -> None:
    for url in cluster.metrics_urls.values():
        assert fetch(f"{url}/health") == (200, '{"health":"true","reason":""}')
        assert fetch(f"{url}/livez")[0] == 200
        assert fetch(f"{url}/readyz")[0] == 200
        status, body = fetch(f"{url}/version")
        assert status == 200
        assert set(json.loads(body)) == {"etcdserver", "etcdcluster"}


def test_a_wal_fsync_delay_fault_fills_the_slow_fsync_buckets_until_removed(
    cluster: MetricsCluster,
) -> None:
    leader = cluster.wait_for_leader()
    url = cluster.url(leader)

    def slow_fsyncs() -> float:
        family: Family = scrape(url)["etcd_disk_wal_fsync_duration_seconds"]
        return family.value("_count") - family.value("_bucket", le=SLOW_FSYNC_BOUND)

    before = slow_fsyncs()
    cluster.fault_files[leader.name].write_text(f"wal-fsync-delay {FSYNC_DELAY}\n")
    time.sleep(0.3)  # the file is polled every 50 ms
    for i in range(3):
        put(cluster, f"slow/{i}")
    during = slow_fsyncs()
    assert during >= before + 3
    cluster.fault_files[leader.name].write_text("")
    time.sleep(0.3)
    for i in range(3):
        put(cluster, f"fast/{i}")
    assert slow_fsyncs() == during


def test_killing_the_leader_counts_a_leader_change_on_the_survivors(
    cluster: MetricsCluster,
) -> None:
    leader = cluster.wait_for_leader()
    survivors = [m for m in cluster.members.values() if m is not leader]

    def changes() -> list[float]:
        return [
            scrape(cluster.url(m))["etcd_server_leader_changes_seen_total"].value()
            for m in survivors
        ]

    before = changes()
    leader.kill()
    new_leader = cluster.wait_for_leader()
    after = changes()
    assert all(a == b + 1 for a, b in zip(after, before, strict=True)), (before, after)

    # The new leader's heartbeats to the dead member fail, and its link shows as down.
    url = cluster.url(new_leader)
    gone = leader.member_id
    until(
        lambda: scrape(url)["etcd_server_heartbeat_send_failures_total"].value() > 0,
        "heartbeats to the killed member counted as failed",
    )
    exported = scrape(url)
    assert exported["etcd_network_active_peers"].value(Remote=gone) == 0
    assert exported["etcd_network_disconnected_peers_total"].value(Remote=gone) >= 1
    assert exported["etcd_network_peer_sent_failures_total"].value(To=gone) > 0


def test_without_a_leader_health_fails_unless_serializable(cluster: MetricsCluster) -> None:
    running = cluster.running()
    assert len(running) == 2  # the previous test killed the leader
    running[0].kill()
    url = cluster.url(running[1])
    until(
        lambda: scrape(url)["etcd_server_has_leader"].value() == 0,
        "the lone member notices it has no leader",
    )
    assert fetch(f"{url}/health") == (503, '{"health":"false","reason":"RAFT NO LEADER"}')
    assert fetch(f"{url}/health?serializable=true") == (200, '{"health":"true","reason":""}')
    assert fetch(f"{url}/readyz")[0] == 503
    assert fetch(f"{url}/livez")[0] == 200
