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
from collections.abc import Iterable
from typing import Protocol

from cairn.errors import ErrStopped, EtcdError
from cairn.member.applier import Applied
from cairn.member.identity import member_id as derive_member_id
from cairn.mvcc.backend import MEMBERS, Backend
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest, MemberAttributesRequest

log = logging.getLogger("cairn.member")

PUBLISH_RETRY_S = 0.5


def _key(member_id: int) -> bytes:
    return MEMBERS + member_id.to_bytes(8, "big")


class Membership:
    """The member table of one member, kept in memory and in LevelDB."""

    def __init__(self, store: MVCCStore, members: dict[int, pb.Member]) -> None:
        self._store = store
        self._members = members

    @classmethod
    def open(
        cls, store: MVCCStore, initial_cluster: dict[str, list[str]], token: str
    ) -> Membership:
        """Load the table; a data dir without one starts from the founding members.

        Seeding writes straight to LevelDB rather than through Raft because every founding
        member derives the identical table from --initial-cluster; on a restart the stored
        table wins, as etcd ignores --initial-cluster once a member has data.
        """
        backend: Backend = store.backend
        members = {
            int.from_bytes(raw_id, "big"): pb.Member.FromString(record)
            for raw_id, record in backend.scan(MEMBERS)
        }
        if not members:
            founders = [
                pb.Member(ID=derive_member_id(urls, token), name=name, peerURLs=sorted(urls))
                for name, urls in initial_cluster.items()
            ]
            members = {m.ID: m for m in founders}
            backend.write_batch({_key(m.ID): m.SerializeToString() for m in members.values()})
        return cls(store, members)

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
