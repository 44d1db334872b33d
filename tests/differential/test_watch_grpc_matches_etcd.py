"""Watch requests etcdctl 3.4 cannot send, sent over gRPC to a real etcd and to cairn.

etcdctl has no flags for filters, client-chosen watch IDs, cancel, fragment or progress
notifications, yet clients (client-go, aetcd) use them. Each case here drives one Watch
stream with the same requests (and the same puts through the KV service) on both servers
and requires the same responses, with cluster id, member id and Raft term masked.
"""

from __future__ import annotations

import difflib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from tests.conftest import ServerFactory
from tests.differential.runner import target_kind

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.etcd, pytest.mark.usefixtures("etcd_binaries")]

SETTLE_S = 0.4


class WatchSession:
    """One Watch stream plus a KV stub on a server; responses are collected in order."""

    def __init__(self, url: str) -> None:
        self.channel = grpc.insecure_channel(url.removeprefix("http://"))
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self._requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
        self.responses: list[dict[str, Any]] = []
        self.error: str | None = None
        self._call = rpc_pb2_grpc.WatchStub(self.channel).Watch(self._iterate())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _iterate(self) -> Iterator[pb.WatchRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self.responses.append(_normalize(response))
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.CANCELLED:
                self.error = f"{error.code().name}: {error.details()}"

    def send(self, wait: bool = True, **fields: Any) -> None:
        self._requests.put(pb.WatchRequest(**fields))
        if wait:
            time.sleep(SETTLE_S)

    def create(self, key: bytes, wait: bool = True, **fields: Any) -> None:
        self.send(wait, create_request=pb.WatchCreateRequest(key=key, **fields))

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(5)
        self.channel.close()


def _normalize(response: pb.WatchResponse) -> dict[str, Any]:
    out = MessageToDict(response, preserving_proto_field_name=True)
    header = out.get("header", {})
    for masked in ("cluster_id", "member_id", "raft_term"):
        if masked in header:
            header[masked] = "<masked>"
    for event in out.get("events", []):
        for kv in (event.get("kv"), event.get("prev_kv")):
            if kv is not None and len(kv.get("value", "")) > 64:
                kv["value"] = f"<{len(kv['value'])} base64 chars>"
    return out


Case = Callable[[WatchSession], None]


def duplicate_and_automatic_ids(s: WatchSession) -> None:
    s.create(b"a", watch_id=5)
    s.create(b"a")  # automatic: 0
    s.create(b"a")  # automatic: 1
    s.create(b"b", watch_id=5)  # taken: refused
    s.create(b"b", watch_id=1)  # taken by an automatic one
    s.create(b"a", watch_id=2)
    s.create(b"a")  # automatic skips 2: 3
    s.kv.Put(pb.PutRequest(key=b"a", value=b"1"))
    time.sleep(SETTLE_S)
    s.send(cancel_request=pb.WatchCancelRequest(watch_id=0))
    s.send(cancel_request=pb.WatchCancelRequest(watch_id=99))  # unknown: no answer
    s.kv.Put(pb.PutRequest(key=b"a", value=b"2"))
    time.sleep(SETTLE_S)


def filters(s: WatchSession) -> None:
    s.create(b"k", filters=[pb.WatchCreateRequest.NOPUT], watch_id=1)
    s.create(b"k", filters=[pb.WatchCreateRequest.NODELETE], watch_id=2)
    s.create(b"k", filters=[pb.WatchCreateRequest.NOPUT, pb.WatchCreateRequest.NODELETE])
    s.kv.Put(pb.PutRequest(key=b"k", value=b"v"))
    s.kv.DeleteRange(pb.DeleteRangeRequest(key=b"k"))
    s.kv.Put(pb.PutRequest(key=b"k", value=b"w", prev_kv=True))
    time.sleep(SETTLE_S)


def progress_request(s: WatchSession) -> None:
    s.kv.Put(pb.PutRequest(key=b"x", value=b"1"))
    s.send(progress_request=pb.WatchProgressRequest())  # no watch yet
    s.create(b"k")
    s.kv.Put(pb.PutRequest(key=b"y", value=b"2"))
    s.send(progress_request=pb.WatchProgressRequest())


def progress_notify(s: WatchSession) -> None:
    # Servers run with a 700 ms interval (plus up to 10% jitter); the case ends after ~0.9 s,
    # so exactly one notification falls inside it, after the put.
    s.create(b"quiet", progress_notify=True, watch_id=1, wait=False)
    s.create(b"busy", progress_notify=True, watch_id=2)  # gets an event: no notification
    s.kv.Put(pb.PutRequest(key=b"busy", value=b"1"))


def empty_key_and_every_key(s: WatchSession) -> None:
    s.create(b"", range_end=b"\x00", prev_kv=True)  # every key
    s.create(b"", watch_id=7)  # the key "\0"
    s.create(b"m", range_end=b"\x00", watch_id=8)  # every key from "m"
    s.kv.Put(pb.PutRequest(key=b"a", value=b"1"))
    s.kv.Put(pb.PutRequest(key=b"\x00", value=b"nul"))
    s.kv.Put(pb.PutRequest(key=b"z", value=b"2"))
    s.kv.Put(pb.PutRequest(key=b"a", value=b"3"))
    time.sleep(SETTLE_S)


def compacted_start_revision(s: WatchSession) -> None:
    for value in (b"1", b"2", b"3", b"4"):
        s.kv.Put(pb.PutRequest(key=b"c", value=value))  # revs 2..5
    s.kv.Compact(pb.CompactionRequest(revision=4, physical=True))
    s.create(b"c", start_revision=2, watch_id=3)
    s.create(b"c", start_revision=4, watch_id=4)
    s.send(cancel_request=pb.WatchCancelRequest(watch_id=3))  # the compacted one: answered
    s.kv.Put(pb.PutRequest(key=b"c", value=b"5"))
    time.sleep(SETTLE_S)


def fragmented_catch_up(s: WatchSession) -> None:
    # --max-request-bytes 65536: a response is split once it reaches 65536 + 512 KiB.
    for i in range(70):
        s.kv.Put(pb.PutRequest(key=b"f%02d" % i, value=bytes([65 + i % 26]) * 10_000))
    s.create(b"f", range_end=b"g", start_revision=2, fragment=True, watch_id=1)
    s.create(b"f", range_end=b"g", start_revision=2, watch_id=2)  # not asked: one response
    txn = pb.TxnRequest(
        success=[
            pb.RequestOp(request_put=pb.PutRequest(key=b"f%d" % i, value=b"t" * 9000))
            for i in range(6)
        ]
    )
    s.kv.Txn(txn)  # small enough: one response
    time.sleep(SETTLE_S)


CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "duplicate_and_automatic_ids": (duplicate_and_automatic_ids, ()),
    "filters": (filters, ()),
    "progress_request": (progress_request, ()),
    "progress_notify": (
        progress_notify,
        ("--experimental-watch-progress-notify-interval", "700ms"),
    ),
    "empty_key_and_every_key": (empty_key_and_every_key, ()),
    "compacted_start_revision": (compacted_start_revision, ()),
    "fragmented_catch_up": (fragmented_catch_up, ("--max-request-bytes", "65536")),
}


