"""The etcdserverpb.Watch service: one bidirectional stream carries any number of watches.

The client sends create, cancel and progress requests; the server answers each create with a
`created` response (or a `canceled` one for a duplicate watch ID), then streams events from
the member's watch hub (`cairn.mvcc.watch`). Everything goes out through one `WatchSink`
per stream, so a watch's `created` always precedes its first events and its `canceled`
follows its last. Response contents follow etcd 3.4:

- watch IDs: a client-chosen ID (non-zero) is used as is, a second watch with the same ID on
  the stream gets `created` + `canceled` with watch ID -1 and etcd's cancel reason; 0 lets
  the server pick the lowest unused ID counting up from 0.
- headers: the response's own revision (the events' revision, the store revision of a
  catch-up read, the current revision for control responses, 0 for a compaction cancel).
- a progress request is answered at once with watch ID -1 and the current revision; a
  watch with `progress_notify` gets an empty response at the current revision every
  progress interval (etcd's default 10 minutes, plus up to 10% jitter) in which it was sent
  no events, while it is synced.
- `fragment`: a response larger than --max-request-bytes (plus gRPC's overhead allowance,
  as etcd counts it) is split into several, each as large as fits, all but the last flagged
  `fragment`.
- a stream opened with the `hasleader` metadata (clientv3's WithRequireLeader, which etcdctl
  uses) is refused with `no leader` on a member that knows no leader, and ends with that error
  once the member has known no leader for 3 election timeouts in a row (a client then moves
  to a member that is in touch with the cluster; etcd is slow to do it on purpose, as
  reconnecting costs more than waiting out a brief election).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from cairn.api.auth_identity import Authenticator
from cairn.api.grpc_server import GRPC_OVERHEAD_BYTES
from cairn.errors import ErrNoLeader, EtcdError
from cairn.member.applier import store_range_end
from cairn.member.auth_store import READ
from cairn.member.raft_member import RaftMember
from cairn.mvcc.watch import SinkClosed, Watcher, WatchEvents, WatchSink
from cairn.proto import rpc_pb2 as pb
from cairn.proto.kv_pb2 import Event

# etcd ends a require-leader stream after this many election timeouts without a leader.
NO_LEADER_TIMEOUTS = 3
# etcd: --experimental-watch-progress-notify-interval defaults to 10 minutes.
DEFAULT_PROGRESS_NOTIFY_INTERVAL_S = 600.0
AUTO_WATCH_ID = 0
INVALID_WATCH_ID = -1
ERR_DUPLICATE_WATCH_ID = "mvcc: duplicate watch ID provided on the WatchStream"
# Queued responses taken (and coalesced per watcher) at once by a stream's sender, and the
# most event bytes one coalesced response carries (under gRPC clients' default 4 MiB limit).
MAX_BATCH = 4096
MAX_COALESCED_BYTES = 1024 * 1024

_NOPUT = pb.WatchCreateRequest.NOPUT
_NODELETE = pb.WatchCreateRequest.NODELETE


class _Failure:
    """Queued by the request reader: the stream ends with this error."""

    def __init__(self, error: EtcdError) -> None:
        self.error = error


class WatchService:
    """Serves Watch streams from the member's watch hub."""

    def __init__(
        self,
        member: RaftMember,
        progress_notify_interval_s: float = DEFAULT_PROGRESS_NOTIFY_INTERVAL_S,
        authenticator: Authenticator | None = None,
    ) -> None:
        self._member = member
        self.progress_notify_interval_s = progress_notify_interval_s
        self._auth = authenticator if authenticator is not None else Authenticator(member)

    async def Watch(
        self, requests: AsyncIterator[pb.WatchRequest], context: Any
    ) -> AsyncIterator[pb.WatchResponse]:
        require_leader = _requires_leader(context)
        if require_leader and self._member.leader == 0:
            raise ErrNoLeader()
        stream = WatchStream(
            self._member,
            self.progress_notify_interval_s,
            require_leader,
            refusal=lambda create: self._refusal(create, context),
        )
        async for response in stream.run(requests):
            yield response

    async def _refusal(self, create: pb.WatchCreateRequest, context: Any) -> EtcdError | None:
        """Why the caller may not watch this range (etcd: READ on it), None when it may."""
        if not self._auth.enabled:
            return None
        try:
            caller = await self._auth.caller(context)
            auth = self._member.applier.auth
            auth.check_access(caller.username, create.key or b"\x00", create.range_end, READ)
        except EtcdError as error:
            return error
        return None


def go_status_text(error: EtcdError) -> str:
    """An error as Go's gRPC status prints it (etcd puts that text in a cancel_reason)."""
    code = "".join(part.capitalize() for part in error.code.split("_"))
    return f"rpc error: code = {code} desc = {error.message}"


def _requires_leader(context: Any) -> bool:
    metadata = getattr(context, "invocation_metadata", None)
    if metadata is None:
        return False
    return any(k == "hasleader" and v == "true" for k, v in metadata() or ())


