"""`etcdctl watch` against three real `cairn serve` processes, across a leader kill -9.

Three etcdctl watchers of one prefix: one knows only the leader (it must wait for the killed
member to come back and resume there), one knows only a follower, one knows every member
(its client fails over). Writes go on through the kill and after the restart. Every watcher
must print exactly the history of the prefix, read back with Range at every revision.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import etcdctl_path, run_etcdctl, start_etcdctl

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]

Change = tuple[int, str, str, str]  # revision, PUT/DELETE, key, value


def write(endpoints: str, i: int) -> None:
    """One write (a put, or every 5th a delete) retried until some member takes it."""
    args = ["del", f"/r/{i % 7}"] if i % 5 == 4 else ["put", f"/r/{i % 7}", f"v{i}"]
    deadline = time.monotonic() + 20
    while run_etcdctl(endpoints, ["--command-timeout=2s", *args]).returncode != 0:
        assert time.monotonic() < deadline, f"{args} never accepted"
        time.sleep(0.1)


def printed_changes(path: str) -> list[Change]:
    changes: list[Change] = []
    for line in Path(path).read_text().splitlines():
        response = json.loads(line)
        for event in response.get("Events") or []:
            kv = event["kv"]
            kind = "DELETE" if event.get("type") == 1 else "PUT"
            key = base64.b64decode(kv["key"]).decode()
            value = base64.b64decode(kv.get("value", "")).decode()
            changes.append((kv["mod_revision"], kind, key, value))
    return changes


def history(endpoint: str) -> list[Change]:
    with grpc.insecure_channel(endpoint) as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        current = kv.Range(pb.RangeRequest(key=b"/r/", range_end=b"/r0")).header.revision
        out: list[Change] = []
        before: set[bytes] = set()
        for rev in range(2, current + 1):
            now = {
                x.key: x
                for x in kv.Range(pb.RangeRequest(key=b"/r/", range_end=b"/r0", revision=rev)).kvs
            }
            for key in sorted(set(now) | before):
                if key in now and now[key].mod_revision == rev:
                    out.append((rev, "PUT", key.decode(), now[key].value.decode()))
                elif key in before and key not in now:
                    out.append((rev, "DELETE", key.decode(), ""))
            before = set(now)
    return out


def test_etcdctl_watchers_print_the_whole_history_once_across_a_leader_kill(
    tmp_path: Path,
) -> None:
    with ProcessCluster(tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.members.values() if m is not leader)
        everyone = cluster.endpoints()
        watchers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        outputs = []
        for label, endpoints in (
            ("leader-only", leader.client_endpoint),
            ("follower-only", follower.client_endpoint),
            ("all", everyone),
        ):
            out = tempfile.NamedTemporaryFile(dir=tmp_path, suffix=f"-{label}.json")  # noqa: SIM115
            err = tempfile.NamedTemporaryFile(dir=tmp_path, suffix=f"-{label}.err")  # noqa: SIM115
            outputs += [out, err]
            proc = start_etcdctl(
                endpoints, ["watch", "--prefix", "/r/", "-w", "json"], stdout=out, stderr=err
            )
            watchers[label] = (proc, out.name)
        try:
            time.sleep(1.0)  # let every watch be created
            for i in range(40):
                write(everyone, i)
            leader.kill()
            for i in range(40, 70):
                write(cluster.endpoints(), i)
            leader.start()
            cluster.wait_for_leader()
            for i in range(70, 90):
                write(everyone, i)
            expected = history(follower.client_endpoint)
            assert len(expected) >= 75  # deletes of absent keys write nothing
            deadline = time.monotonic() + 60
            for label, (_, path) in watchers.items():
                while len(printed_changes(path)) < len(expected):
                    assert time.monotonic() < deadline, f"{label} stalled"
                    time.sleep(0.2)
            time.sleep(0.5)  # a duplicate would show up now
            for label, (_, path) in watchers.items():
                changes = printed_changes(path)
                revisions = [c[0] for c in changes]
                assert revisions == sorted(revisions), label
                assert sorted(changes) == sorted(expected), label
        finally:
            for proc, _ in watchers.values():
                proc.kill()
                proc.wait()
                if proc.stdin is not None:
                    proc.stdin.close()
            for handle in outputs:
                handle.close()
