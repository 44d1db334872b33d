"""The peer transport a member uses: one gRPC server for inbound streams, one sender per peer.

It moves opaque payloads between members and knows nothing about Raft, so the member decides
what a message is and the transport can be tested, tuned and secured on its own. Everything
runs on one asyncio loop; ``send`` and the peer-set methods must be called from that loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import grpc

from cairn.peer.credentials import ChannelCredentialsSource
from cairn.peer.faults import PeerFaults
from cairn.peer.handshake import LocalIdentity, format_id
from cairn.peer.lookup import ClusterInfoSource
from cairn.peer.metrics import PeerMetrics
from cairn.peer.options import TransportOptions
from cairn.peer.ratelimit import RateLimitedLog
from cairn.peer.receiver import ForwardHandler, MessageHandler, PeerService
from cairn.peer.sender import PeerSender, PeerState, PeerUnavailable
from cairn.peer.server import PeerServer
from cairn.peer.snapshot import SnapshotData, SnapshotHandler, SnapshotSendError
from cairn.peer.urls import PeerURL, PeerURLError, parse_peer_url

log = logging.getLogger("cairn.peer")


class Transport:
    """Sends payloads to peers by member ID and delivers theirs to ``on_message``.

    ``on_message(from_id, payload)`` is called on the loop, in arrival order per sender.
    ``on_unreachable(peer_id)`` is called when a message to a known peer is dropped or its
    stream fails, so the member can tell Raft (``report_unreachable``) to stop pipelining to it.
    Credentials are optional: without them peers talk plaintext over ``http://`` URLs; with them
    (mutual TLS against the peer CA) only ``https://`` URLs are accepted; channel credentials
    may be a callable, asked at every dial, so a rotated peer certificate is used from the next
    connection on. ``on_snapshot``
    takes snapshots other members stream here (see :mod:`cairn.peer.snapshot`); without it
    they are refused. ``on_forward`` answers requests other members forward here (see
    :meth:`forward`); without it they are refused. ``cluster_info`` answers a joining
    member's ``Members`` call (see :mod:`cairn.peer.lookup`); without it that call is refused. ``faults`` is for cluster
    tests only (see :mod:`cairn.peer.faults`).
    """

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        on_message: MessageHandler,
        *,
        on_unreachable: Callable[[int], None] | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
        channel_credentials: ChannelCredentialsSource | None = None,
        options: TransportOptions | None = None,
        faults: PeerFaults | None = None,
        on_snapshot: SnapshotHandler | None = None,
        cluster_info: ClusterInfoSource | None = None,
        on_forward: ForwardHandler | None = None,
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self.metrics = PeerMetrics()
        self.options = options or TransportOptions()
        self._identity = LocalIdentity(member_id, cluster_id)
        self._on_unreachable = on_unreachable
        self._channel_credentials = channel_credentials
        self.faults = faults
        """Test-only partitions; None (the default) in production."""
        self._server = PeerServer(
            PeerService(
                self._identity,
                on_message,
                self.metrics,
                faults,
                on_snapshot,
                cluster_info,
                on_forward,
            ),
            self.options,
            server_credentials,
        )
        self._peers: dict[int, PeerSender] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._limited = RateLimitedLog(log)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, listen_urls: Sequence[str]) -> None:
        """Serve the peer protocol on ``listen_urls`` (``--listen-peer-urls``); port 0 = any."""
        await self._server.start([parse_peer_url(url) for url in listen_urls])

    @property
    def listen_urls(self) -> list[str]:
        """The URLs actually bound (ports resolved), for tests and logs."""
        return [str(url) for url in self._server.bound_urls]

    async def stop(self) -> None:
        """Stop every sender and the server; in-flight messages are abandoned (Raft resends)."""
        senders = list(self._peers.values())
        self._peers.clear()
        await asyncio.gather(*(sender.stop() for sender in senders), *self._retiring)
        await self._server.stop()

    # -- the peer set --------------------------------------------------------------------------

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """Start sending to ``peer_id`` at ``urls`` (its advertised peer URLs)."""
        if peer_id in self._peers:
            raise ValueError(f"peer {format_id(peer_id)} was already added")
        if peer_id == self.member_id:
            raise ValueError(f"peer {format_id(peer_id)} is this member")
        sender = PeerSender(
            peer_id,
            self._parse(peer_id, urls),
            identity=self._identity,
            metrics=self.metrics,
            options=self.options,
            on_unreachable=self._on_unreachable,
            channel_credentials=self._channel_credentials,
        )
        self._peers[peer_id] = sender
        sender.start()

    def update_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """Switch ``peer_id`` to new URLs (``member update``)."""
        self._sender(peer_id).update_urls(self._parse(peer_id, urls))

    def remove_peer(self, peer_id: int) -> None:
        """Stop sending to ``peer_id`` now; its stream is closed in the background.

        Messages sent to it afterwards are dropped like those to any unknown peer.
        """
        sender = self._sender(peer_id)
        del self._peers[peer_id]
        # Closing a channel awaits gRPC; the caller (applying a conf change) must not wait.
        task = asyncio.create_task(sender.stop(), name=f"cairn-peer-remove-{format_id(peer_id)}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def peer_state(self, peer_id: int) -> PeerState | None:
        """Whether messages to ``peer_id`` are currently queued or dropped; None if unknown."""
        sender = self._peers.get(peer_id)
        return None if sender is None else sender.state

    @property
    def peer_ids(self) -> list[int]:
        """The peers currently sent to."""
        return sorted(self._peers)

    # -- sending -------------------------------------------------------------------------------

    def send(self, to: int, payload: bytes) -> None:
        """Queue ``payload`` for ``to``; never blocks, never raises. Undeliverable = dropped."""
        if self.faults is not None and self.faults.drops_outbound(to):
            return
        sender = self._peers.get(to)
        if sender is not None:
            sender.send(payload)
            return
        self.metrics.record_drop(to)
        self._limited.log(
            ("unknown", to),
            logging.WARNING,
            "dropped a message to unknown peer %s",
            format_id(to),
        )

    async def send_snapshot(
        self, to: int, message: bytes, data: SnapshotData, total_bytes: int
    ) -> int:
        """Stream a snapshot (``message`` plus ``total_bytes`` of ``data``) to ``to``.

        Returns once the peer's ``on_snapshot`` has taken it, with the byte count it confirmed;
        raises :class:`SnapshotSendError` otherwise, so the member can report the outcome to
        Raft either way. Heartbeats and appends keep flowing on the message stream meanwhile.
        """
        if self.faults is not None and to in self.faults.blocked:
            raise SnapshotSendError(
                f"snapshot to peer {format_id(to)}: partitioned (fault injection)"
            )
        sender = self._peers.get(to)
        if sender is None:
            self.metrics.snapshot_send_failures[to] += 1
            raise SnapshotSendError(f"snapshot to unknown peer {format_id(to)}")
        return await sender.send_snapshot(message, data, total_bytes)

    async def forward(self, peer_id: int, payload: bytes, timeout: float) -> bytes:
        """Have ``peer_id`` answer a request (its member's ``on_forward``); raises
        PeerUnavailable when it is unknown, not connected, partitioned away, or the call
        fails."""
        if self.faults is not None and peer_id in self.faults.blocked:
            raise PeerUnavailable(f"peer {format_id(peer_id)}: partitioned (fault injection)")
        sender = self._peers.get(peer_id)
        if sender is None:
            raise PeerUnavailable(f"peer {format_id(peer_id)} is unknown")
        return await sender.forward(payload, timeout)

    async def probe(self, peer_id: int) -> float:
        """Measure one round trip to ``peer_id`` now (seconds); also recorded in the metrics."""
        sender = self._peers.get(peer_id)
        if sender is None:
            raise PeerUnavailable(f"peer {format_id(peer_id)} is unknown")
        return await sender.probe()

    def _sender(self, peer_id: int) -> PeerSender:
        try:
            return self._peers[peer_id]
        except KeyError:
            raise KeyError(f"unknown peer {format_id(peer_id)}") from None

    def _parse(self, peer_id: int, urls: Sequence[str]) -> list[PeerURL]:
        if not urls:
            raise PeerURLError(f"peer {format_id(peer_id)} needs at least one URL")
        parsed = [parse_peer_url(url) for url in urls]
        want_tls = self._channel_credentials is not None
        for url in parsed:
            if url.secure != want_tls:
                raise PeerURLError(
                    f"peer {format_id(peer_id)} URL {url}: "
                    + (
                        "plaintext URL but peer TLS is configured"
                        if want_tls
                        else "https URL but no peer TLS credentials are configured"
                    )
                )
        return parsed
