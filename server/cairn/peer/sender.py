"""The sending half for one peer: a bounded queue drained by one long-lived gRPC stream.

Raft tolerates lost messages (it retransmits) but not a blocked leader, so ``send`` only ever
queues or drops. A single task owns the stream: it opens it (trying the peer's URLs in turn),
writes everything queued as one batch per write, and after a failure marks the peer down,
drops what was queued (stale heartbeats and appends are worse than none: Raft will send fresh
ones), tells the member the peer is unreachable, and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import grpc

from cairn.peer.credentials import ChannelCredentialsSource, current
from cairn.peer.handshake import LocalIdentity, format_id
from cairn.peer.metrics import PeerMetrics
from cairn.peer.options import TransportOptions
from cairn.peer.outbox import Outbox
from cairn.peer.ratelimit import RateLimitedLog
from cairn.peer.snapshot import SnapshotData, SnapshotSendError, write_snapshot
from cairn.peer.urls import PeerURL
from cairn.proto import peer_pb2, peer_pb2_grpc

log = logging.getLogger("cairn.peer")

STOP_TIMEOUT = 1.0
"""Seconds ``stop`` waits for a task to notice its call ended before cancelling it outright."""

FRAME_OVERHEAD_BYTES = 64
"""Room for a message's IDs and framing when checking a payload against the frame limit."""


class PeerState(enum.Enum):
    """Whether messages to a peer are queued (CONNECTING, ACTIVE) or dropped (DOWN)."""

    CONNECTING = "connecting"
    ACTIVE = "active"
    DOWN = "down"


class PeerUnavailable(Exception):
    """The peer has no working stream right now (raised by ``probe``)."""


class _StreamFailed(Exception):
    """Opening or using a stream failed; the message says why, for the log."""


