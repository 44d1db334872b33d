"""NOSPACE on a 3-member cluster of real `cairn serve` processes, driven with etcdctl.

A small --quota-backend-bytes; writes of incompressible values until one is refused with
etcd's exact error; the alarm is then cluster state (every member lists it, in `alarm list`
and in Status.errors, and refuses writes), reads and deletes still work; compaction +
`defrag --cluster` + `alarm disarm` make writes accepted again.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from pathlib import Path

import pytest
from tests.cluster.processes import ProcessCluster
from tests.cluster.test_membership_etcdctl import ctl
from tests.support.etcdctl import etcdctl_path, run_etcdctl

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(120),
]

QUOTA_BYTES = 400_000
VALUE_BYTES = 20_000
NOSPACE_ERROR = "Error: etcdserver: mvcc: database space exceeded"
ALARM_LINE = re.compile(r"^memberID:(\d+) alarm:NOSPACE $", re.M)


def incompressible() -> str:
    """A value LevelDB's compression cannot shrink: the database grows by its size."""
    return base64.b64encode(os.urandom(VALUE_BYTES * 3 // 4)).decode()


def until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_nospace_refuses_writes_on_every_member_until_compact_defrag_and_disarm(
    tmp_path: Path,
) -> None:
    cluster = ProcessCluster(tmp_path)
    for member in cluster.members.values():
        member.argv.append(f"--quota-backend-bytes={QUOTA_BYTES}")
    with cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.members.values() if m is not leader)
        written = 0
        while True:
            result = run_etcdctl(
                leader.client_endpoint, ["put", f"k/{written:03d}", incompressible()]
            )
            if result.returncode != 0:
                break
            written += 1
            assert written < 3 * QUOTA_BYTES // VALUE_BYTES, "the quota never refused a put"
        assert result.stderr.rstrip().endswith(NOSPACE_ERROR), result.stderr
        assert written >= QUOTA_BYTES // VALUE_BYTES // 2

        def listed_everywhere() -> bool:
            return all(
                ALARM_LINE.search(ctl(m.client_endpoint, "alarm", "list"))
                for m in cluster.members.values()
            )

        until(listed_everywhere, "the NOSPACE alarm never reached every member")
        raised_by = ALARM_LINE.findall(ctl(follower.client_endpoint, "alarm", "list"))
        assert raised_by == [str(int(leader.member_id or "0", 16))]
        statuses = json.loads(ctl(cluster.endpoints(), "endpoint", "status", "-w", "json"))
        assert {tuple(s["Status"]["errors"]) for s in statuses} == {
            (f"memberID:{raised_by[0]} alarm:NOSPACE ",)
        }

        small = run_etcdctl(follower.client_endpoint, ["put", "small", "v"])
        assert (small.returncode, small.stderr.rstrip().splitlines()[-1]) == (1, NOSPACE_ERROR)
        assert ctl(follower.client_endpoint, "get", "k/000", "--print-value-only").strip()

        assert ctl(leader.client_endpoint, "del", "k/", "--prefix").strip() == str(written)
        revision = json.loads(ctl(leader.client_endpoint, "get", "x", "-w", "json"))["header"][
            "revision"
        ]
        ctl(leader.client_endpoint, "compaction", "--physical", str(revision))
        defragged = ctl(cluster.endpoints(), "defrag", "--cluster").splitlines()
        assert sorted(defragged) == sorted(
            f"Finished defragmenting etcd member[http://{m.client_endpoint}]"
            for m in cluster.members.values()
        )
        still_refused = run_etcdctl(leader.client_endpoint, ["put", "small", "v"])
        assert still_refused.returncode == 1  # space is back, but the alarm stays until disarmed
        assert ALARM_LINE.search(ctl(leader.client_endpoint, "alarm", "disarm"))
        assert ctl(leader.client_endpoint, "alarm", "list") == ""
        assert ctl(follower.client_endpoint, "put", "small", "v").strip() == "OK"
        statuses = json.loads(ctl(cluster.endpoints(), "endpoint", "status", "-w", "json"))
        for status in statuses:
            assert "errors" not in status["Status"]
            assert status["Status"]["dbSize"] < QUOTA_BYTES
