"""Real `cairn serve` processes under faults, driven by the real etcdctl.

Partitions use the TEST-ONLY `--experimental-test-faults-file` flag: each member polls its own
file for the peer member IDs whose traffic it drops. Also: kill -9 of every member and restart,
and bootstrap of five members.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(60),
]

FAULT_POLL_S = 0.05


class FaultyCluster(ProcessCluster):
    """A ProcessCluster whose members follow a faults file each (TEST-ONLY flag)."""

    def __init__(self, base: Path, names: tuple[str, ...] = ("m1", "m2", "m3")) -> None:
        super().__init__(base, names)
        self.fault_files = {name: base / f"{name}.faults" for name in names}
        for name, member in self.members.items():
            member.argv.append(f"--experimental-test-faults-file={self.fault_files[name]}")

    def isolate(self, cut: ClusterProcess) -> None:
        """Cut ``cut`` off from every other member, in both directions."""
        others = [m for m in self.members.values() if m is not cut]
        ids = {m.name: m.member_id for m in self.members.values()}
        assert None not in ids.values(), ids
        self.fault_files[cut.name].write_text("".join(f"{ids[m.name]}\n" for m in others))
        for member in others:
            self.fault_files[member.name].write_text(f"{ids[cut.name]}\n")
        time.sleep(FAULT_POLL_S * 6)

    def heal(self) -> None:
        for path in self.fault_files.values():
            path.unlink(missing_ok=True)
        time.sleep(FAULT_POLL_S * 6)


def get_json(endpoint: str, key: str, *extra: str) -> dict[str, object]:
    result = run_etcdctl(endpoint, ["--command-timeout=5s", "get", key, "-w", "json", *extra])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def local_kvs(endpoint: str, prefix: str = "") -> dict[str, tuple[str, int]]:
    """key → (value, mod_revision) as the member at ``endpoint`` holds them (serializable)."""
    listing = get_json(endpoint, prefix, "--prefix", "--consistency=s")
    return {
        base64.b64decode(kv["key"]).decode(): (
            base64.b64decode(kv.get("value", "")).decode(),
            int(kv["mod_revision"]),
        )
        for kv in listing.get("kvs", [])  # type: ignore[union-attr]
    }


def put_until_accepted(endpoints: str, key: str, value: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = run_etcdctl(endpoints, ["--command-timeout=2s", "put", key, value])
        if result.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"put {key} was never acknowledged: {result.stderr}")


def wait_until_local(
    endpoint: str, expected: dict[str, tuple[str, int]], prefix: str = "", timeout: float = 20.0
) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, tuple[str, int]] = {}
    while time.monotonic() < deadline:
        result = run_etcdctl(
            endpoint,
            ["--command-timeout=2s", "get", prefix, "--prefix", "--consistency=s", "-w", "json"],
        )
        if result.returncode == 0:
            seen = local_kvs(endpoint, prefix)
            if seen == expected:
                return
        time.sleep(0.1)
    raise AssertionError(f"{endpoint} never reached {expected}; last saw {seen}")


def test_a_partitioned_follower_serves_only_stale_serializable_reads_then_catches_up(
    tmp_path: Path,
) -> None:
    with FaultyCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.members.values() if m is not leader)
        majority = [m for m in cluster.members.values() if m is not follower]
        majority_eps = ",".join(m.client_endpoint for m in majority)
        put_until_accepted(majority_eps, "k/state", "old")
        before = local_kvs(leader.client_endpoint, "k/")
        wait_until_local(follower.client_endpoint, before, "k/")

        cluster.isolate(follower)
        started = time.monotonic()
        linear = run_etcdctl(
            follower.client_endpoint, ["--command-timeout=3s", "get", "k/state"], timeout=20
        )
        assert linear.returncode != 0, f"linearizable read on a cut-off member: {linear.stdout}"
        assert time.monotonic() - started < 15

        for i in range(5):
            put_until_accepted(majority_eps, f"k/during-{i}", str(i))
        put_until_accepted(majority_eps, "k/state", "new")
        stale = run_etcdctl(follower.client_endpoint, ["get", "k/state", "--consistency=s"])
        assert stale.returncode == 0, stale.stderr
        assert stale.stdout.splitlines() == ["k/state", "old"]
        assert local_kvs(follower.client_endpoint, "k/") == before

        cluster.heal()
        after = local_kvs(cluster.wait_for_leader().client_endpoint, "k/")
        assert after["k/state"][0] == "new" and len(after) == 6
        wait_until_local(follower.client_endpoint, after, "k/")
        deadline = time.monotonic() + 20
        while True:
            result = run_etcdctl(
                follower.client_endpoint, ["--command-timeout=2s", "get", "k/state"]
            )
            if result.returncode == 0:
                assert result.stdout.splitlines() == ["k/state", "new"]
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.1)
        put_until_accepted(follower.client_endpoint, "k/after-heal", "yes")


def test_kill_9_of_every_member_then_restart_keeps_every_acknowledged_write(
    tmp_path: Path,
) -> None:
    with FaultyCluster(tmp_path) as cluster:
        members = list(cluster.members.values())
        for i in range(15):
            put_until_accepted(members[i % 3].client_endpoint, f"d/{i:02d}", f"v{i}")
        acknowledged = local_kvs(cluster.wait_for_leader().client_endpoint, "d/")
        assert len(acknowledged) == 15

        for member in members:
            member.kill()
        for member in members:
            member.start()
        cluster.wait_for_leader()
        for member in members:
            wait_until_local(member.client_endpoint, acknowledged, "d/")

        put_until_accepted(cluster.endpoints(), "d/after-restart", "yes")
        expected = local_kvs(cluster.wait_for_leader().client_endpoint, "d/")
        assert set(expected) == set(acknowledged) | {"d/after-restart"}
        for member in members:
            wait_until_local(member.client_endpoint, expected, "d/")


def test_five_members_bootstrap_agree_on_one_leader_and_replicate_writes(tmp_path: Path) -> None:
    names = ("m1", "m2", "m3", "m4", "m5")
    with ProcessCluster(tmp_path, names) as cluster:
        leader = cluster.wait_for_leader()
        assert len(cluster.running()) == 5
        assert {m.believed_leader for m in cluster.members.values()} == {leader.member_id}
        members = list(cluster.members.values())
        for i in range(10):
            put_until_accepted(members[i % 5].client_endpoint, f"f/{i}", str(i))
        expected = local_kvs(leader.client_endpoint, "f/")
        assert len(expected) == 10
        for member in members:
            wait_until_local(member.client_endpoint, expected, "f/")
        listing = run_etcdctl(cluster.endpoints(), ["member", "list"])
        assert listing.returncode == 0, listing.stderr
        assert len(listing.stdout.strip().splitlines()) == 5
