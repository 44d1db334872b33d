"""Asking the cluster who is in it: the ``Members`` call of the peer protocol.

A member started with ``--initial-cluster-state existing`` was added with ``member add``, which
gave it an ID it cannot derive (the ID hashes the second of the add). So before it opens its
data dir it asks the peer URLs of the other members, in turn, for the cluster ID and the member
table, and takes its own entry from the first answer, as etcd does over its peer ``/members``
endpoint. The caller has no IDs yet, so the call carries no hello and is served without the
cluster-ID check the streams have.

The peer layer knows nothing about members: the member hands the transport a callback that
returns a :class:`ClusterInfo`, and the transport serves it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from cairn.peer.credentials import ChannelCredentialsSource, current
from cairn.peer.handshake import PROTOCOL_VERSION, format_id
from cairn.peer.sender import PeerUnavailable
from cairn.peer.urls import PeerURLError, parse_peer_url
from cairn.proto import peer_pb2, peer_pb2_grpc

log = logging.getLogger("cairn.peer")

LOOKUP_TIMEOUT = 1.0
"""Seconds one peer URL gets to answer before the next is asked (etcd allows a second too)."""

NO_CLUSTER_INFO = "could not retrieve cluster information from the given URLs"
"""etcd's text when no peer answered; the member prefixes its own, as etcd's server does."""


@dataclass(frozen=True)
class MemberInfo:
    """One row of the member table as the peer protocol carries it."""

    member_id: int
    name: str
    peer_urls: tuple[str, ...]
    is_learner: bool = False


@dataclass(frozen=True)
class ClusterInfo:
    """What a member answers to ``Members``: the cluster ID and every member it knows."""

    cluster_id: int
    members: tuple[MemberInfo, ...]

    def to_proto(self) -> peer_pb2.MembersResponse:
        return peer_pb2.MembersResponse(
            cluster_id=self.cluster_id,
            members=[
                peer_pb2.ClusterMember(
                    id=m.member_id, name=m.name, peer_urls=m.peer_urls, is_learner=m.is_learner
                )
                for m in self.members
            ],
        )

    @classmethod
    def from_proto(cls, response: peer_pb2.MembersResponse) -> ClusterInfo:
        return cls(
            response.cluster_id,
            tuple(
                MemberInfo(m.id, m.name, tuple(m.peer_urls), m.is_learner) for m in response.members
            ),
        )

    def __str__(self) -> str:
        # Shown in the joining member's refusal, next to what it was told on the command line.
        rows = ", ".join(
            f"{format_id(m.member_id)}{' (learner)' if m.is_learner else ''}="
            f"{','.join(m.peer_urls)}"
            for m in self.members
        )
        return f"{{cluster {format_id(self.cluster_id)}: {rows}}}"


ClusterInfoSource = Callable[[], ClusterInfo]
"""The member's callback behind ``Members``: called on the loop, must not block."""


class ClusterInfoUnavailable(PeerUnavailable):
    """No peer URL answered ``Members`` with a usable table; ``failures`` says why, per URL."""

    def __init__(self, failures: dict[str, str]) -> None:
        super().__init__(NO_CLUSTER_INFO)
        self.failures = failures


async def fetch_cluster_info(
    urls: Sequence[str],
    *,
    timeout: float = LOOKUP_TIMEOUT,
    channel_credentials: ChannelCredentialsSource | None = None,
) -> ClusterInfo:
    """Ask ``urls`` in order and return the first table a peer answers with.

    A URL that cannot be dialled, times out, refuses the call or answers with an empty table
    is logged and skipped, as etcd skips a peer whose ``/members`` fails. Raises
    :class:`ClusterInfoUnavailable` when none answers.
    """
    failures: dict[str, str] = {}
    for url in urls:
        try:
            info = await _ask(url, timeout, channel_credentials)
        except (grpc.aio.AioRpcError, PeerURLError, ValueError) as error:
            reason = _describe(error)
        else:
            if info.members and info.cluster_id:
                return info
            reason = "answered with an empty member table"
        failures[url] = reason
        log.warning("could not get cluster response from %s: %s", url, reason)
    raise ClusterInfoUnavailable(failures)


async def _ask(url: str, timeout: float, source: ChannelCredentialsSource | None) -> ClusterInfo:
    credentials = current(source)
    target = parse_peer_url(url)
    if target.secure != (credentials is not None):
        raise PeerURLError(
            f"peer URL {url}: "
            + ("https needs peer TLS credentials" if target.secure else "plaintext URL under TLS")
        )
    if credentials is not None:
        channel = grpc.aio.secure_channel(target.target, credentials)
    else:
        channel = grpc.aio.insecure_channel(target.target)
    async with channel:
        stub: Any = peer_pb2_grpc.PeerStub(channel)
        response = await stub.Members(
            peer_pb2.MembersRequest(protocol_version=PROTOCOL_VERSION), timeout=timeout
        )
    return ClusterInfo.from_proto(response)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return str(error)
