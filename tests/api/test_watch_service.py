"""The Watch service over real gRPC on loopback, on a one-member cluster in this process.

What etcd pins down is checked against etcd itself in tests/differential; these tests cover
what a differential run cannot show cheaply: progress notifications on a short interval,
a stream ending when its member stops, and the fragment splitting rule at its edges.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from cairn.api.grpc_server import build_server
from cairn.api.services import etcd_services
from cairn.api.watch import WatchService, coalesce, fragments
from cairn.member.config import MemberConfig
from cairn.member.raft_member import ClusterSettings, RaftMember
from cairn.mvcc.watch import Watcher, WatchEvents, WatchSink
from cairn.proto import rpc_pb2 as pb
from cairn.proto import rpc_pb2_grpc
from cairn.proto.kv_pb2 import Event, KeyValue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Client:
    """A Watch stream whose requests the test pushes and whose responses it awaits."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self._requests: asyncio.Queue[pb.WatchRequest] = asyncio.Queue()
        self.call = rpc_pb2_grpc.WatchStub(channel).Watch(self._iterate())

    async def _iterate(self) -> AsyncIterator[pb.WatchRequest]:
        while True:
            yield await self._requests.get()

    def create(self, key: bytes, **fields: object) -> None:
        self._requests.put_nowait(
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=key, **fields))  # type: ignore[arg-type]
        )

    def cancel(self, watch_id: int) -> None:
        self._requests.put_nowait(
            pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=watch_id))
        )

    async def next(self, timeout: float = 5.0) -> pb.WatchResponse:
        return await asyncio.wait_for(self.call.read(), timeout)  # type: ignore[no-any-return]


Body = Callable[[RaftMember, Client], Awaitable[None]]


def serve(tmp_path: Path, body: Body, progress_interval_s: float = 600.0) -> None:
    async def main() -> None:
        peer = f"http://127.0.0.1:{free_port()}"
        member = RaftMember(
            MemberConfig(
                name="solo", data_dir=str(tmp_path / "solo"), initial_cluster={"solo": [peer]}
            ),
            ClusterSettings(listen_peer_urls=[peer], heartbeat_interval_ms=20),
        )
        member.open()
        await member.start()
        address = f"127.0.0.1:{free_port()}"
        services = etcd_services(member, [f"http://{address}"])
        services["etcdserverpb.Watch"] = WatchService(member, progress_interval_s)
        server = build_server(services, member.config.max_request_bytes)
        server.add_insecure_port(address)
        await server.start()
        try:
            while not member.is_leader:
                await asyncio.sleep(0.01)
            async with grpc.aio.insecure_channel(address) as channel:
                await asyncio.wait_for(body(member, Client(channel)), 30)
        finally:
            if not member.store.closed:
                await member.stop()
            await server.stop(0)

    asyncio.run(main())


def test_a_replayed_watch_is_created_before_its_history_arrives(tmp_path: Path) -> None:
    async def body(member: RaftMember, client: Client) -> None:
        for value in (b"1", b"2", b"3"):
            await client.kv.Put(pb.PutRequest(key=b"k", value=value))  # revs 2..4
        client.create(b"k", start_revision=2)
        created = await client.next()
        assert (created.created, created.watch_id, created.header.revision) == (True, 0, 4)
        replay = await client.next()
        assert [e.kv.value for e in replay.events] == [b"1", b"2", b"3"]
        assert replay.header.revision == 4

    serve(tmp_path, body)


def test_a_cancelled_watch_is_answered_and_gets_no_more_events(tmp_path: Path) -> None:
    async def body(member: RaftMember, client: Client) -> None:
        client.create(b"a", watch_id=4)
        client.create(b"b", watch_id=5)
        assert (await client.next()).watch_id == 4
        assert (await client.next()).watch_id == 5
        client.cancel(4)
        cancelled = await client.next()
        assert (cancelled.watch_id, cancelled.canceled) == (4, True)
        await client.kv.Put(pb.PutRequest(key=b"a", value=b"x"))
        await client.kv.Put(pb.PutRequest(key=b"b", value=b"y"))
        response = await client.next()
        assert (response.watch_id, [e.kv.key for e in response.events]) == (5, [b"b"])

    serve(tmp_path, body)


def test_progress_notify_reports_the_revision_to_an_idle_synced_watch(tmp_path: Path) -> None:
    async def body(member: RaftMember, client: Client) -> None:
        client.create(b"quiet", progress_notify=True, watch_id=1)
        client.create(b"other", watch_id=2)
        await client.next()
        await client.next()
        await client.kv.Put(pb.PutRequest(key=b"unwatched", value=b"1"))  # rev 2
        progress = await client.next(timeout=2)
        assert (progress.watch_id, list(progress.events), progress.header.revision) == (1, [], 2)

    serve(tmp_path, body, progress_interval_s=0.2)


