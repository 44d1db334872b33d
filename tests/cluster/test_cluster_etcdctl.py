"""A three-process cairn cluster, driven by the real etcdctl: replication and failover."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]


def get_json(endpoint: str, key: str, *extra: str) -> dict[str, object]:
    result = run_etcdctl(endpoint, ["get", key, "-w", "json", *extra])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def put_until_accepted(endpoints: str, key: str, value: str, timeout: float = 20.0) -> float:
    """Seconds until the cluster acknowledged the write (etcdctl retries other endpoints)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        result = run_etcdctl(endpoints, ["--command-timeout=2s", "put", key, value])
        if result.returncode == 0:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"put {key} was never acknowledged: {result.stderr}")


def test_a_write_through_one_member_is_read_with_the_same_revision_from_every_member(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        first, *others = cluster.members.values()
        assert run_etcdctl(first.client_endpoint, ["put", "foo", "bar"]).returncode == 0
        written = get_json(first.client_endpoint, "foo")
        for member in others:
            seen = get_json(member.client_endpoint, "foo")
            assert seen["kvs"] == written["kvs"]
            assert seen["header"]["revision"] == written["header"]["revision"]  # type: ignore[index]


def test_killing_the_leader_loses_no_acknowledged_write_and_writes_resume(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        acknowledged = []
        for i in range(20):
            key = f"before-{i:02d}"
            put_until_accepted(cluster.endpoints(), key, str(i))
            acknowledged.append(key)
        leader.kill()
        outage = put_until_accepted(cluster.endpoints(), "after-kill", "yes")
        assert outage < 15, f"writes resumed only after {outage:.1f}s"
        survivor = cluster.running()[0]
        listing = get_json(survivor.client_endpoint, "", "--prefix", "--keys-only")
        keys = {kv["key"] for kv in listing["kvs"]}  # type: ignore[union-attr]
        names = {base64.b64decode(k).decode() for k in keys}
        assert set(acknowledged) | {"after-kill"} <= names
        leader.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            result = run_etcdctl(leader.client_endpoint, ["get", "after-kill", "--consistency=s"])
            if result.returncode == 0 and "yes" in result.stdout:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the restarted member never caught up")


def test_a_member_cut_off_from_the_majority_refuses_writes(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        members = list(cluster.members.values())
        lonely = members[0]
        for other in members[1:]:
            other.kill()
        result = run_etcdctl(lonely.client_endpoint, ["--command-timeout=3s", "put", "k", "v"])
        assert result.returncode != 0
        assert "etcdserver:" in result.stderr or "deadline" in result.stderr.lower()
        assert "OK" not in result.stdout
