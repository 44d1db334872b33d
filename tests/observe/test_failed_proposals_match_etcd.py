"""Differential: a put to a leader whose followers were killed, on the real etcd 3.4 and on
cairn, three members each started with the same flags. The proposal cannot commit, so both
answer it with a timeout and count it in etcd_server_proposals_failed_total."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.observe.exposition import scrape
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import ServerKind, ServerProcess, etcd_path, free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcd_path() is None, reason="needs etcd (Debian etcd-server)"),
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(180),
]

NAMES = ("p1", "p2", "p3")
ELECTION_TIMEOUT_MS = 3000
"""Long enough that the put reaches the leader before check-quorum makes it step down."""


class Cluster:
    """Three members of one kind, each with a metrics URL."""

    def __init__(self, kind: ServerKind, base: Path) -> None:
        ports = {name: (free_port(), free_port()) for name in NAMES}
        initial = ",".join(f"{n}=http://127.0.0.1:{peer}" for n, (_, peer) in ports.items())
        self.metrics = {name: f"http://127.0.0.1:{free_port()}" for name in NAMES}
        self.members = {
            name: ServerProcess(
                kind,
                base / kind / name,
                name=name,
                client_port=client,
                peer_port=peer,
                extra_args=[
                    f"--initial-cluster={initial}",
                    "--initial-cluster-token=proposals-failed",
                    f"--listen-metrics-urls={self.metrics[name]}",
                    "--heartbeat-interval=100",
                    f"--election-timeout={ELECTION_TIMEOUT_MS}",
                ],
            )
            for name, (client, peer) in ports.items()
        }

    def start(self) -> None:
        with ThreadPoolExecutor(len(self.members)) as pool:
            list(pool.map(lambda m: m.start(), self.members.values()))

    def stop(self) -> None:
        for member in self.members.values():
            member.stop()

    def leader(self) -> str:
        (name,) = [
            n for n, url in self.metrics.items() if scrape(url)["etcd_server_is_leader"].value()
        ]
        return name

    def settle(self, timeout: float = 30.0) -> None:
        """Until every member published its name and client URL and no proposal waits: a
        member's own attribute publish must not be the proposal that fails."""
        deadline = time.monotonic() + timeout
        while True:
            listed = run_etcdctl(
                self.members[NAMES[0]].client_url, ["member", "list", "-w", "json"]
            )
            members = json.loads(listed.stdout)["members"] if listed.returncode == 0 else []
            published = len(members) == len(NAMES) and all(
                m.get("name") and m.get("clientURLs") for m in members
            )
            pending = sum(
                scrape(url)["etcd_server_proposals_pending"].value()
                for url in self.metrics.values()
            )
            if published and pending == 0:
                return
            assert time.monotonic() < deadline, f"not settled: {members}, {pending} pending"
            time.sleep(0.2)

    def failed_proposals(self, name: str) -> float:
        return scrape(self.metrics[name])["etcd_server_proposals_failed_total"].value()


@pytest.fixture(params=["etcd", "cairn"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    running = Cluster(request.param, tmp_path)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def test_a_put_to_a_leader_whose_followers_died_times_out_as_a_failed_proposal(
    cluster: Cluster,
) -> None:
    cluster.settle()
    leader = cluster.leader()
    failed = cluster.failed_proposals(leader)
    for name, member in cluster.members.items():
        if name != leader:
            member.kill()
    put = run_etcdctl(
        cluster.members[leader].client_url,
        ["put", "lost", "v"],
        extra_global_flags=["--command-timeout=30s"],
        timeout=40,
    )
    assert put.returncode != 0
    assert put.stderr.strip().endswith("etcdserver: request timed out"), put.stderr
    assert cluster.failed_proposals(leader) == failed + 1
