"""A learner added with etcdctl to a cluster whose log was compacted catches up by SNAPSHOT.

Real `cairn serve` processes on loopback, a small --snapshot-count and a small
--experimental-snapshot-catchup-entries, so the leader has released the log a new member
would need and must stream it an image. Then: promote, four members at one raft index, and a
kill -9 of the new member that restarts from its snapshot with every key.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster, free_port
from tests.cluster.test_membership_etcdctl import ctl, peer_url_of, until_ok
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]

SNAPSHOT_COUNT = 50
CATCH_UP_ENTRIES = 10
KEYS_PER_TXN = 3
SMALL_SNAPSHOTS = [
    f"--snapshot-count={SNAPSHOT_COUNT}",
    f"--experimental-snapshot-catchup-entries={CATCH_UP_ENTRIES}",
]

_COMPACTED = re.compile(r"snapshot at index (\d+) \(term \d+\), log compacted to (\d+)")
_INSTALLED = re.compile(r"installed an image at index (\d+)")
_RESTARTED = re.compile(
    r"restarting member m4 \([0-9a-f]+\): (\d+) log entries, applied index (\d+)"
)

Keyspace = tuple[int, tuple[tuple[str, str, int, int, int], ...]]


def put_txns(endpoint: str, prefix: str, txns: int) -> list[str]:
    """`txns` etcdctl txns of KEYS_PER_TXN puts each (one Raft entry per txn); the keys."""
    written: list[str] = []
    for t in range(txns):
        keys = [f"{prefix}/{t:04d}-{k}" for k in range(KEYS_PER_TXN)]
        ops = "".join(f"put {key} value-of-{key}\n" for key in keys)
        result = run_etcdctl(endpoint, ["txn"], stdin=f"\n{ops}\n\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("SUCCESS"), result.stdout
        written.extend(keys)
    return written


def keyspace(endpoint: str, consistency: str) -> Keyspace:
    """Every key as one member serves it: (header revision, (key, value, revisions...))."""
    listing = json.loads(
        ctl(endpoint, "get", "", "--prefix", f"--consistency={consistency}", "-w", "json")
    )
    rows = tuple(
        (
            base64.b64decode(kv["key"]).decode(),
            base64.b64decode(kv.get("value", "")).decode(),
            int(kv["create_revision"]),
            int(kv["mod_revision"]),
            int(kv["version"]),
        )
        for kv in listing.get("kvs", [])
    )
    return int(listing["header"]["revision"]), rows


def wait_same_keyspace(member: ClusterProcess, reference: str, timeout: float = 20.0) -> Keyspace:
    """Until `member`'s serializable view equals a linearizable read through `reference`."""
    deadline = time.monotonic() + timeout
    while True:
        expected = keyspace(reference, "l")
        local = keyspace(member.client_endpoint, "s")
        if local == expected:
            return local
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{member.name} serves revision {local[0]} with {len(local[1])} keys, the "
                f"cluster revision {expected[0]} with {len(expected[1])} keys"
            )
        time.sleep(0.2)


def wait_log(
    member: ClusterProcess, pattern: re.Pattern[str], timeout: float = 20.0
) -> list[re.Match[str]]:
    """Every match of `pattern` in the member's log, once there is at least one."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(pattern.finditer(member.log_path.read_text(errors="replace")))
        if found:
            return found
        if time.monotonic() > deadline:
            tail = member.log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{member.name} never logged {pattern.pattern!r}\n{tail}")
        time.sleep(0.1)


def raft_indexes(endpoints: str) -> dict[str, int]:
    """endpoint → raftIndex, for every member `endpoint status --cluster` finds."""
    result = run_etcdctl(endpoints, ["endpoint", "status", "--cluster", "-w", "json"])
    if result.returncode != 0:
        return {}
    return {s["Endpoint"]: int(s["Status"]["raftIndex"]) for s in json.loads(result.stdout)}


def test_learner_catches_up_by_snapshot_is_promoted_and_restarts_from_it(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path)
    for member in cluster.members.values():
        member.argv.extend(SMALL_SNAPSHOTS)
    with cluster:
        leader = cluster.wait_for_leader()
        written = put_txns(leader.client_endpoint, "before", 3 * SNAPSHOT_COUNT)
        # Precondition: the leader's log no longer starts at index 1, so a member with an
        # empty log cannot be caught up from it.
        compactions = [int(m.group(2)) for m in wait_log(leader, _COMPACTED)]
        assert max(compactions) > 1, compactions

        peer_port, client_port = free_port(), free_port()
        peer_url = f"http://127.0.0.1:{peer_port}"
        added = json.loads(
            ctl(
                leader.client_endpoint,
                *("member", "add", "m4", f"--peer-urls={peer_url}", "--learner", "-w", "json"),
            )
        )
        new_id = format(added["member"]["ID"], "x")
        founders = ",".join(f"{m.name}={peer_url_of(m)}" for m in cluster.members.values())
        m4 = ClusterProcess(tmp_path, "m4", f"{founders},m4={peer_url}", client_port, peer_port)
        m4.argv.extend([*SMALL_SNAPSHOTS, "--initial-cluster-state=existing"])
        cluster.members["m4"] = m4
        m4.start()

        image_index = int(wait_log(m4, _INSTALLED)[0].group(1))
        assert image_index >= SNAPSHOT_COUNT
        revision, rows = wait_same_keyspace(m4, leader.client_endpoint)
        assert {row[0] for row in rows} == set(written)

        until_ok(leader.client_endpoint, "member", "promote", new_id)
        deadline = time.monotonic() + 20
        while True:
            indexes = raft_indexes(cluster.endpoints())
            if len(indexes) == 4 and len(set(indexes.values())) == 1:
                break
            assert time.monotonic() < deadline, f"raft indexes never agreed: {indexes}"
            time.sleep(0.2)

        # Enough entries that m4 takes a snapshot of its own before it is killed.
        written += put_txns(cluster.endpoints(), "after", SNAPSHOT_COUNT + 10)
        wait_same_keyspace(m4, leader.client_endpoint)
        wait_log(m4, _COMPACTED)
        m4.kill()
        m4.start()
        restart = wait_log(m4, _RESTARTED)[0]
        wal_entries, applied = int(restart.group(1)), int(restart.group(2))
        # The WAL replays only the entries after m4's own latest snapshot, fewer than it has
        # applied since the image: the rest of the state came from the snapshot.
        assert applied > image_index
        assert wal_entries < applied - image_index
        revision_after, rows_after = wait_same_keyspace(m4, leader.client_endpoint)
        assert revision_after > revision
        assert {row[0] for row in rows_after} == set(written)
