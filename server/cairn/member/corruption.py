"""Corruption checks: compare this member's HashKV with its peers', as etcd 3.4 does.

Two checks, both off by default (etcd's experimental flags):

- `--experimental-initial-corrupt-check`: before a member serves clients, it hashes its
  history at its current revision and asks every peer for the hash at that revision. A peer
  that answers a different hash with the same compact revision means this member's data
  differs from the cluster's, and the member refuses to start ("<id> found data
  inconsistency with peers"), so it never serves data the others do not have.
- `--experimental-corrupt-check-time`: every interval the leader hashes at its current
  revision, asks every member for the hash at that revision, waits until it has applied
  everything committed (a linearizable barrier), hashes again, and judges with etcd's rules
  (`judge`). The member judged corrupt gets a CORRUPT alarm, proposed through Raft so every
  member refuses writes from then on (`cairn.member.applier`) until it is disarmed.

Peers answer over the peer transport's `Forward` call (etcd uses its peer HTTP endpoint
/members/hashkv for the same reason: peer TLS, no client credentials). A peer that is behind
(the revision is in its future), has compacted past it, or cannot be reached is skipped:
only hashes of the same revision under the same compaction are compared, so revisions that
move while the check runs cannot make a healthy cluster look corrupt.

Hashing reads the whole history, in chunks that let the member go on serving between them
(cairn.member.hashing; etcd's blocks its backend while it runs), so it still costs a read of
every record: the interval should be hours in production (etcd recommends a couple).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cairn.errors import ErrCompacted, ErrFutureRev, EtcdError
from cairn.member import hashing
from cairn.mvcc.store import MVCCStore
from cairn.peer import PeerUnavailable, Transport
from cairn.peer.sender import PeerState
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import Forwarded, ForwardedAnswer, InternalRequest

if TYPE_CHECKING:
    from cairn.member.raft_member import RaftMember

log = logging.getLogger("cairn.member")

CONNECT_POLL_S = 0.05


class DataInconsistency(Exception):
    """The initial check found this member's data different from a peer's."""


@dataclass(frozen=True)
class LocalHash:
    """This member's hash of its history at its current revision."""

    hash: int
    revision: int
    compact_revision: int


@dataclass(frozen=True)
class PeerHash:
    """One peer's answer: its HashKV response, or why there is none."""

    member_id: int
    response: pb.HashKVResponse | None = None
    error: str = ""


async def local_hash(current_store: Callable[[], MVCCStore]) -> LocalHash:
    """Hash at the current revision as it was when the hash (or its last restart) began."""
    hashed = await hashing.hash_kv(current_store, 0)
    return LocalHash(hashed.hash, hashed.revision, hashed.compact_revision)


async def answer_hash_kv(
    current_store: Callable[[], MVCCStore], request: pb.HashKVRequest, header: pb.ResponseHeader
) -> ForwardedAnswer:
    """A member's answer to a peer asking for its hash (ErrCompacted / ErrFutureRev raise).

    `header` is filled by the caller before the hash; its revision is this member's current
    one, which the leader's check compares with its own.
    """
    hashed = await hashing.hash_kv(current_store, request.revision)
    response = pb.HashKVResponse(hash=hashed.hash, compact_revision=hashed.compact_revision)
    response.header.CopyFrom(header)
    return ForwardedAnswer(hash_kv=response)


async def _ask(
    transport: Transport, peer: int, revision: int, timeout: float, connect: bool
) -> PeerHash:
    """One peer's hash at `revision`; with `connect`, first wait up to `timeout` for the
    peer's connection (a member that just started has none yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while connect and transport.peer_state(peer) is not PeerState.ACTIVE:
        if loop.time() >= deadline:
            break
        await asyncio.sleep(CONNECT_POLL_S)
    request = Forwarded(hash_kv=pb.HashKVRequest(revision=revision))
    try:
        raw = await transport.forward(peer, request.SerializeToString(), timeout)
    except PeerUnavailable as error:
        return PeerHash(peer, error=str(error))
    answer = ForwardedAnswer.FromString(raw)
    if answer.WhichOneof("answer") != "hash_kv":
        return PeerHash(peer, error=answer.error.message or "no hash in the answer")
    return PeerHash(peer, response=answer.hash_kv)


async def peer_hashes(
    transport: Transport, revision: int, timeout: float, *, connect: bool = False
) -> list[PeerHash]:
    """Every peer's hash at `revision`, asked concurrently."""
    asked = (_ask(transport, p, revision, timeout, connect) for p in transport.peer_ids)
    return list(await asyncio.gather(*asked))


def _skipped_reason(peer: PeerHash) -> str:
    if peer.error == ErrFutureRev.text:
        return "the peer is behind (the revision is in its future)"
    if peer.error == ErrCompacted.text:
        return "the peer compacted past the revision (this member is behind)"
    return f"the peer cannot be asked ({peer.error})"