class WatchStream:
    """The state of one Watch stream: its watchers by ID and its outgoing sink."""

    def __init__(
        self,
        member: RaftMember,
        progress_interval_s: float,
        require_leader: bool = False,
        refusal: Callable[[pb.WatchCreateRequest], Awaitable[EtcdError | None]] | None = None,
    ) -> None:
        """`refusal` says why the caller may not make a watch (auth), None to allow it."""
        self._member = member
        self._require_leader = require_leader
        self._hub = member.watches
        self._sink = WatchSink()
        # Watchers by ID, until the client cancels them (a compacted one too: its ID stays
        # taken, and a cancel for it is answered, as etcd does).
        self._watchers: dict[int, Watcher] = {}
        self._next_id = 0
        self._progress_interval_s = progress_interval_s
        self._limit = member.config.max_request_bytes + GRPC_OVERHEAD_BYTES
        self.refusal = refusal

    async def run(
        self, requests: AsyncIterator[pb.WatchRequest]
    ) -> AsyncIterator[pb.WatchResponse]:
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._read(requests), name="watch-requests")]
        if self._progress_interval_s > 0:
            tasks.append(loop.create_task(self._progress_ticks(), name="watch-progress"))
        if self._require_leader:
            tasks.append(loop.create_task(self._monitor_leader(), name="watch-leader"))
        self._hub.streams += 1
        try:
            while True:
                try:
                    batch = [await self._sink.get()]
                except SinkClosed as closed:
                    raise closed.error from None
                closed_with: EtcdError | None = None
                try:
                    while len(batch) < MAX_BATCH and (more := self._sink.get_nowait()) is not None:
                        batch.append(more)
                except SinkClosed as closed:
                    closed_with = closed.error
                for item in coalesce(batch):
                    if isinstance(item, _Failure):
                        raise item.error
                    if isinstance(item, WatchEvents):
                        for response in self._render(item):
                            yield response
                    else:
                        yield item  # type: ignore[misc]
                if closed_with is not None:
                    raise closed_with
        finally:
            self._hub.streams -= 1
            for task in tasks:
                task.cancel()
            for watcher in self._watchers.values():
                self._hub.cancel(watcher)
            self._watchers.clear()

    # ---- requests ----------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[pb.WatchRequest]) -> None:
        """Handle requests until the client stops sending (the stream stays open: etcd too)."""
        try:
            async for request in requests:
                if request.WhichOneof("request_union") == "create_request" and self.refusal:
                    refused = await self.refusal(request.create_request)
                    if refused is not None:
                        self._refuse(refused)
                        continue
                self.handle(request)
        except EtcdError as error:
            self._sink.put_control(_Failure(error))
        except asyncio.CancelledError:
            raise
        except Exception:  # the call ended under us (client gone); run() ends with it
            return

    def handle(self, request: pb.WatchRequest) -> None:
        kind = request.WhichOneof("request_union")
        if kind == "create_request":
            self._create(request.create_request)
        elif kind == "cancel_request":
            self._cancel(request.cancel_request.watch_id)
        elif kind == "progress_request":
            self._sink.put_control(self._response(INVALID_WATCH_ID, self._hub.revision))

    def _create(self, create: pb.WatchCreateRequest) -> None:
        revision = self._hub.revision
        watch_id = create.watch_id
        if watch_id == AUTO_WATCH_ID:
            while self._next_id in self._watchers:
                self._next_id += 1
            watch_id = self._next_id
            self._next_id += 1
        elif watch_id in self._watchers:
            refused = self._response(INVALID_WATCH_ID, revision, created=True, canceled=True)
            refused.cancel_reason = ERR_DUPLICATE_WATCH_ID
            self._sink.put_control(refused)
            return
        # Queued before the watcher exists, so it precedes every event of the watch.
        self._sink.put_control(self._response(watch_id, revision, created=True))
        filters = set(create.filters)
        watcher = self._hub.watch(
            watch_id,
            create.key or b"\x00",  # etcd: an empty key is the smallest key, "\0"
            store_range_end(create.range_end),
            create.start_revision,
            self._sink,
            no_put=_NOPUT in filters,
            no_delete=_NODELETE in filters,
            prev_kv=create.prev_kv,
        )
        watcher.attrs["fragment"] = create.fragment
        watcher.attrs["progress"] = create.progress_notify
        watcher.attrs["quiet"] = True  # no events sent since the last progress tick
        self._watchers[watch_id] = watcher

    def _refuse(self, error: EtcdError) -> None:
        """etcd's answer to a watch the caller may not make: created and canceled at once."""
        refused = self._response(INVALID_WATCH_ID, self._hub.revision, created=True, canceled=True)
        refused.cancel_reason = go_status_text(error)
        self._sink.put_control(refused)

    def _cancel(self, watch_id: int) -> None:
        watcher = self._watchers.pop(watch_id, None)
        if watcher is None:
            return  # etcd answers nothing for an unknown ID
        self._hub.cancel(watcher)
        self._sink.put_control(self._response(watch_id, self._hub.revision, canceled=True))

    async def _monitor_leader(self) -> None:
        interval = self._member.cluster.election_timeout_ms / 1000
        without = 0
        while without < NO_LEADER_TIMEOUTS:
            await asyncio.sleep(interval)
            without = without + 1 if self._member.leader == 0 else 0
        self._sink.put_control(_Failure(ErrNoLeader()))

    async def _progress_ticks(self) -> None:
        interval = self._progress_interval_s * (1 + random.random() / 10)
        while True:
            await asyncio.sleep(interval)
            for watcher in list(self._watchers.values()):
                if not watcher.attrs.get("progress"):
                    continue
                if watcher.attrs["quiet"] and self._hub.is_synced(watcher):
                    # Bounded like events: a client that does not read misses a notification.
                    self._sink.offer(WatchEvents(watcher, [], self._hub.revision))
                watcher.attrs["quiet"] = True

    # ---- responses ---------------------------------------------------------------------

    def _response(self, watch_id: int, revision: int, **fields: Any) -> pb.WatchResponse:
        response = pb.WatchResponse(watch_id=watch_id, **fields)
        header = response.header
        header.cluster_id = self._member.identity.cluster_id
        header.member_id = self._member.identity.member_id
        header.raft_term = self._member.term
        header.revision = revision
        return response

    def _render(self, item: WatchEvents) -> Iterator[pb.WatchResponse]:
        watcher = item.watcher
        if self._watchers.get(watcher.watch_id) is not watcher:
            return  # cancelled since the hub queued this
        compacted = item.compact_revision != 0
        response = self._response(
            watcher.watch_id,
            item.revision,
            events=item.events,
            compact_revision=item.compact_revision,
            canceled=compacted,
        )
        if item.events:
            watcher.attrs["quiet"] = False
        if watcher.attrs.get("fragment"):
            yield from fragments(response, self._limit)
        else:
            yield response


