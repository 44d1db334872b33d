"""Channel credentials that may change while the member runs (peer certificate rotation).

gRPC's channel credentials are fixed once made, so a member whose peer certificate is rotated
needs fresh ones for every connection it opens afterwards. The transport therefore accepts
either credentials or a callable that returns the current ones, asked at each dial.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

ChannelCredentialsSource = grpc.ChannelCredentials | Callable[[], grpc.ChannelCredentials]
"""Fixed credentials, or a callable asked before each new connection."""


def current(source: ChannelCredentialsSource | None) -> grpc.ChannelCredentials | None:
    """The credentials to dial with now (None: plaintext)."""
    if source is None or isinstance(source, grpc.ChannelCredentials):
        return source
    return source()
