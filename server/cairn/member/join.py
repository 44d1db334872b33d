"""Who a member started with --initial-cluster-state existing is: the cluster tells it.

`member add` gave the new member an ID that hashes the second of the add, so the member
cannot derive it; and once a founder was replaced, the cluster ID no longer follows from
--initial-cluster either. So, as etcd does, a joining member with an empty data dir asks the
peer URLs of the *other* members in its --initial-cluster for the member table, checks that
--initial-cluster describes exactly that table (same number of members, same peer URLs), and
takes its own ID and the cluster ID from it. A mismatch is refused with etcd's words, since an
operator who mistyped a flag (or never ran `member add`) searches for those.

The other side of the call, and the client that asks URLs in turn, live in `cairn.peer.lookup`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from cairn.member.identity import Identity
from cairn.peer import ClusterInfo, ClusterInfoUnavailable, MemberInfo, fetch_cluster_info
from cairn.peer.credentials import ChannelCredentialsSource
from cairn.peer.lookup import LOOKUP_TIMEOUT
from cairn.proto import rpc_pb2 as pb


class JoinError(Exception):
    """The member cannot join: nobody answered, or the answer does not match its flags."""


@dataclass(frozen=True)
class Joined:
    """What a joining member learned: who it is, and where the other members are."""

    identity: Identity
    peers: dict[int, list[str]]
    """Every other member's peer URLs by ID, to dial before the log says who is in the cluster."""


def remote_peer_urls(name: str, initial_cluster: dict[str, list[str]]) -> list[str]:
    """The peer URLs of every member but `name`, sorted: the ones a joining member asks."""
    return sorted(url for other, urls in initial_cluster.items() if other != name for url in urls)


def assign_ids(name: str, initial_cluster: dict[str, list[str]], info: ClusterInfo) -> Joined:
    """Match --initial-cluster against the cluster's table and take the IDs from the table.

    Both sides are paired in the order of their smallest peer URL, and each pair must list the
    same URLs, as etcd validates. Names play no part: a member added but not yet started has
    none in the table.
    """
    if name not in initial_cluster:
        raise JoinError(f"couldn't find local name {name!r} in the initial cluster configuration")
    if len(info.members) != len(initial_cluster):
        raise JoinError(f"error validating peerURLs {info}: member count is unequal")
    local = sorted(initial_cluster.items(), key=lambda item: sorted(item[1]))
    remote = sorted(info.members, key=lambda member: sorted(member.peer_urls))
    own = 0
    for (local_name, local_urls), member in zip(local, remote, strict=True):
        if sorted(local_urls) != sorted(member.peer_urls):
            raise JoinError(
                f"error validating peerURLs {info}: unmatched member while checking PeerURLs "
                f"({_listing(member.peer_urls)} != {_listing(local_urls)})"
            )
        if local_name == name:
            own = member.member_id
    peers = {m.member_id: list(m.peer_urls) for m in info.members if m.member_id != own}
    return Joined(Identity(name, own, info.cluster_id), peers)


#: How long a mismatching table is asked again: `member add` answers once the member it was
#: sent to applied the add, and the member asked here may apply it a moment later.
MISMATCH_RETRIES = 10
MISMATCH_PAUSE_S = 0.3


async def lookup(
    name: str,
    initial_cluster: dict[str, list[str]],
    timeout: float = LOOKUP_TIMEOUT,
    credentials: ChannelCredentialsSource | None = None,
) -> Joined:
    """Ask the other members for the table (first answer wins) and find this member in it.

    A table that does not match is asked for again for a few seconds before the mismatch is
    final: an operator starts the new member right after `member add`, and the first member
    asked may not have applied the add yet. With peer TLS, ``credentials`` are the member's
    peer credentials: the others' peer ports refuse anyone else.
    """
    urls = remote_peer_urls(name, initial_cluster)
    for attempt in range(MISMATCH_RETRIES + 1):
        try:
            info = await fetch_cluster_info(urls, timeout=timeout, channel_credentials=credentials)
        except ClusterInfoUnavailable as error:
            raise JoinError(f"cannot fetch cluster info from peer urls: {error}") from None
        try:
            return assign_ids(name, initial_cluster, info)
        except JoinError:
            if attempt == MISMATCH_RETRIES:
                raise
            await asyncio.sleep(MISMATCH_PAUSE_S)
    raise AssertionError("unreachable")


def cluster_info(cluster_id: int, members: Iterable[pb.Member]) -> ClusterInfo:
    """The answer a running member gives a joining one: its cluster ID and member table."""
    return ClusterInfo(
        cluster_id,
        tuple(MemberInfo(m.ID, m.name, tuple(m.peerURLs), m.isLearner) for m in members),
    )


def _listing(urls: Iterable[str]) -> str:
    return "[" + " ".join(sorted(urls)) + "]"