def coalesce(batch: list[object]) -> Iterator[object]:
    """Merge the queued event deliveries of each watcher into one, keeping every other item
    in its place.

    gRPC sends one message of a stream at a time and waits for each; when a stream falls
    behind (100 watchers on it, 100 revisions a second), sending every revision to every
    watcher separately only lets the queue grow. What is queued at once goes out as one
    response per watcher with all its events in revision order, the header at the newest
    revision: etcd does the same for watchers it had to put aside (its victims). A stream
    that keeps up never has two deliveries for one watcher queued, so nothing changes there.
    Control responses, compaction cancels and progress notifications are never merged and
    stay behind every delivery queued before them.
    """
    merged: dict[Watcher, WatchEvents] = {}
    sizes: dict[Watcher, int] = {}  # bytes of events held, once a second delivery arrives
    for item in batch:
        if isinstance(item, WatchEvents) and item.events and not item.compact_revision:
            held = merged.get(item.watcher)
            if held is not None:
                size = sizes.get(item.watcher)
                if size is None:
                    size = sum(e.ByteSize() for e in held.events)
                size += sum(e.ByteSize() for e in item.events)
                if size <= MAX_COALESCED_BYTES:
                    held.events.extend(item.events)
                    held.revision = item.revision
                    sizes[item.watcher] = size
                    continue
                yield merged.pop(item.watcher)  # full: it goes now, a new one starts
                sizes.pop(item.watcher, None)
            merged[item.watcher] = WatchEvents(item.watcher, list(item.events), item.revision)
            continue
        yield from merged.values()
        merged.clear()
        sizes.clear()
        yield item
    yield from merged.values()


def _field_size(event: Event) -> int:
    """Bytes `event` adds to a WatchResponse: tag, length varint, body."""
    size = event.ByteSize()
    length, rest = 1, size >> 7
    while rest:
        length, rest = length + 1, rest >> 7
    return 1 + length + size


def fragments(response: pb.WatchResponse, limit: int) -> Iterator[pb.WatchResponse]:
    """Split `response` into pieces smaller than `limit` bytes, as etcd does for `fragment`.

    Nothing is split when the whole is smaller than the limit or has a single event. Each
    piece takes as many of the remaining events as keep it under the limit (at least one, so
    an event larger than the limit travels alone); every piece but the last is flagged
    `fragment`, so the client knows to wait for the rest of the revision.
    """
    events = list(response.events)
    if len(events) < 2 or response.ByteSize() < limit:
        yield response
        return
    base = pb.WatchResponse()
    base.CopyFrom(response)
    base.ClearField("events")
    base.fragment = True
    base_size = base.ByteSize()
    i = 0
    while i < len(events):
        part = [events[i]]
        size = base_size + _field_size(events[i])
        i += 1
        while i < len(events):
            extra = _field_size(events[i])
            if size + extra >= limit:
                break
            part.append(events[i])
            size += extra
            i += 1
        piece = pb.WatchResponse()
        piece.CopyFrom(base)
        piece.events.extend(part)
        piece.fragment = i < len(events)
        yield piece
