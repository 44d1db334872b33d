"""The server side of the peer protocol: accepts streams from peers and delivers their messages.

Every call is checked against this member's identity before anything is delivered. Per sender,
only the most recent stream delivers: a sender opens a new stream only after giving up on the
old one, and letting a half-dead old stream deliver late frames would reorder that sender's
messages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from cairn.peer.faults import PeerFaults
from cairn.peer.handshake import PROTOCOL_VERSION, LocalIdentity, format_id
from cairn.peer.lookup import ClusterInfoSource
from cairn.peer.metrics import PeerMetrics
from cairn.peer.ratelimit import RateLimitedLog
from cairn.peer.snapshot import IncomingSnapshot, SnapshotHandler, SnapshotTruncated
from cairn.proto import peer_pb2, peer_pb2_grpc

log = logging.getLogger("cairn.peer")

MessageHandler = Callable[[int, bytes], None]
"""``on_message(from_id, payload)``: called on the event loop, in arrival order per sender."""

SNAPSHOT_UNIMPLEMENTED = "cairn: this member does not take snapshots over the peer transport"
MEMBERS_UNIMPLEMENTED = "cairn: this member does not serve its member table to peers"
FORWARD_UNIMPLEMENTED = "cairn: this member does not answer forwarded requests"

ForwardHandler = Callable[[int, bytes], Awaitable[bytes]]
"""``on_forward(from_id, payload)``: the member's answer to a request another member forwarded."""


