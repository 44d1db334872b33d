"""Counts of the client-facing gRPC traffic, named after the metrics etcd exports for it.

etcd's gRPC server is instrumented by go-grpc-prometheus (``grpc_server_*`` labelled by
grpc_type, grpc_service, grpc_method and, once handled, grpc_code) plus its own byte counters
(``etcd_network_client_grpc_{sent,received}_bytes_total``). The server keeps the numbers here,
on its event loop; ``cairn.observe`` exports them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

RpcLabels = tuple[str, str, str]
"""(grpc_type, grpc_service, grpc_method), as go-grpc-prometheus labels a method."""

_GO_SPELLING = {"CANCELLED": "Canceled", "OK": "OK"}


def code_label(code: grpc.StatusCode) -> str:
    """The status code as Go's codes.Code.String() spells it: ``InvalidArgument``, ``OK``."""
    name = code.name
    if name in _GO_SPELLING:
        return _GO_SPELLING[name]
    return "".join(part.capitalize() for part in name.split("_"))


def rpc_type(client_streaming: bool, server_streaming: bool) -> str:
    """go-grpc-prometheus' grpc_type label."""
    if client_streaming and server_streaming:
        return "bidi_stream"
    if client_streaming:
        return "client_stream"
    if server_streaming:
        return "server_stream"
    return "unary"


def _counts() -> defaultdict[RpcLabels, int]:
    return defaultdict(int)


@dataclass
class RpcStats:
    """Per-method call and message counts, and the bytes exchanged with clients."""

    started: defaultdict[RpcLabels, int] = field(default_factory=_counts)
    handled: defaultdict[tuple[str, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    msg_received: defaultdict[RpcLabels, int] = field(default_factory=_counts)
    msg_sent: defaultdict[RpcLabels, int] = field(default_factory=_counts)
    received_bytes: int = 0
    sent_bytes: int = 0
    observe_handling: Callable[[RpcLabels, float], None] | None = None
    """Set (by ``--metrics=extensive``) to time each call: grpc_server_handling_seconds."""
