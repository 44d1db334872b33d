"""`etcdctl endpoint hashkv --cluster`: every member gives the same hash at one revision.

That equality is the operator's corruption check, so it is tested where it can break: real
`cairn serve` processes on loopback, after writes and deletes, after a compaction (whose
physical deletion runs on each member at its own pace), after `etcdctl defrag` rewrote the
files, and after a member that was down caught up by a snapshot image instead of the log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
from tests.cluster.test_membership_etcdctl import ctl
from tests.cluster.test_snapshot_catchup_etcdctl import _INSTALLED, put_txns, wait_log
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]

SNAPSHOT_COUNT = 40
SMALL_SNAPSHOTS = [
    f"--snapshot-count={SNAPSHOT_COUNT}",
    "--experimental-snapshot-catchup-entries=10",
]

HashRow = tuple[int, int]  # (hash, compact_revision)


def hashkv_everywhere(
    endpoints: str, rev: int, members: int, timeout: float = 20.0, *, cluster: bool = True
) -> set[HashRow]:
    """The distinct (hash, compact revision) pairs `hashkv [--cluster] --rev` reports.

    Retried until every member answers: one still applying `rev` refuses it as a future
    revision, which is etcd's answer too, not a disagreement; one that has not published its
    client URLs yet is missing from the member list `--cluster` reads.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = run_etcdctl(
            endpoints,
            [
                "endpoint",
                "hashkv",
                *(["--cluster"] if cluster else []),
                f"--rev={rev}",
                "-w",
                "json",
            ],
        )
        if result.returncode == 0:
            rows = json.loads(result.stdout)
            if len(rows) == members:
                return {
                    (int(r["HashKV"]["hash"]), int(r["HashKV"]["compact_revision"])) for r in rows
                }
        assert time.monotonic() < deadline, (result.stdout, result.stderr)
        time.sleep(0.2)


def revision_of(endpoint: str) -> int:
    return int(json.loads(ctl(endpoint, "get", "x", "-w", "json"))["header"]["revision"])


def test_hashkv_is_equal_on_every_member_after_writes_compaction_and_a_snapshot_catch_up(
    tmp_path: Path,
) -> None:
    cluster = ProcessCluster(tmp_path)
    for member in cluster.members.values():
        member.argv.extend(SMALL_SNAPSHOTS)
    with cluster:
        leader = cluster.wait_for_leader()
        put_txns(leader.client_endpoint, "a", 10)
        ctl(leader.client_endpoint, "del", "a/0001", "--prefix")
        written = revision_of(leader.client_endpoint)
        after_writes = hashkv_everywhere(cluster.endpoints(), written, 3)
        assert len(after_writes) == 1, after_writes

        ctl(leader.client_endpoint, "compaction", str(written - 5))
        put_txns(leader.client_endpoint, "b", 3)
        compacted = hashkv_everywhere(cluster.endpoints(), written, 3)
        assert len(compacted) == 1, compacted
        ((_, compact_revision),) = compacted
        assert compact_revision == written - 5
        # The hash at a revision covers the history a read there sees; compaction below it
        # dropped records that read could never use, so the value changed.
        assert compacted != after_writes

        lagging = next(m for m in cluster.members.values() if m is not leader)
        lagging.kill()
        put_txns(leader.client_endpoint, "c", 3 * SNAPSHOT_COUNT)
        # Defragmenting swaps the LevelDB files under the Raft snapshot's image: the image
        # the lagging member then receives is taken again on the new files.
        defragged = ctl(cluster.endpoints(), "defrag").splitlines()
        assert len(defragged) == 2, defragged
        # `--cluster` would ask the member that is down too: the two running ones only.
        before_catch_up = hashkv_everywhere(cluster.endpoints(), written, 2, cluster=False)
        assert before_catch_up == compacted
        lagging.start()
        wait_log(lagging, _INSTALLED)
        current = revision_of(leader.client_endpoint)
        caught_up = hashkv_everywhere(cluster.endpoints(), current, 3)
        assert len(caught_up) == 1, caught_up
        assert hashkv_everywhere(cluster.endpoints(), written, 3) == compacted