def _tracked(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Record the task running each call, so stop can wait until gRPC has finished them."""

    @functools.wraps(handler)
    async def run(self: PeerService, *args: Any) -> Any:
        task = asyncio.current_task()
        if task is not None and task not in self.running:
            # Until the task is done, not just the handler: gRPC still sends the status after.
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return await handler(self, *args)

    return run


class PeerService(peer_pb2_grpc.PeerServicer):
    """Implements cairnpb.Peer for one transport."""

    def __init__(
        self,
        identity: LocalIdentity,
        on_message: MessageHandler,
        metrics: PeerMetrics,
        faults: PeerFaults | None = None,
        on_snapshot: SnapshotHandler | None = None,
        cluster_info: ClusterInfoSource | None = None,
        on_forward: ForwardHandler | None = None,
    ) -> None:
        self._identity = identity
        self._cluster_info = cluster_info
        self._on_forward = on_forward
        self._faults = faults
        self._on_snapshot = on_snapshot
        self._on_message = on_message
        self._metrics = metrics
        self._current: dict[int, object] = {}
        self._limited = RateLimitedLog(log)
        self.running: set[asyncio.Task[Any]] = set()
        """Tasks of the calls being served (gRPC's own tasks, which run each handler)."""

    async def _refuse_if_invalid(
        self, hello: peer_pb2.PeerHello, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        reason = self._identity.refusal(hello)
        if reason is None:
            return
        self._metrics.peer_received_failures_total[hello.from_id] += 1
        self._limited.log(
            ("refused", hello.from_id, hello.cluster_id, hello.to_id),
            logging.ERROR,
            "refused peer %s from %s: %s",
            format_id(hello.from_id),
            context.peer(),
            reason,
        )
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, reason)

    async def _refuse_unless_reachable(
        self, hello: peer_pb2.PeerHello, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """A valid hello from a peer the test-only faults have not cut off."""
        await self._refuse_if_invalid(hello, context)
        if self._faults is not None and hello.from_id in self._faults.blocked:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "cairn: partitioned (fault injection)")

    @_tracked
    async def Stream(
        self,
        request_iterator: AsyncIterator[peer_pb2.StreamFrame],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        """Handshake, acknowledge, then deliver every batch until the sender closes."""
        first = await anext(request_iterator, None)
        if first is None:
            return
        if first.WhichOneof("frame") != "hello":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "cairn: a peer stream must start with a hello"
            )
        hello = first.hello
        await self._refuse_if_invalid(hello, context)
        sender = hello.from_id
        token = object()
        self._current[sender] = token
        self._limited.reset(("refused", sender, hello.cluster_id, hello.to_id))
        log.debug("accepted stream from peer %s (%s)", format_id(sender), context.peer())
        await context.write(
            peer_pb2.StreamAccepted(
                cluster_id=self._identity.cluster_id, member_id=self._identity.member_id
            )
        )
        try:
            async for frame in request_iterator:
                if self._current.get(sender) is not token:
                    log.debug("stream from peer %s superseded by a newer one", format_id(sender))
                    return
                if frame.WhichOneof("frame") != "batch":
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "cairn: hello sent twice on one stream"
                    )
                if self._faults is not None and self._faults.drops_inbound(
                    sender, len(frame.batch.messages)
                ):
                    continue
                self._deliver(sender, frame.batch)
        finally:
            if self._current.get(sender) is token:
                del self._current[sender]

    def _deliver(self, sender: int, batch: peer_pb2.PeerMessageBatch) -> None:
        received = self._metrics.peer_received_bytes_total
        me = self._identity.member_id
        for message in batch.messages:
            if message.from_id != sender or message.to_id != me:
                # Cannot happen with cairn's sender; dropping such messages keeps a buggy peer
                # from delivering messages in another member's name.
                self._metrics.peer_received_failures_total[sender] += 1
                self._limited.log(
                    ("misaddressed", sender),
                    logging.WARNING,
                    "ignored message on peer %s's stream from %s to %s",
                    format_id(sender),
                    format_id(message.from_id),
                    format_id(message.to_id),
                )
                continue
            received[sender] += len(message.payload)
            try:
                self._on_message(sender, message.payload)
            except Exception:
                # The member's bug must not cut the stream: later messages would be lost too.
                log.exception("on_message failed for a message from peer %s", format_id(sender))

    @_tracked
    async def Probe(
        self, request: peer_pb2.ProbeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> peer_pb2.ProbeResponse:
        """Answer at once: the caller times the round trip."""
        await self._refuse_unless_reachable(request.hello, context)
        return peer_pb2.ProbeResponse(
            cluster_id=self._identity.cluster_id, member_id=self._identity.member_id
        )

    @_tracked
    async def Members(
        self, request: peer_pb2.MembersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> peer_pb2.MembersResponse:
        """The cluster ID and member table, for a joining member that knows neither yet.

        No hello and no cluster-ID check: the caller has no IDs to send. The protocol version
        is still checked, so an incompatible member fails here rather than later on a stream.
        """
        if request.protocol_version != PROTOCOL_VERSION:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cairn: the caller speaks peer protocol version {request.protocol_version}, "
                f"member {format_id(self._identity.member_id)} speaks {PROTOCOL_VERSION}",
            )
        if self._cluster_info is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, MEMBERS_UNIMPLEMENTED)
        assert self._cluster_info is not None
        log.debug("answered a member table request from %s", context.peer())
        return self._cluster_info().to_proto()

    @_tracked
    async def Forward(
        self, request: peer_pb2.ForwardRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> peer_pb2.ForwardResponse:
        """Check the hello, then let the member answer the payload."""
        await self._refuse_unless_reachable(request.hello, context)
        if self._on_forward is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, FORWARD_UNIMPLEMENTED)
        assert self._on_forward is not None
        answer = await self._on_forward(request.hello.from_id, request.payload)
        return peer_pb2.ForwardResponse(payload=answer)

    @_tracked
    async def SendSnapshot(
        self,
        request_iterator: AsyncIterator[peer_pb2.SnapshotChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> peer_pb2.SnapshotReceived:
        """Check the hello, let the member read and persist the data, confirm when it has."""
        if self._on_snapshot is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, SNAPSHOT_UNIMPLEMENTED)
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("hello"):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "cairn: a snapshot transfer must start with a hello",
            )
        assert first is not None and self._on_snapshot is not None
        await self._refuse_unless_reachable(first.hello, context)
        sender = first.hello.from_id
        metrics = self._metrics
        incoming = IncomingSnapshot(first, request_iterator)
        started = time.monotonic()
        metrics.snapshot_receive_inflights_total[sender] += 1
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            await self._on_snapshot(sender, first.message, incoming)
            if not incoming.complete:
                raise RuntimeError("on_snapshot returned before reading all snapshot data")
        except SnapshotTruncated as exc:
            failure = (grpc.StatusCode.DATA_LOSS, f"cairn: {exc}")
        except Exception as exc:
            log.exception("snapshot from peer %s was not taken", format_id(sender))
            failure = (grpc.StatusCode.INTERNAL, f"cairn: snapshot not taken: {exc}")
        finally:
            metrics.snapshot_receive_inflights_total[sender] -= 1
        metrics.peer_received_bytes_total[sender] += incoming.received
        if failure is not None:
            metrics.snapshot_receive_failures[sender] += 1
            log.warning("snapshot from peer %s failed: %s", format_id(sender), failure[1])
            await context.abort(*failure)
        metrics.snapshot_receive_success[sender] += 1
        metrics.snapshot_receive_total_duration_seconds[sender].append(time.monotonic() - started)
        log.info("took a %d-byte snapshot from peer %s", incoming.received, format_id(sender))
        return peer_pb2.SnapshotReceived(received_bytes=incoming.received)
