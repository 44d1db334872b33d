"""Corruption checks on a 3-member cluster of real `cairn serve` processes, driven with etcdctl.

A member's LevelDB is altered on disk while it is stopped (one history record's value is
rewritten with plyvel; the WAL is untouched, so Raft never notices). Restarted, the leader's
periodic check (--experimental-corrupt-check-time) raises CORRUPT naming that member, and
every write then fails with etcd's `etcdserver: corrupt cluster`; a member started with
--experimental-initial-corrupt-check refuses to start on such data. A healthy cluster whose
revisions move during the checks never raises the alarm.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import plyvel
import pytest
from tests.cluster.processes import ClusterProcess, ProcessCluster
from tests.cluster.test_membership_etcdctl import ctl
from tests.support.etcdctl import etcdctl_path, run_etcdctl

from cairn.mvcc.backend import HISTORY
from cairn.proto.kv_pb2 import KeyValue

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]

CHECK_EVERY = "--experimental-corrupt-check-time=1s"
INITIAL_CHECK = "--experimental-initial-corrupt-check=true"
CORRUPT_LINE = re.compile(r"^memberID:(\d+) alarm:CORRUPT $", re.M)


def until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def tamper(member: ClusterProcess, key: bytes, value: bytes) -> None:
    """Rewrite the value of `key`'s latest history record in the member's LevelDB."""
    data_dir = next(a for a in member.argv if a.startswith("--data-dir=")).split("=", 1)[1]
    db = plyvel.DB(str(Path(data_dir) / "member" / "db"))
    try:
        found = [
            (raw, record)
            for raw, record in db.iterator(prefix=HISTORY)
            if KeyValue.FromString(record[1:]).key == key
        ]
        raw, record = found[-1]
        altered = KeyValue.FromString(record[1:])
        altered.value = value
        db.put(raw, record[:1] + altered.SerializeToString())
    finally:
        db.close()


def follower_of(cluster: ProcessCluster) -> tuple[ClusterProcess, ClusterProcess]:
    leader = cluster.wait_for_leader()
    return leader, next(m for m in cluster.members.values() if m is not leader)


def caught_up(member: ClusterProcess, key: str, value: str) -> bool:
    result = run_etcdctl(member.client_endpoint, ["get", key, "--consistency=s"])
    return result.returncode == 0 and result.stdout.split() == [key, value]


def corrupt_alarms(endpoint: str) -> list[str]:
    return CORRUPT_LINE.findall(ctl(endpoint, "alarm", "list"))


def cluster_with(tmp_path: Path, *flags: str) -> ProcessCluster:
    cluster = ProcessCluster(tmp_path)
    for member in cluster.members.values():
        member.argv.extend(flags)
    return cluster


def test_periodic_check_raises_corrupt_for_the_altered_member_and_writes_fail(
    tmp_path: Path,
) -> None:
    with cluster_with(tmp_path, CHECK_EVERY) as cluster:
        leader, victim = follower_of(cluster)
        for i in range(5):
            ctl(leader.client_endpoint, "put", f"k{i}", f"v{i}")
        until(lambda: caught_up(victim, "k4", "v4"), "the follower never caught up")
        victim.stop()
        tamper(victim, b"k2", b"tampered")
        victim.start()
        until(
            lambda: corrupt_alarms(leader.client_endpoint) != [],
            "the periodic check never raised CORRUPT",
        )
        assert corrupt_alarms(leader.client_endpoint) == [str(int(victim.member_id or "", 16))]
        refused = run_etcdctl(leader.client_endpoint, ["put", "k9", "v9"])
        assert refused.returncode != 0
        assert refused.stderr.rstrip().endswith("Error: etcdserver: corrupt cluster")
        assert "code = DataLoss" in refused.stderr
        # Reads are still served, the altered member's own (serializable) one included.
        assert ctl(leader.client_endpoint, "get", "k2").split() == ["k2", "v2"]
        assert ctl(victim.client_endpoint, "get", "k2", "--consistency=s").split() == [
            "k2",
            "tampered",
        ]
        statuses = ctl(cluster.endpoints(), "endpoint", "status", "-w", "json")
        assert statuses.count(f"memberID:{int(victim.member_id or '', 16)} alarm:CORRUPT ") == 3


def test_disarming_after_the_corrupt_member_is_stopped_accepts_writes_again(
    tmp_path: Path,
) -> None:
    with cluster_with(tmp_path, CHECK_EVERY) as cluster:
        leader, victim = follower_of(cluster)
        ctl(leader.client_endpoint, "put", "k", "v")
        until(lambda: caught_up(victim, "k", "v"), "the follower never caught up")
        victim.stop()
        tamper(victim, b"k", b"tampered")
        victim.start()
        until(lambda: corrupt_alarms(leader.client_endpoint) != [], "CORRUPT never raised")
        victim.stop()
        disarmed = ctl(leader.client_endpoint, "alarm", "disarm")
        assert disarmed == f"memberID:{int(victim.member_id or '', 16)} alarm:CORRUPT \n"
        time.sleep(2.5)  # two more checks: the remaining members agree
        assert corrupt_alarms(leader.client_endpoint) == []
        assert ctl(leader.client_endpoint, "put", "k", "w") == "OK\n"


def test_initial_check_refuses_to_start_a_member_whose_data_differs(tmp_path: Path) -> None:
    with cluster_with(tmp_path) as cluster:
        leader, victim = follower_of(cluster)
        ctl(leader.client_endpoint, "put", "k", "v")
        until(lambda: caught_up(victim, "k", "v"), "the follower never caught up")
        victim.stop()
        tamper(victim, b"k", b"tampered")
        victim.argv.append(INITIAL_CHECK)
        victim.start()
        assert victim.process is not None
        try:
            exit_code = victim.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the member with altered data started serving")
        assert exit_code != 0
        log = victim.log_path.read_text(errors="replace")
        assert f"{victim.member_id} found data inconsistency with peers" in log
        assert "ready to serve client requests" not in log.split("starting the initial")[-1]


def test_healthy_cluster_under_writes_never_raises_corrupt(tmp_path: Path) -> None:
    """Checks every 0.3 s while revisions move and a compaction runs; a follower that was
    down while writes went on restarts with the initial check and passes it."""
    with cluster_with(tmp_path, "--experimental-corrupt-check-time=300ms") as cluster:
        leader, follower = follower_of(cluster)
        follower.stop()
        for i in range(20):
            ctl(leader.client_endpoint, "put", f"k{i % 4}", f"v{i}")
        follower.argv.append(INITIAL_CHECK)
        follower.start()
        written = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            ctl(leader.client_endpoint, "put", f"k{written % 4}", f"w{written}")
            written += 1
            if written == 30:
                revision = int(
                    re.search(
                        r'"revision":(\d+)', ctl(leader.client_endpoint, "get", "k0", "-w", "json")
                    ).group(1)  # type: ignore[union-attr]
                )
                ctl(leader.client_endpoint, "compact", str(revision - 10))
        assert follower.process is not None and follower.process.poll() is None
        log = follower.log_path.read_text(errors="replace")
        assert "initial corruption check passed" in log
        leader_log = leader.log_path.read_text(errors="replace")
        compared = re.findall(r"corruption check at revision \d+: (\d) of 2 peers", leader_log)
        assert compared.count("2") >= 5, compared
        assert corrupt_alarms(leader.client_endpoint) == []
        assert "differs; raising the CORRUPT alarm" not in leader_log


def test_a_corrupt_leader_names_itself_when_both_followers_agree_against_it(
    tmp_path: Path,
) -> None:
    """etcd 3.4 would name a follower here; cairn's majority rule names the leader."""
    with cluster_with(tmp_path) as cluster:
        leader, victim = follower_of(cluster)
        ctl(leader.client_endpoint, "put", "k", "v")
        until(lambda: caught_up(victim, "k", "v"), "the follower never caught up")
        victim.stop()
        tamper(victim, b"k", b"tampered")
        # Only the victim checks, so the alarm can only come from its own check as leader.
        victim.argv.append(CHECK_EVERY)
        victim.start()
        until(lambda: caught_up(victim, "k", "tampered"), "the victim never served again")
        ctl(leader.client_endpoint, "move-leader", victim.member_id or "")
        until(
            lambda: corrupt_alarms(leader.client_endpoint) != [],
            "the periodic check never raised CORRUPT",
        )
        assert corrupt_alarms(leader.client_endpoint) == [str(int(victim.member_id or "", 16))]