def channel_options(options: TransportOptions) -> list[tuple[str, int]]:
    """gRPC channel arguments shared by every peer channel."""
    return [
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.keepalive_time_ms", int(options.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(options.keepalive_timeout * 1000)),
        ("grpc.http2.max_pings_without_data", 0),
        # The sender does its own retrying, and must see every failure to count and report it.
        ("grpc.enable_retries", 0),
        # Each channel gets its own connection, not one shared through gRPC's global pool: a
        # redial must really dial (not inherit a dead connection's backoff), and a snapshot
        # transfer must not queue behind, or hold up, the message stream.
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


class PeerSender:
    """Owns the queue, the stream and the prober for one remote member."""

    def __init__(
        self,
        peer_id: int,
        urls: list[PeerURL],
        *,
        identity: LocalIdentity,
        metrics: PeerMetrics,
        options: TransportOptions,
        on_unreachable: Callable[[int], None] | None = None,
        channel_credentials: ChannelCredentialsSource | None = None,
    ) -> None:
        if not urls:
            raise ValueError(f"peer {format_id(peer_id)} needs at least one URL")
        self.peer_id = peer_id
        self.state = PeerState.CONNECTING
        self._urls = list(urls)
        self._next_url = 0
        self._identity = identity
        self._metrics = metrics
        self._options = options
        self._on_unreachable = on_unreachable
        self._credentials = channel_credentials
        self._outbox = Outbox(options.queue_size)
        self._channel: grpc.aio.Channel | None = None
        self._active_url: PeerURL | None = None
        self._broken: str | None = None
        self._redial = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._snapshot_channels: set[grpc.aio.Channel] = set()
        self._limited = RateLimitedLog(log)
        self._max_payload = options.max_message_bytes - FRAME_OVERHEAD_BYTES

    @property
    def urls(self) -> list[PeerURL]:
        """The URLs tried, in order."""
        return list(self._urls)

    def start(self) -> None:
        """Start the sender (and prober) tasks on the running loop."""
        name = format_id(self.peer_id)
        self._tasks.append(asyncio.create_task(self._run(), name=f"cairn-peer-send-{name}"))
        if self._options.probe_interval is not None:
            self._tasks.append(
                asyncio.create_task(self._probe_loop(), name=f"cairn-peer-probe-{name}")
            )

    async def stop(self) -> None:
        """Close the channels, let the tasks see their calls end, forget anything queued.

        The gRPC calls are ended first and the tasks then return on their own, rather than
        being cancelled mid-await: a cancelled await leaves gRPC's operation pending, and its
        completion would later arrive at a loop that may be closed by then.
        """
        self._stopping.set()
        self._outbox.wake()
        await self._close_channel()
        for channel in list(self._snapshot_channels):
            await channel.close()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._close_channel()  # in case a dial opened one while stop was under way
        self._outbox.clear()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but return at once when the sender is stopping."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)

    def update_urls(self, urls: list[PeerURL]) -> None:
        """Use ``urls`` from now on; a stream on a URL no longer listed is reopened."""
        if not urls:
            raise ValueError(f"peer {format_id(self.peer_id)} needs at least one URL")
        self._urls = list(urls)
        self._next_url = 0
        if self.state is PeerState.ACTIVE and self._active_url not in self._urls:
            # Not a failure: keep what is queued and reconnect at once on the new URLs.
            self._redial = True
            self.state = PeerState.CONNECTING
            self._break("peer URLs changed")

    # -- the producer side: called by Transport.send on the loop; never blocks or raises ----

    def send(self, payload: bytes) -> None:
        """Queue ``payload``, or drop and count it when it cannot be delivered soon."""
        if len(payload) > self._max_payload:
            self._limited.log(
                ("too-large", self.peer_id),
                logging.WARNING,
                "dropped a %d-byte message to peer %s: larger than the %d-byte frame limit",
                len(payload),
                format_id(self.peer_id),
                self._max_payload,
            )
            self._drop(1)
        elif self.state is PeerState.DOWN:
            self._drop(1)
        elif not self._outbox.offer(payload):
            self._limited.log(
                ("queue-full", self.peer_id),
                logging.WARNING,
                "dropped messages to peer %s: its send queue (%d) is full",
                format_id(self.peer_id),
                self._options.queue_size,
            )
            self._drop(1)

    def _drop(self, count: int) -> None:
        self._metrics.record_drop(self.peer_id, count)
        self._report_unreachable()

    def _report_unreachable(self) -> None:
        if self._on_unreachable is None:
            return
        try:
            self._on_unreachable(self.peer_id)
        except Exception:
            log.exception("on_unreachable failed for peer %s", format_id(self.peer_id))

    # -- the stream task ---------------------------------------------------------------------

    async def _run(self) -> None:
        initial = self._options.reconnect_backoff_initial
        backoff = initial
        while not self._stopping.is_set():
            url = self._urls[self._next_url % len(self._urls)]
            try:
                call = await self._connect(url)
            except Exception as exc:  # every failure is retried; the reason goes to the log
                if self._stopping.is_set():
                    return
                self._next_url += 1
                self._mark_down(url, _describe(exc), refused=_is_refusal(exc))
                await self._pause(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self._options.reconnect_backoff_max)
                continue
            if url not in self._urls:  # update_urls ran while this attempt was dialling
                call.cancel()
                await self._close_channel()
                continue
            backoff = initial
            self._mark_active(url)
            pause = 0.0
            try:
                await self._pump(call)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                if self._redial:
                    log.info("peer %s: reconnecting on new URLs", format_id(self.peer_id))
                else:
                    self._mark_down(url, _describe(exc), refused=False)
                    # Short, so a restarted peer is back quickly; not zero, so a peer that
                    # accepts streams and then drops them cannot make this loop spin.
                    pause = initial * random.uniform(0.5, 1.0)
            finally:
                self._redial = False
                call.cancel()
                await self._close_channel()
            await self._pause(pause)

    def _open_channel(self, url: PeerURL) -> grpc.aio.Channel:
        options = channel_options(self._options)
        credentials = current(self._credentials)
        if credentials is not None:
            return grpc.aio.secure_channel(url.target, credentials, options=options)
        return grpc.aio.insecure_channel(url.target, options=options)

    async def _connect(self, url: PeerURL) -> Any:
        """Open a stream on ``url`` and wait for the peer to accept our hello."""
        await self._close_channel()
        self._channel = self._open_channel(url)
        call = peer_pb2_grpc.PeerStub(self._channel).Stream()
        try:
            async with asyncio.timeout(self._options.dial_timeout):
                await call.write(peer_pb2.StreamFrame(hello=self._identity.hello_to(self.peer_id)))
                reply = await call.read()
        except BaseException:
            call.cancel()
            raise
        if reply is grpc.aio.EOF:
            call.cancel()
            raise _StreamFailed(f"stream closed before acceptance ({await call.code()})")
        if reply.cluster_id != self._identity.cluster_id or reply.member_id != self.peer_id:
            call.cancel()
            raise _RefusedByUs(
                f"{url} answered as member {format_id(reply.member_id)} of cluster "
                f"{format_id(reply.cluster_id)}, expected member {format_id(self.peer_id)} "
                f"of cluster {format_id(self._identity.cluster_id)}"
            )
        return call

    async def _pump(self, call: Any) -> None:
        """Write batches until the stream breaks (raises) or the task is cancelled."""
        self._broken = None
        watcher = asyncio.create_task(self._watch(call))
        outbox = self._outbox
        me, peer = self._identity.member_id, self.peer_id
        max_batch = self._options.max_batch_bytes
        metrics = self._metrics
        try:
            while True:
                await outbox.wait()
                if self._stopping.is_set():
                    return
                if self._broken is not None:
                    raise _StreamFailed(self._broken)
                payloads = outbox.take_batch(max_batch)
                if not payloads:
                    continue
                batch = peer_pb2.PeerMessageBatch(
                    messages=[
                        peer_pb2.PeerMessage(from_id=me, to_id=peer, payload=p) for p in payloads
                    ]
                )
                # Counted when handed to gRPC, as etcd counts bytes written into its stream:
                # the write's completion can lag the peer's receipt, and stop() may cut it off.
                metrics.peer_sent_bytes_total[peer] += sum(len(p) for p in payloads)
                metrics.peer_sent_batches_total[peer] += 1
                try:
                    await call.write(peer_pb2.StreamFrame(batch=batch))
                except Exception:  # not CancelledError: a write cut short by stop() is no failure
                    metrics.peer_sent_failures_total[peer] += len(payloads)
                    raise
        finally:
            # Ending the call ends the watcher's read; waiting for that (instead of cancelling
            # the await) lets gRPC complete the read before this task moves on.
            call.cancel()
            _, pending = await asyncio.wait([watcher], timeout=STOP_TIMEOUT)
            if pending:
                watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self, call: Any) -> None:
        """Wait for the stream to end (the receiver sends nothing after accepting) and say so."""
        try:
            while await call.read() is not grpc.aio.EOF:
                pass
            reason = f"peer closed the stream ({await call.code()})"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = _describe(exc)
        self._break(reason)

    def _break(self, reason: str) -> None:
        self._broken = reason
        self._outbox.wake()

    def _mark_active(self, url: PeerURL) -> None:
        self._active_url = url
        self._limited.reset(("down", self.peer_id))
        if self.state is not PeerState.ACTIVE:
            log.info("peer %s became active at %s", format_id(self.peer_id), url)
        self.state = PeerState.ACTIVE

    def _mark_down(self, url: PeerURL, reason: str, *, refused: bool) -> None:
        was = self.state
        self.state = PeerState.DOWN
        if was is PeerState.ACTIVE:
            self._metrics.disconnected_peers_total[self.peer_id] += 1
        self._active_url = None
        dropped = self._outbox.clear()
        if dropped:
            self._metrics.record_drop(self.peer_id, dropped)
        if refused:
            self._limited.log(
                ("refused", self.peer_id),
                logging.ERROR,
                "peer %s at %s refused this member: %s",
                format_id(self.peer_id),
                url,
                reason,
            )
        elif was is not PeerState.DOWN:
            log.warning(
                "peer %s became inactive (%s at %s); dropping its messages until it is back",
                format_id(self.peer_id),
                reason,
                url,
            )
        if was is not PeerState.DOWN or dropped:
            self._report_unreachable()

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    # -- snapshots ---------------------------------------------------------------------------

    async def send_snapshot(self, message: bytes, data: SnapshotData, total_bytes: int) -> int:
        """Stream a snapshot on a connection of its own; returns the bytes the peer confirmed.

        Uses the URL of the working message stream if there is one. There is no retry on
        another URL: ``data`` can be read only once, and Raft asks for a fresh snapshot after
        a failure anyway.
        """
        url = self._active_url or self._urls[self._next_url % len(self._urls)]
        peer = self.peer_id
        metrics = self._metrics
        channel = self._open_channel(url)
        self._snapshot_channels.add(channel)
        started = time.monotonic()
        metrics.snapshot_send_inflights_total[peer] += 1
        try:
            call = peer_pb2_grpc.PeerStub(channel).SendSnapshot()
            try:
                await write_snapshot(
                    call,
                    self._identity.hello_to(peer),
                    message,
                    data,
                    total_bytes,
                    self._options.snapshot_chunk_bytes,
                )
                reply = await call
            except BaseException:
                call.cancel()
                raise
        except Exception as exc:
            metrics.snapshot_send_failures[peer] += 1
            log.warning(
                "snapshot to peer %s at %s failed: %s", format_id(peer), url, _describe(exc)
            )
            raise SnapshotSendError(
                f"snapshot to peer {format_id(peer)} failed: {_describe(exc)}"
            ) from exc
        finally:
            metrics.snapshot_send_inflights_total[peer] -= 1
            self._snapshot_channels.discard(channel)
            await channel.close()
        metrics.snapshot_send_success[peer] += 1
        metrics.snapshot_send_total_duration_seconds[peer].append(time.monotonic() - started)
        metrics.peer_sent_bytes_total[peer] += reply.received_bytes
        return int(reply.received_bytes)

    # -- round-trip probes -------------------------------------------------------------------

    async def probe(self) -> float:
        """Time one Probe call to the peer over the current stream's channel; record the RTT."""
        channel = self._channel
        if channel is None or self.state is not PeerState.ACTIVE:
            raise PeerUnavailable(f"peer {format_id(self.peer_id)} is not connected")
        request = peer_pb2.ProbeRequest(hello=self._identity.hello_to(self.peer_id))
        started = time.monotonic()
        await peer_pb2_grpc.PeerStub(channel).Probe(request, timeout=self._options.probe_timeout)
        elapsed = time.monotonic() - started
        self._metrics.record_rtt(self.peer_id, elapsed)
        return elapsed

    async def forward(self, payload: bytes, timeout: float) -> bytes:
        """Have the peer answer a forwarded request, over the current stream's channel (so
        peer TLS applies); raises PeerUnavailable while the peer is not connected or when the
        call fails (refused, timed out, or the peer serves no forwarded requests)."""
        channel = self._channel
        if channel is None or self.state is not PeerState.ACTIVE:
            raise PeerUnavailable(f"peer {format_id(self.peer_id)} is not connected")
        request = peer_pb2.ForwardRequest(
            hello=self._identity.hello_to(self.peer_id), payload=payload
        )
        try:
            reply = await peer_pb2_grpc.PeerStub(channel).Forward(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            # The caller decides what to do next (the member retries), whatever the failure.
            raise PeerUnavailable(f"peer {format_id(self.peer_id)}: {_describe(error)}") from None
        return bytes(reply.payload)

    async def _probe_loop(self) -> None:
        assert self._options.probe_interval is not None
        while not self._stopping.is_set():
            await self._pause(self._options.probe_interval)
            if self.state is not PeerState.ACTIVE or self._stopping.is_set():
                continue
            try:
                await self.probe()
            except Exception as exc:  # a failed probe is not a sample; the stream reports outages
                log.debug("probe of peer %s failed: %s", format_id(self.peer_id), _describe(exc))


class _RefusedByUs(_StreamFailed):
    """The peer answered, but as another member or cluster than the one we meant to reach."""


def _is_refusal(error: BaseException) -> bool:
    """Whether ``error`` is a configuration mismatch rather than a network failure."""
    if isinstance(error, _RefusedByUs):
        return True
    return (
        isinstance(error, grpc.aio.AioRpcError)
        and error.code() is grpc.StatusCode.FAILED_PRECONDITION
    )
