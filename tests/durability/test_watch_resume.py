"""A watch resumed after a kill -9 and restart of its member loses no event.

Clients resume a broken watch from the revision after the last one they saw; the history it
needs is in LevelDB (written before the put was acknowledged, via WAL replay after a crash), so
the resumed watch must deliver exactly the revisions the client had not seen yet, then live
ones.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tests.support.servers import LOOPBACK, ServerProcess, start_server

from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc

pytestmark = pytest.mark.slow


def _watch(server: ServerProcess, start: int, want: int) -> list[tuple[int, bytes]]:
    """(revision, value) of the first `want` events on w/ from `start`."""
    channel = grpc.insecure_channel(f"{LOOPBACK}:{server.client_port}")
    requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
    requests.put(
        pb.WatchRequest(
            create_request=pb.WatchCreateRequest(key=b"w/", range_end=b"w0", start_revision=start)
        )
    )

    def iterate() -> Iterator[pb.WatchRequest]:
        while (item := requests.get()) is not None:
            yield item

    call = rpc_pb2_grpc.WatchStub(channel).Watch(iterate(), timeout=20)
    seen: list[tuple[int, bytes]] = []
    try:
        for response in call:
            seen += [(e.kv.mod_revision, e.kv.value) for e in response.events]
            if len(seen) >= want:
                break
    finally:
        requests.put(None)
        call.cancel()
        channel.close()
    return seen


def _puts(server: ServerProcess, values: range) -> list[int]:
    with grpc.insecure_channel(f"{LOOPBACK}:{server.client_port}") as channel:
        kv = rpc_pb2_grpc.KVStub(channel)
        return [
            kv.Put(pb.PutRequest(key=b"w/%d" % (v % 4), value=b"%d" % v), timeout=5).header.revision
            for v in values
        ]


def test_a_watch_resumed_after_kill_and_restart_gets_every_missed_event_once(
    tmp_path: Path,
) -> None:
    server = start_server("cairn", tmp_path / "cairn")
    try:
        revs = _puts(server, range(10))  # revs 2..11
        seen = _watch(server, 2, 10)
        assert seen == [(r, b"%d" % v) for r, v in zip(revs, range(10), strict=True)]
        revs += _puts(server, range(10, 25))  # the client is not watching now
        server.kill()
        server.start()
        resumed_from = seen[-1][0] + 1
        resumed: list[list[tuple[int, bytes]]] = []
        watcher = threading.Thread(target=lambda: resumed.append(_watch(server, resumed_from, 20)))
        watcher.start()
        revs += _puts(server, range(25, 30))  # live, after the replayed ones
        watcher.join(30)
        assert resumed, "the resumed watch did not deliver 20 events"
        expected = [(r, b"%d" % v) for r, v in zip(revs[10:], range(10, 30), strict=True)]
        assert resumed[0] == expected
    finally:
        server.stop()


def test_sigterm_ends_open_watch_streams_with_server_stopped_instead_of_waiting_them_out(
    tmp_path: Path,
) -> None:
    # Watch streams never end by themselves; a member shutting down ends them at once (clients
    # then resume on another member) rather than holding its shutdown for the grace period.
    server = start_server("cairn", tmp_path / "cairn")
    channel = grpc.insecure_channel(f"{LOOPBACK}:{server.client_port}")
    requests: queue.Queue[pb.WatchRequest | None] = queue.Queue()
    requests.put(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"w/")))

    def iterate() -> Iterator[pb.WatchRequest]:
        while (item := requests.get()) is not None:
            yield item

    call = rpc_pb2_grpc.WatchStub(channel).Watch(iterate(), timeout=30)
    try:
        assert next(call).created
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        with pytest.raises(grpc.RpcError) as ended:
            next(call)
        assert (ended.value.code(), ended.value.details()) == (
            grpc.StatusCode.UNAVAILABLE,
            "etcdserver: server stopped",
        )
        stopping.join(30)
    finally:
        requests.put(None)
        call.cancel()
        channel.close()
        server.stop()
