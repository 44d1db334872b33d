"""A snapshot taken while writes go on is one point in time.

A writer commits three-key txns, numbered, one after the other, against a real `cairn serve`;
`etcdctl snapshot save` runs in the middle of it; the backup is restored into a new member.
There, every txn acknowledged before the snapshot started is present, no txn is there in
part, the txns present are a prefix of the sequence (nothing from after the point in time
while something before it is missing), nothing sent after the snapshot finished is there,
and the restored history hashes (HashKV) like the source's at the same revision.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path

import grpc
import pytest
from tests.cluster.recovery import cairn
from tests.support.etcdctl import etcdctl_path, run_etcdctl
from tests.support.servers import ServerProcess, start_server

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

pytestmark = [
    pytest.mark.slow,
    pytest.mark.etcd,
    pytest.mark.skipif(etcdctl_path() is None, reason="needs etcdctl (Debian etcd-client)"),
    pytest.mark.timeout(180),
]

KEYS_PER_TXN = ("a", "b", "c")
PRELOAD_TXNS = 40  # ~8 MB, so the snapshot takes a while to stream
PRELOAD_VALUE = b"p" * 2048


class Writer(threading.Thread):
    """Commits txn i (keys /w/<i>/a..c = i) for i = 0, 1, ... until stopped."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self._kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(target))
        self.sent_at: list[float] = []
        self.acked_at: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            ops = [
                pb.RequestOp(
                    request_put=pb.PutRequest(key=f"/w/{i:06d}/{k}".encode(), value=b"%d" % i)
                )
                for k in KEYS_PER_TXN
            ]
            self.sent_at.append(time.monotonic())
            self._kv.Txn(pb.TxnRequest(success=ops), timeout=10)
            self.acked_at.append(time.monotonic())
            i += 1


def _preload(target: str) -> None:
    kv = rpc_pb2_grpc.KVStub(grpc.insecure_channel(target))
    for t in range(PRELOAD_TXNS):
        ops = [
            pb.RequestOp(
                request_put=pb.PutRequest(key=b"/pre/%03d/%03d" % (t, k), value=PRELOAD_VALUE)
            )
            for k in range(100)
        ]
        kv.Txn(pb.TxnRequest(success=ops), timeout=10)


def _hashkv(server: ServerProcess, rev: int) -> int:
    ran = run_etcdctl(server.client_url, ["endpoint", "hashkv", f"--rev={rev}", "-w", "json"])
    assert ran.returncode == 0, ran.stderr
    return int(json.loads(ran.stdout)[0]["HashKV"]["hash"])


def test_a_snapshot_during_writes_restores_to_one_point_in_time(tmp_path: Path) -> None:
    source = start_server("cairn", tmp_path / "source")
    try:
        target = f"127.0.0.1:{source.client_port}"
        _preload(target)
        writer = Writer(target)
        writer.start()
        while len(writer.acked_at) < 30:
            time.sleep(0.01)
        started = time.monotonic()
        acked_before = sum(1 for t in writer.acked_at if t < started)
        saved = run_etcdctl(source.client_url, ["snapshot", "save", str(tmp_path / "b.db")])
        finished = time.monotonic()
        while sum(1 for t in writer.acked_at if t > finished) < 10:
            time.sleep(0.01)
        writer.stop.set()
        writer.join(timeout=15)
        assert saved.returncode == 0, saved.stderr
        sent_after = next(i for i, t in enumerate(writer.sent_at) if t > finished)
        assert sent_after > acked_before + 1, "no write went on while the snapshot was taken"

        restored = ServerProcess("cairn", tmp_path / "restored", name="restored")
        ran = cairn(
            "snapshot",
            "restore",
            str(tmp_path / "b.db"),
            f"--name={restored.name}",
            f"--initial-cluster={restored.name}={restored.peer_url}",
            f"--initial-advertise-peer-urls={restored.peer_url}",
            f"--data-dir={restored.data_dir}",
        )
        assert ran.returncode == 0, ran.stderr
        with restored.start():
            listing = json.loads(
                run_etcdctl(restored.client_url, ["get", "/w/", "--prefix", "-w", "json"]).stdout
            )
            groups: dict[int, set[str]] = {}
            for kv in listing.get("kvs", []):
                _, _, number, name = base64.b64decode(kv["key"]).decode().split("/")
                groups.setdefault(int(number), set()).add(name)
            present = sorted(groups)
            assert all(groups[i] == set(KEYS_PER_TXN) for i in present), "a txn in part"
            assert present == list(range(len(present))), "not a prefix of the sequence"
            assert len(present) >= acked_before
            assert len(present) <= sent_after
            revision = int(listing["header"]["revision"])
            assert _hashkv(restored, revision) == _hashkv(source, revision)
    finally:
        source.stop()
