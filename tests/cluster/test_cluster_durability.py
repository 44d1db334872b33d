"""No write a 3-member cluster acknowledged is lost when members are kill -9'd mid-stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from tests.cluster.processes import ProcessCluster
from tests.support.etcdctl import etcdctl_path

from cairn.proto import rpc_pb2 as pb
from cairn.proto.rpc_pb2_grpc import KVStub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
]


class Writers:
    """Threads that put unique keys through every running member, recording each ack."""

    def __init__(self, endpoints: list[str], threads: int = 4) -> None:
        self.endpoints = endpoints
        self.acked: dict[bytes, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._write, args=(n,), daemon=True) for n in range(threads)
        ]

    def _write(self, n: int) -> None:
        stubs = [KVStub(grpc.insecure_channel(e)) for e in self.endpoints]
        i = 0
        while not self.stop.is_set():
            key = b"w%d-%06d" % (n, i)
            stub = stubs[(n + i) % len(stubs)]
            try:
                response = stub.Put(pb.PutRequest(key=key, value=key), timeout=2)
            except grpc.RpcError:
                time.sleep(0.02)  # that member is down or has no leader: try the next one
                i += 1
                continue
            with self.lock:
                self.acked[key] = response.header.revision
            i += 1

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def read_all(endpoint: str) -> tuple[int, dict[bytes, int]]:
    """(revision, key -> mod_revision) as one member serves it, linearizably."""
    stub = KVStub(grpc.insecure_channel(endpoint))
    for _ in range(100):
        try:
            response = stub.Range(pb.RangeRequest(key=b"\x00", range_end=b"\x00"), timeout=5)
        except grpc.RpcError:
            time.sleep(0.1)
            continue
        return response.header.revision, {kv.key: kv.mod_revision for kv in response.kvs}
    raise AssertionError(f"{endpoint} never answered a read")


def test_kill_9_of_leaders_mid_stream_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with ProcessCluster(tmp_path) as cluster:
        endpoints = [m.client_endpoint for m in cluster.members.values()]
        with Writers(endpoints) as writers:
            for _ in range(2):
                time.sleep(1.0)
                leader = cluster.wait_for_leader()
                leader.kill()
                time.sleep(1.5)
                leader.start()
            time.sleep(1.0)
        assert len(writers.acked) > 100, f"only {len(writers.acked)} writes were acknowledged"
        cluster.wait_for_leader()
        views = [read_all(m.client_endpoint) for m in cluster.members.values()]
        revision, state = views[0]
        for other_revision, other_state in views[1:]:
            assert other_state == state
            assert other_revision == revision
        missing = [key for key in writers.acked if key not in state]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
        wrong = [k for k, rev in writers.acked.items() if state[k] != rev]
        assert not wrong, f"acknowledged revisions differ from stored ones, e.g. {wrong[:3]}"
        assert len(set(writers.acked.values())) == len(writers.acked), "two acks share a revision"