def test_a_watch_stream_ends_unavailable_when_its_member_stops(tmp_path: Path) -> None:
    async def body(member: RaftMember, client: Client) -> None:
        client.create(b"k")
        await client.next()
        await member.stop()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await client.next()
        assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
        assert ended.value.details() == "etcdserver: server stopped"

    serve(tmp_path, body)


def _response(sizes: list[int]) -> pb.WatchResponse:
    response = pb.WatchResponse(watch_id=3)
    response.header.revision = 9
    for i, size in enumerate(sizes):
        kv = KeyValue(key=b"k%d" % i, value=b"v" * size, mod_revision=9)
        response.events.append(Event(type=Event.PUT, kv=kv))
    return response


def test_fragments_keep_every_piece_under_the_limit_and_flag_all_but_the_last() -> None:
    whole = _response([300] * 10)
    pieces = list(fragments(whole, 1000))
    assert len(pieces) > 1
    assert all(p.ByteSize() < 1000 for p in pieces)
    assert [p.fragment for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert [e for p in pieces for e in p.events] == list(whole.events)
    assert all((p.watch_id, p.header.revision) == (3, 9) for p in pieces)
    # Each piece is as large as fits: one more event would reach the limit.
    for piece, after in itertools.pairwise(pieces):
        grown = pb.WatchResponse()
        grown.CopyFrom(piece)
        grown.events.append(after.events[0])
        assert grown.ByteSize() >= 1000


def test_fragments_leave_small_or_single_event_responses_whole() -> None:
    assert list(fragments(_response([10, 10]), 1000)) == [_response([10, 10])]
    huge = _response([5000])
    assert list(fragments(huge, 1000)) == [huge]
    (first, second) = fragments(_response([5000, 5000]), 1000)
    assert (len(first.events), len(second.events), first.fragment, second.fragment) == (
        1,
        1,
        True,
        False,
    )


def test_a_client_that_stops_reading_does_not_stall_writes_and_later_gets_everything(
    tmp_path: Path,
) -> None:
    async def body(member: RaftMember, client: Client) -> None:
        client.create(b"s/", range_end=b"s0")
        await client.next()
        fell_behind = False
        revisions = []
        for i in range(1000):  # nobody reads the watch meanwhile: gRPC and the sink fill up
            put = await client.kv.Put(
                pb.PutRequest(key=b"s/%d" % (i % 7), value=b"%04d" % i * 5000), timeout=5
            )
            revisions.append(put.header.revision)
            fell_behind = fell_behind or member.watches.counts()[1] > 0
        assert fell_behind, "the watcher never had to catch up: the test proves nothing"
        seen: list[int] = []
        while len(seen) < len(revisions):
            seen += [e.kv.mod_revision for e in (await client.next()).events]
        assert seen == revisions

    serve(tmp_path, body)


def _delivery(watcher: Watcher, rev: int, size: int = 1) -> WatchEvents:
    kv = KeyValue(key=b"k", value=b"v" * size, mod_revision=rev)
    return WatchEvents(watcher, [Event(type=Event.PUT, kv=kv)], rev)


def _watcher(watch_id: int) -> Watcher:
    return Watcher(watch_id, b"k", None, 1, WatchSink())


def test_coalesce_merges_a_backlog_per_watcher_in_revision_order() -> None:
    a, b = _watcher(1), _watcher(2)
    out = list(coalesce([_delivery(a, 5), _delivery(b, 5), _delivery(a, 6), _delivery(b, 6)]))
    assert [(d.watcher, [e.kv.mod_revision for e in d.events], d.revision) for d in out] == [  # type: ignore[attr-defined]
        (a, [5, 6], 6),
        (b, [5, 6], 6),
    ]


def test_coalesce_keeps_control_responses_behind_what_was_queued_before_them() -> None:
    a = _watcher(1)
    cancel = pb.WatchResponse(watch_id=1, canceled=True)
    compacted = WatchEvents(a, [], 0, compact_revision=4)
    progress = WatchEvents(a, [], 9)
    batch: list[object] = [_delivery(a, 5), cancel, _delivery(a, 6), compacted, progress]
    assert list(coalesce(batch)) == batch


def test_coalesce_starts_a_new_response_past_the_size_bound() -> None:
    a = _watcher(1)
    big = 600 * 1024
    out = list(coalesce([_delivery(a, 5, big), _delivery(a, 6, big), _delivery(a, 7, 10)]))
    assert [[e.kv.mod_revision for e in d.events] for d in out] == [[5], [6, 7]]  # type: ignore[attr-defined]
