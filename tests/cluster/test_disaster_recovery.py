"""The procedures of docs/disaster-recovery.md, run as written: real `cairn serve` processes,
the real etcdctl, the `cairn snapshot` command line.

1. Lost one member: member remove, wipe, member add, start with --initial-cluster-state
   existing.
2. Lost quorum: two of three members gone for good (kill -9); the survivor restarts with
   --force-new-cluster, then two new members are added.
3. Restore from a backup: snapshot save, snapshot restore on every host of a new cluster,
   start; everything the old cluster served is served again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.cluster.recovery import (
    cairn,
    snapshot_save,
    started,
    view,
    wait_view,
    write_dataset,
)
from tests.cluster.test_hashkv_etcdctl import hashkv_everywhere
from tests.cluster.test_membership_etcdctl import ctl, member_list, peer_url_of, until_ok
from tests.support.etcdctl import etcdctl_path

from cairn.member.identity import cluster_id, member_id

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(240),
]


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _client_port(member: ClusterProcess) -> int:
    return int(member.client_endpoint.rsplit(":", 1)[1])


def _wait_all_started(endpoints: str, timeout: float = 20.0) -> None:
    """Until `member list` shows every member started (it published its name), as an
    operator checks before the next `member add`."""
    deadline = time.monotonic() + timeout
    while any(not m.get("name") for m in member_list(endpoints)):
        assert time.monotonic() < deadline, member_list(endpoints)
        time.sleep(0.2)


def test_a_lost_member_is_removed_wiped_added_back_and_catches_up(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        write_dataset(cluster.endpoints())
        lost = cluster.members["m3"]
        lost.kill()
        cluster.wait_for_leader()  # the lost member may have led: `endpoint status` first
        survivors = cluster.endpoints()
        lost_id = next(format(m["ID"], "x") for m in member_list(survivors) if m["name"] == "m3")

        ctl(survivors, "member", "remove", lost_id)
        shutil.rmtree(tmp_path / "m3")
        added = json.loads(
            ctl(survivors, "member", "add", "m3", f"--peer-urls={peer_url_of(lost)}", "-w", "json")
        )
        assert len(added["members"]) == 3
        lost.argv.append("--initial-cluster-state=existing")
        started(lost)

        reference = view(cluster.members["m1"].client_endpoint)
        wait_view(lost.client_endpoint, reference)
        ctl(cluster.endpoints(), "put", "/after/replacement", "ok")
        rev = int(json.loads(ctl(survivors, "get", "x", "-w", "json"))["header"]["revision"])
        assert len(hashkv_everywhere(cluster.endpoints(), rev, 3)) == 1
        assert format(added["member"]["ID"], "x") != lost_id


def test_quorum_loss_is_survived_with_force_new_cluster_and_two_new_members(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        write_dataset(cluster.endpoints())
        survivor = cluster.members["m1"]
        acknowledged = view(cluster.wait_for_leader().client_endpoint)
        # The survivor holds every acknowledged write (with two of three members lost, the
        # writes only the lost ones held would be gone, with etcd as with cairn).
        wait_view(survivor.client_endpoint, acknowledged)
        old_ids = {m["name"]: m["ID"] for m in member_list(cluster.endpoints())}
        dead = [cluster.members["m2"], cluster.members["m3"]]
        for member in dead:
            member.kill()
        survivor.kill()  # the operator stops it too before the forced restart

        survivor.argv.append("--force-new-cluster")
        started(survivor)
        endpoint = survivor.client_endpoint
        until_ok(endpoint, "put", "/after/force", "accepted")
        assert [m["name"] for m in member_list(endpoint)] == ["m1"]
        assert member_list(endpoint)[0]["ID"] == old_ids["m1"]
        after = view(endpoint)
        assert {r for r in after.rows if not r[0].startswith("/after/")} == set(acknowledged.rows)
        assert after.compact_revision == acknowledged.compact_revision

        # Grow it back on the lost hosts' peer URLs, wiped, one member at a time.
        initial = f"m1={peer_url_of(survivor)}"
        for old in dead:
            url = peer_url_of(old)
            ctl(endpoint, "member", "add", old.name, f"--peer-urls={url}")
            initial += f",{old.name}={url}"
            shutil.rmtree(tmp_path / old.name)
            new = ClusterProcess(tmp_path, old.name, initial, _client_port(old), _port_of(url))
            new.argv.append("--initial-cluster-state=existing")
            cluster.members[old.name] = new
            started(new)
            until_ok(cluster.endpoints(), "put", f"/after/{old.name}", "joined")
            _wait_all_started(endpoint)

        members = member_list(endpoint)
        assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
        assert {m["ID"] for m in members if m["name"] != "m1"}.isdisjoint(old_ids.values())
        ctl(cluster.endpoints(), "put", "/after/grown", "three members")
        rev = int(json.loads(ctl(endpoint, "get", "x", "-w", "json"))["header"]["revision"])
        assert len(hashkv_everywhere(cluster.endpoints(), rev, 3)) == 1


def test_a_backup_restored_on_every_host_of_a_new_cluster_serves_the_same_state(
    tmp_path: Path,
) -> None:
    backup = tmp_path / "backup.db"
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    with ProcessCluster(tmp_path / "old") as old:
        write_dataset(old.endpoints())
        leader = old.wait_for_leader()
        snapshot_save(leader.client_endpoint, backup)
        source = view(leader.client_endpoint)

    token = "restored-cluster"
    ports = {name: (free_port(), free_port()) for name in ("n1", "n2", "n3")}
    peer_urls = {name: f"http://127.0.0.1:{peer}" for name, (_, peer) in ports.items()}
    initial = ",".join(f"{name}={url}" for name, url in peer_urls.items())
    new = tmp_path / "new"
    for name in ports:
        restored = cairn(
            "snapshot",
            "restore",
            str(backup),
            f"--name={name}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={token}",
            f"--initial-advertise-peer-urls={peer_urls[name]}",
            f"--data-dir={new / name}",
        )
        assert restored.returncode == 0, restored.stderr
        assert restored.stdout == ""

    members = {
        name: ClusterProcess(
            new, name, initial, client, peer, extra_args=(f"--initial-cluster-token={token}",)
        )
        for name, (client, peer) in ports.items()
    }
    cluster = ProcessCluster(new, names=())
    cluster.members = members
    with cluster:
        for member in members.values():
            assert wait_view(member.client_endpoint, source) == source
        listed = member_list(cluster.endpoints())
        expected_ids = {name: member_id([url], token) for name, url in peer_urls.items()}
        assert {m["name"]: m["ID"] for m in listed} == expected_ids
        header = json.loads(ctl(cluster.endpoints(), "get", "x", "-w", "json"))["header"]
        assert header["cluster_id"] == cluster_id(list(expected_ids.values()))
        ctl(cluster.endpoints(), "put", "/after/restore", "ok")
        rev = int(
            json.loads(ctl(cluster.endpoints(), "get", "x", "-w", "json"))["header"]["revision"]
        )
        assert rev == source.revision + 1
        assert len(hashkv_everywhere(cluster.endpoints(), rev, 3)) == 1