def _run(url: str, case: Case) -> tuple[list[dict[str, Any]], str | None]:
    session = WatchSession(url)
    try:
        case(session)
        time.sleep(SETTLE_S)
        return list(session.responses), session.error
    finally:
        session.close()


@pytest.mark.parametrize("name", list(CASES))
def test_watch_stream_answers_like_etcd(name: str, server_factory: ServerFactory) -> None:
    case, server_args = CASES[name]
    with ThreadPoolExecutor(max_workers=2) as pool:
        ref = pool.submit(server_factory, "etcd", extra_args=server_args)
        tgt = pool.submit(server_factory, target_kind(), extra_args=server_args)
        reference, target = ref.result(), tgt.result()
        expected_f = pool.submit(_run, reference.client_url, case)
        actual_f = pool.submit(_run, target.client_url, case)
        expected, actual = expected_f.result(), actual_f.result()
    if _lines(actual) != _lines(expected):
        lines = difflib.unified_diff(
            _lines(expected), _lines(actual), "etcd", target_kind(), lineterm="", n=1
        )
        pytest.fail("\n".join(lines), pytrace=False)


def _lines(result: tuple[list[dict[str, Any]], str | None]) -> list[str]:
    """One line per response; event responses of one revision to several watches are sorted
    (etcd sends them in Go map order, which is random: only per-watch order is promised)."""
    responses, error = result
    lines: list[str] = []
    run: list[str] = []
    run_rev: object = None
    for response in responses:
        rev = response["header"].get("revision") if "events" in response else None
        if rev is None or rev != run_rev:
            lines += sorted(run)
            run = []
        run_rev = rev
        if rev is None:
            lines.append(json.dumps(response, sort_keys=True))
        else:
            run.append(json.dumps(response, sort_keys=True))
    return [*lines, *sorted(run), f"stream error: {error}"]
