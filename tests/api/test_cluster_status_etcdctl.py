"""`member list`, `endpoint status --cluster` and `endpoint health --cluster` from the real
etcdctl against three `cairn serve` processes on loopback.

`--cluster` makes etcdctl call MemberList first and then dial every published client URL, so
these commands exercise publishing, MemberList and Status end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import free_port

from cairn.member.identity import member_id

pytestmark = [
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]

NAMES = ("s1", "s2", "s3")
TOKEN = "status-test"


class Processes:
    """Three cairn servers, each with its own data dir, client port and peer port."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.client = {n: f"http://127.0.0.1:{free_port()}" for n in NAMES}
        self.peer = {n: f"http://127.0.0.1:{free_port()}" for n in NAMES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def endpoints(self) -> str:
        return ",".join(self.client[n] for n in NAMES)

    def start(self) -> None:
        initial = ",".join(f"{n}={self.peer[n]}" for n in NAMES)
        for name in NAMES:
            log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 (owned by the process)
            self.procs[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cairn",
                    "serve",
                    f"--name={name}",
                    f"--data-dir={self.base / name}",
                    f"--listen-client-urls={self.client[name]}",
                    f"--advertise-client-urls={self.client[name]}",
                    f"--listen-peer-urls={self.peer[name]}",
                    f"--initial-advertise-peer-urls={self.peer[name]}",
                    f"--initial-cluster={initial}",
                    f"--initial-cluster-token={TOKEN}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            log.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(
            (self.base / f"{n}.log").read_text(errors="replace")[-2000:] for n in NAMES
        )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    processes.start()
    try:
        yield processes
    finally:
        processes.stop()


def ctl_json(endpoints: str, *args: str) -> object:
    result = run_etcdctl(endpoints, [*args, "-w", "json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def wait_until_published(cluster: Processes, timeout: float = 30.0) -> list[dict[str, object]]:
    """Members from `member list -w json`, once all three list their client URLs."""
    deadline = time.monotonic() + timeout
    members: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        result = run_etcdctl(cluster.endpoints, ["member", "list", "-w", "json"])
        if result.returncode == 0:
            members = json.loads(result.stdout)["members"]
            if len(members) == 3 and all(m.get("clientURLs") for m in members):
                return members
        time.sleep(0.2)
    raise AssertionError(f"members never all published: {members}\n{cluster.logs()}")


def test_etcdctl_member_list_endpoint_status_and_health_see_three_members(
    cluster: Processes,
) -> None:
    members = wait_until_published(cluster)
    by_name = {m["name"]: m for m in members}
    assert set(by_name) == set(NAMES)
    for name in NAMES:
        assert by_name[name]["ID"] == member_id([cluster.peer[name]], TOKEN)
        assert by_name[name]["peerURLs"] == [cluster.peer[name]]
        assert by_name[name]["clientURLs"] == [cluster.client[name]]
        assert not by_name[name].get("isLearner", False)

    # A write, so the indexes have something to agree on beyond bootstrap and publishing.
    assert run_etcdctl(cluster.endpoints, ["put", "k", "v"]).returncode == 0
    deadline = time.monotonic() + 10
    while True:
        statuses = ctl_json(cluster.endpoints, "endpoint", "status", "--cluster")
        assert isinstance(statuses, list)
        assert sorted(s["Endpoint"] for s in statuses) == sorted(cluster.client.values())
        inner = [s["Status"] for s in statuses]
        indexes = {(s["raftIndex"], s["raftAppliedIndex"]) for s in inner}
        if len(indexes) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(indexes) == 1, inner
    leaders = {s["leader"] for s in inner}
    assert len(leaders) == 1 and leaders <= {m["ID"] for m in members}
    assert {s["header"]["member_id"] for s in inner} == {m["ID"] for m in members}
    assert len({s["raftTerm"] for s in inner}) == 1
    for status in inner:
        assert status["version"] == "3.4.0"
        assert status["dbSize"] > 0
        assert status["header"]["revision"] == 2
        assert not status.get("errors")

    health = run_etcdctl(cluster.endpoints, ["endpoint", "health", "--cluster"])
    assert health.returncode == 0, health.stderr
    for url in cluster.client.values():
        assert f"{url} is healthy" in health.stdout + health.stderr


def test_endpoint_health_reports_a_member_without_quorum_as_unhealthy(
    cluster: Processes,
) -> None:
    wait_until_published(cluster)
    survivor = NAMES[0]
    for name in NAMES[1:]:
        cluster.procs[name].terminate()
        cluster.procs[name].wait(timeout=10)
    health = run_etcdctl(
        cluster.client[survivor], ["--command-timeout=2s", "endpoint", "health"], timeout=30
    )
    assert health.returncode != 0
    assert f"{cluster.client[survivor]} is unhealthy" in health.stdout + health.stderr