async def initial_check(member: RaftMember) -> None:
    """--experimental-initial-corrupt-check: raise DataInconsistency on a mismatch.

    Run after the member started (Raft and the peer transport up) and before the client
    port serves anything.
    """
    own = member.identity.member_id
    timeout = member.cluster.request_timeout_s
    log.info("%x: starting the initial corruption check (timeout %.1fs)", own, timeout)
    mine = await local_hash(lambda: member.store)
    mismatches = 0
    for peer in await peer_hashes(member.transport, mine.revision, timeout, connect=True):
        response = peer.response
        if response is None:
            log.warning(
                "%x: cannot check the hash of peer %x at revision %d: %s",
                own,
                peer.member_id,
                mine.revision,
                _skipped_reason(peer),
            )
        elif response.hash == mine.hash:
            continue
        elif response.compact_revision == mine.compact_revision:
            log.error(
                "%x: found a different hash from peer %x at revision %d: local %d, peer %d "
                "(compact revision %d)",
                own,
                peer.member_id,
                mine.revision,
                mine.hash,
                response.hash,
                mine.compact_revision,
            )
            mismatches += 1
        else:
            log.warning(
                "%x: peer %x has another compact revision (%d, local %d): hashes not compared",
                own,
                peer.member_id,
                response.compact_revision,
                mine.compact_revision,
            )
    if mismatches:
        raise DataInconsistency(f"{own:x} found data inconsistency with peers")
    log.info("%x: initial corruption check passed; no corruption", own)


def judge(leader: int, first: LocalHash, second: LocalHash, peers: list[PeerHash]) -> int | None:
    """Which member the leader's periodic check finds corrupt, if any (one per check).

    `first` is the leader's hash when it asked, `second` after the barrier. etcd 3.4's rules:
    the leader itself when its own hash changed at the same revision and compact revision;
    a peer whose current revision or compact revision is ahead of the leader's after the
    barrier (impossible for a member applying the same log); a peer whose hash differs at
    the leader's revision under the same compact revision.

    etcd 3.4 names the first differing peer even when the leader is the odd one out (it
    compares everyone with the leader only). cairn names the leader when every peer judged
    differs by hash, they all agree with each other, and they alone are a majority of the
    cluster (leader included in the count): the leader's data is then the minority's.
    """
    if second.hash != first.hash and (second.revision, second.compact_revision) == (
        first.revision,
        first.compact_revision,
    ):
        return leader
    culprits: list[int] = []
    differing: list[PeerHash] = []
    for peer in peers:
        response = peer.response
        if response is None:
            continue
        ahead = response.header.revision > second.revision
        if ahead or response.compact_revision > second.compact_revision:
            culprits.append(peer.member_id)
        elif response.compact_revision == first.compact_revision and response.hash != first.hash:
            culprits.append(peer.member_id)
            differing.append(peer)
    if not culprits:
        return None
    majority = (len(peers) + 1) // 2 + 1
    agreed = {p.response.hash for p in differing if p.response is not None}
    if len(differing) == len(culprits) and len(agreed) == 1 and len(differing) >= majority:
        return leader
    return culprits[0]


async def periodic_check_once(member: RaftMember) -> int | None:
    """One check on the leader; raises the CORRUPT alarm for the member judged corrupt."""
    first = await local_hash(lambda: member.store)
    timeout = member.cluster.request_timeout_s
    peers = await peer_hashes(member.transport, first.revision, timeout)
    await member.linearizable_barrier()
    second = await local_hash(lambda: member.store)
    culprit = judge(member.identity.member_id, first, second, peers)
    compared = sum(1 for p in peers if p.response is not None)
    if culprit is None:
        log.info(
            "corruption check at revision %d: %d of %d peers compared, hashes agree",
            first.revision,
            compared,
            len(peers),
        )
        return None
    log.error(
        "corruption check at revision %d: member %x differs; raising the CORRUPT alarm (peers: %s)",
        first.revision,
        culprit,
        ", ".join(
            f"{p.member_id:x}="
            + (f"{p.response.hash}@{p.response.compact_revision}" if p.response else p.error)
            for p in peers
        )
        + f"; leader {first.hash}@{first.compact_revision}",
    )
    if (culprit, pb.CORRUPT) not in member.applier.alarms.active:
        alarm = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=culprit, alarm=pb.CORRUPT)
        await member.propose(InternalRequest(alarm=alarm))
    return culprit


async def run_periodic(member: RaftMember, interval_s: float) -> None:
    """--experimental-corrupt-check-time: check every interval while this member leads."""
    log.info("enabled corruption checking every %.1fs", interval_s)
    while True:
        await asyncio.sleep(interval_s)
        if not member.is_leader:
            continue
        try:
            await periodic_check_once(member)
        except (EtcdError, PeerUnavailable) as error:
            log.warning("corruption check failed: %s", error)
        except Exception:  # one failed check must not end the checking
            log.exception("corruption check failed")
