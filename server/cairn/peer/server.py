"""The gRPC server behind ``--listen-peer-urls``.

Kept apart from the receiving logic so that securing it (mutual TLS against the peer CA) is a
matter of passing server credentials here, and the refusal of an ``https`` URL without them (or
the reverse) happens in one place.
"""

from __future__ import annotations

import asyncio

import grpc

from cairn.peer.options import TransportOptions
from cairn.peer.receiver import PeerService
from cairn.peer.sender import STOP_TIMEOUT
from cairn.peer.urls import PeerURL, PeerURLError
from cairn.proto import peer_pb2_grpc


def server_options(options: TransportOptions) -> list[tuple[str, int]]:
    """gRPC server arguments: frame limits, and tolerance of the senders' keepalive pings."""
    keepalive_ms = int(options.keepalive_time * 1000)
    return [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        # Senders ping idle connections every keepalive_time; the default server policy would
        # answer pings that frequent with GOAWAY ("too_many_pings") and cut the stream.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", keepalive_ms // 2),
        ("grpc.keepalive_permit_without_calls", 1),
        # Under heavy one-way traffic gRPC's own flow-control (BDP) pings also count as strikes
        # against a stream whose receiver never sends data back, and the default policy then
        # cuts a healthy peer off ("too_many_pings"). Peers are members of this cluster (and
        # authenticated once peer TLS is on), so ping-abuse enforcement only does harm here.
        ("grpc.http2.max_ping_strikes", 0),
        # Two members must never share a port by accident (a restarted member racing its old
        # process); gRPC enables SO_REUSEPORT by default.
        ("grpc.so_reuseport", 0),
    ]


class PeerServer:
    """Binds the listen URLs and serves one PeerService on all of them."""

    def __init__(
        self,
        service: PeerService,
        options: TransportOptions,
        credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self._service = service
        self._options = options
        self._credentials = credentials
        self._server: grpc.aio.Server | None = None
        self.bound_urls: list[PeerURL] = []

    async def start(self, urls: list[PeerURL]) -> None:
        """Bind every URL and start serving; raises if any cannot be bound."""
        if self._server is not None:
            raise RuntimeError("peer server already started")
        if not urls:
            raise PeerURLError("no peer listen URLs given")
        server = grpc.aio.server(options=server_options(self._options))
        peer_pb2_grpc.add_PeerServicer_to_server(self._service, server)
        bound = []
        for url in urls:
            if url.secure != (self._credentials is not None):
                raise PeerURLError(
                    f"listen URL {url}: "
                    + (
                        "https needs peer TLS server credentials"
                        if url.secure
                        else "plaintext URL but peer TLS is configured"
                    )
                )
            if self._credentials is not None:
                port = server.add_secure_port(url.target, self._credentials)
            else:
                port = server.add_insecure_port(url.target)
            bound.append(url.with_port(port))
        await server.start()
        self._server = server
        self.bound_urls = bound

    async def stop(self) -> None:
        """Stop at once: open streams are cancelled, senders will reconnect elsewhere or later."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)
            await server.wait_for_termination()
            # stop() returns before the cancelled calls' tasks have run to their end; waiting
            # for them keeps their last gRPC operations from completing on a closed loop.
            running = set(self._service.running)
            if running:
                await asyncio.wait(running, timeout=STOP_TIMEOUT)
