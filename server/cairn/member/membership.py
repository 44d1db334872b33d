"""The member table: who is in the cluster, and how to reach each member.

Two halves of a member's record arrive by different roads, as in etcd:

- Raft attributes (ID, peer URLs, learner or voter) are known before anyone starts: founding
  members come from --initial-cluster, and every member derives the same IDs from it.
- Attributes (name, client URLs) are what a running member *publishes* through Raft once a
  leader exists (`publish_until_applied`). Until that entry is applied, the member has no
  client URLs, so `etcdctl --cluster` skips it. A founding member's name is known from
  --initial-cluster, and etcd 3.4 lists it before it ever starts (checked against etcd
  3.4.23: a never-started founder shows its name and empty client URLs); a member added later
  has an empty name until it publishes, which etcdctl shows as "unstarted".

The table lives in LevelDB under the MEMBERS prefix, one `etcdserverpb.Member` per member ID.
A publish entry is staged into the store's next flush, so it lands in the same WriteBatch as
the applied index that covers it: a crash either keeps both or replays the entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from cairn.errors import ErrStopped, EtcdError
from cairn.member.applier import Applied
from cairn.member.identity import member_id as derive_member_id
from cairn.mvcc.backend import MEMBERS, Backend
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest, MemberAttributesRequest
from cairn.raft import ConfChange, ConfChangeType

log = logging.getLogger("cairn.member")

PUBLISH_RETRY_S = 0.5


def _key(member_id: int) -> bytes:
    return MEMBERS + member_id.to_bytes(8, "big")


class Membership:
    """The member table of one member, kept in memory and in LevelDB."""

    def __init__(self, store: MVCCStore, members: dict[int, pb.Member]) -> None:
        self._store = store
        self._members = members
        # Peer URLs by ID from --initial-cluster: a joining member applies the founders'
        # bootstrap conf changes, which carry no context, and takes their URLs from here.
        self._known_urls: dict[int, list[str]] = {}
        self._removed: set[int] = set()

    @classmethod
    def open(
        cls,
        store: MVCCStore,
        initial_cluster: dict[str, list[str]],
        token: str,
        seed: bool = True,
    ) -> Membership:
        """Load the table; a data dir without one starts from the founding members.

        Seeding writes straight to LevelDB rather than through Raft because every founding
        member derives the identical table from --initial-cluster; on a restart the stored
        table wins, as etcd ignores --initial-cluster once a member has data. A member joining
        an existing cluster (`seed=False`) starts empty and learns the table from the log.
        """
        backend: Backend = store.backend
        records = {
            int.from_bytes(raw_id, "big"): record for raw_id, record in backend.scan(MEMBERS)
        }
        members = {mid: pb.Member.FromString(rec) for mid, rec in records.items() if rec}
        removed = {mid for mid, rec in records.items() if not rec}
        if not members and seed:
            members = {m.ID: m for m in founders(initial_cluster, token)}
            backend.write_batch(table_records(members.values()))
        table = cls(store, members)
        table._removed = removed
        table._known_urls = {
            derive_member_id(urls, token): sorted(urls) for urls in initial_cluster.values()
        }
        return table

    def members(self) -> list[pb.Member]:
        """Every member, ordered by ID (etcd's member list order)."""
        return [self._members[member_id] for member_id in sorted(self._members)]

    def get(self, member_id: int) -> pb.Member | None:
        return self._members.get(member_id)

    def apply_attributes(self, request: MemberAttributesRequest) -> Applied:
        """Record a member's published name and client URLs (idempotent, so replay is safe).

        A publish from a member that is no longer in the table (removed meanwhile) is ignored,
        as etcd ignores it: it must not bring the member back.
        """
        member = self._members.get(request.member_ID)
        if member is None:
            log.warning("ignoring attributes published by unknown member %x", request.member_ID)
            return Applied(response=None)
        member.name = request.name
        del member.clientURLs[:]
        member.clientURLs.extend(request.client_urls)
        self._store.stage_raw(_key(member.ID), member.SerializeToString())
        return Applied(response=None)

    # ---- membership changes (applied from committed CONF_CHANGE entries) ---------------

    def apply_conf_change(self, change: ConfChange) -> ConfOutcome:
        """Update the table for a committed conf change; identical on every member.

        Raft's core knows three change types; the table tells them apart, which is enough
        because every member holds the same table at the same log index:
        ADD_LEARNER/ADD_VOTER of an unknown ID adds it, ADD_VOTER of a learner promotes it,
        the same type as the member already has is a peer-URL update (etcd's
        ConfChangeUpdateNode, which this core does not have), REMOVE removes. The context is
        the `etcdserverpb.Member` the change is about (empty for bootstrap entries).
        """
        incoming = pb.Member.FromString(change.context) if change.context else None
        current = self._members.get(change.node_id)
        if change.type is ConfChangeType.REMOVE:
            if current is None:
                return ConfOutcome("noop", change.node_id, [])
            del self._members[change.node_id]
            # An empty record is the tombstone (the store's staging has no delete): it keeps the
            # removal in the applied batch and remembers the ID, which must never come back.
            self._store.stage_raw(_key(change.node_id), b"")
            self._removed.add(change.node_id)
            return ConfOutcome("removed", change.node_id, list(current.peerURLs))
        learner = change.type is ConfChangeType.ADD_LEARNER
        if current is None:
            urls = list(incoming.peerURLs) if incoming else self._known_urls.get(change.node_id, [])
            member = pb.Member(ID=change.node_id, peerURLs=sorted(urls), isLearner=learner)
            if incoming is not None and incoming.name:
                member.name = incoming.name
            self._members[change.node_id] = member
            self._save(member)
            return ConfOutcome("added", change.node_id, list(member.peerURLs))
        if current.isLearner and not learner:
            current.isLearner = False
            self._save(current)
            return ConfOutcome("promoted", change.node_id, list(current.peerURLs))
        if incoming is not None and list(incoming.peerURLs) != list(current.peerURLs):
            del current.peerURLs[:]
            current.peerURLs.extend(incoming.peerURLs)
            self._save(current)
            return ConfOutcome("updated", change.node_id, list(current.peerURLs))
        return ConfOutcome("noop", change.node_id, list(current.peerURLs))

    def was_removed(self, member_id: int) -> bool:
        """Whether `member_id` was removed from this cluster (etcd never lets it back)."""
        return member_id in self._removed

    def _save(self, member: pb.Member) -> None:
        self._store.stage_raw(_key(member.ID), member.SerializeToString())

    def peer_url_owner(self, urls: Iterable[str], ignore: int = 0) -> int | None:
        """The member (other than `ignore`) already using one of `urls`, if any."""
        wanted = set(urls)
        for owner, member in self._members.items():
            if owner != ignore and wanted & set(member.peerURLs):
                return owner
        return None


def founders(initial_cluster: dict[str, list[str]], token: str) -> list[pb.Member]:
    """The table every founding member derives from --initial-cluster and the token (and a
    restore, from its own --initial-cluster: a restored cluster is a new one)."""
    return [
        pb.Member(ID=derive_member_id(urls, token), name=name, peerURLs=sorted(urls))
        for name, urls in initial_cluster.items()
    ]


def table_records(members: Iterable[pb.Member]) -> dict[bytes, bytes]:
    """The LevelDB records that hold `members` as the member table."""
    return {_key(m.ID): m.SerializeToString() for m in members}


@dataclass(frozen=True)
class ConfOutcome:
    """What applying a conf change did to the table, so the member can tell the transport."""

    kind: str  # "added" | "removed" | "promoted" | "updated" | "noop"
    member_id: int
    peer_urls: list[str]


def added_member_id(peer_urls: Iterable[str], clock: Callable[[], float] = time.time) -> int:
    """The ID of a member added at run time: its sorted peer URLs and the Unix second of the add.

    As etcd's `member add` derives it: the founders' formula with an empty cluster token and
    the decimal Unix seconds appended (checked against etcd 3.4.23, whose MemberAdd passes no
    token). The time is what keeps a re-added peer URL from bringing a removed ID back, which
    peers refuse forever. The new member cannot derive this ID itself; it asks a peer for the
    member table when it starts with --initial-cluster-state existing (`member.join`).
    `clock` is for tests.
    """
    return derive_member_id(sorted(peer_urls), "", int(clock()))


class Proposer(Protocol):
    """What publishing needs from a member (RaftMember satisfies it)."""

    leader: int

    async def propose(self, request: InternalRequest) -> Applied: ...


async def publish_until_applied(
    member: Proposer,
    member_id: int,
    name: str,
    client_urls: Iterable[str],
    retry_s: float = PUBLISH_RETRY_S,
) -> None:
    """Propose this member's attributes until they are applied, as etcd does after start-up.

    Every start publishes again (the client URLs may have changed since the last run); errors
    while there is no leader or the proposal times out are expected and only retried. The
    loop ends when the entry is applied, or when the member stops.
    """
    attributes = MemberAttributesRequest(member_ID=member_id, name=name, client_urls=client_urls)
    while True:
        if member.leader == 0:
            await asyncio.sleep(retry_s)
            continue
        try:
            await member.propose(InternalRequest(member_attributes=attributes))
        except ErrStopped:
            return
        except EtcdError as error:
            log.debug("publishing the attributes of %x failed (%s); retrying", member_id, error)
            await asyncio.sleep(retry_s)
            continue
        log.info(
            "published member %x attributes: name %s, client URLs %s",
            member_id,
            name,
            ",".join(attributes.client_urls),
        )
        return
