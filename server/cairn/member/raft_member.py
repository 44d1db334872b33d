"""A member of a Raft cluster: the Raft core decides the order, this class does the I/O.

It drives `cairn.raft.RawNode` exactly as the core's README prescribes for every Ready:
persist entries and hard state to the WAL (one fdatasync per Ready, in the WAL thread), only
then send the messages through the peer transport, then apply the committed entries to the
MVCC store and wake the requests waiting for them, then serve the reads whose ReadIndex has
been applied, then advance. Ticks come from a timer at --heartbeat-interval; an election takes
--election-timeout / --heartbeat-interval ticks.

It offers the same interface as the one-voter `Member` (propose, range, readonly_txn,
fill_header, ...), so the API layer does not care which one it talks to.

Membership changes (`change_membership`) are Raft conf changes: applying one updates the
member table (same LevelDB batch as the applied index) and the peer transport on every
member, and a member that applies its own removal stops. `move_leader` drives Raft's
leadership transfer. A member started with --initial-cluster-state existing bootstraps no
voters and learns the configuration from the leader's log.

Not built yet: Raft snapshots and WAL release (this member keeps its whole log, which is also
how a new member catches up), snapshot transfer to a lagging follower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

from cairn.errors import (
    ErrNoLeader,
    ErrRequestTooLarge,
    ErrStopped,
    ErrTimeout,
    ErrTimeoutLeaderTransfer,
    EtcdError,
)
from cairn.member.applier import Applied, Applier
from cairn.member.config import MemberConfig
from cairn.member.identity import Identity, cluster_id, member_id
from cairn.member.membership import ConfOutcome, Membership, publish_until_applied
from cairn.member.raft_codec import CodecError, decode_message, encode_message
from cairn.member.request_ids import RequestIDs
from cairn.member.wal_writer import WALWriter
from cairn.mvcc.backend import Backend
from cairn.mvcc.revision import Revision
from cairn.mvcc.store import MVCCStore
from cairn.peer import Transport
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest
from cairn.raft import (
    ConfChange,
    Config,
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    ProposalDropped,
    RawNode,
    Ready,
    Role,
)
from cairn.wal import WAL
from cairn.wal import Entry as WALEntry
from cairn.wal import HardState as WALHardState

log = logging.getLogger("cairn.member")


class RaftMemberError(Exception):
    """The member cannot start (bad data dir, configuration it cannot serve)."""


@dataclass
class ClusterSettings:
    """What a member of a multi-member cluster needs beyond MemberConfig."""

    listen_peer_urls: list[str]
    heartbeat_interval_ms: int = 100
    election_timeout_ms: int = 1000
    request_timeout_s: float = 7.0  # etcd: 5 s plus two election timeouts
    pre_vote: bool = True
    check_quorum: bool = True
    seed: int | None = None
    peer_urls: dict[int, list[str]] = field(default_factory=dict)


def _to_wal(entry: Entry) -> WALEntry:
    return WALEntry(
        index=entry.index,
        term=entry.term,
        data=entry.data,
        kind=1 if entry.kind is EntryKind.CONF_CHANGE else 0,
    )


def _from_wal(entry: WALEntry) -> Entry:
    kind = EntryKind.CONF_CHANGE if entry.kind == 1 else EntryKind.NORMAL
    return Entry(index=entry.index, term=entry.term, data=entry.data, kind=kind)


class RaftMember:
    """One member of a Raft-replicated cairn cluster."""

    def __init__(self, config: MemberConfig, cluster: ClusterSettings) -> None:
        self.config = config
        self.cluster = cluster
        self.identity: Identity
        self.backend: Backend
        self.store: MVCCStore
        self.applier: Applier
        self.node: RawNode
        self.transport: Transport
        self._storage = MemoryStorage()
        self._wal: WAL
        self._wal_writer: WALWriter | None = None
        self._request_ids: RequestIDs
        self._waiters: dict[int, asyncio.Future[Applied]] = {}
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Conf changes proposed here, by their encoded entry data, until applied.
        self._conf_waiters: dict[bytes, asyncio.Future[None]] = {}
        self.removed = False
        self._next_read = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self._compacted: set[int] = set()
        self.term = 0
        self.leader = 0

    # ---- life cycle ------------------------------------------------------------------

    @property
    def peers(self) -> dict[int, list[str]]:
        """Every member's peer URLs, by member ID, from --initial-cluster."""
        token = self.config.initial_cluster_token
        return {member_id(urls, token): urls for urls in self.config.initial_cluster.values()}

    def open(self) -> None:
        cfg = self.config
        self.backend = Backend(cfg.db_dir)
        self.store = MVCCStore(self.backend)
        self.applier = Applier(self.store)
        # --initial-cluster-state existing: this member was added with `member add` and joins
        # a running cluster; the table and the configuration come from the leader's log.
        joining = cfg.initial_cluster_state == "existing"
        self.membership = Membership.open(
            self.store, cfg.initial_cluster, cfg.initial_cluster_token, seed=not joining
        )
        voters: tuple[int, ...] = ()
        if WAL.exists(cfg.wal_dir):
            self._wal, replay = WAL.open(cfg.wal_dir, segment_bytes=cfg.wal_segment_bytes)
            self.identity = Identity.from_bytes(replay.metadata)
            if replay.snapshot is not None:
                raise RaftMemberError(
                    f"{cfg.wal_dir} holds a snapshot marker; this member cannot restore from "
                    "snapshots yet"
                )
            self._storage.append([_from_wal(e) for e in replay.entries])
            if replay.hard_state is not None:
                hs = replay.hard_state
                self._storage.set_hard_state(HardState(hs.term, hs.vote, hs.commit))
            log.info(
                "restarting member %s (%x): %d log entries, applied index %d",
                self.identity.name,
                self.identity.member_id,
                len(replay.entries),
                self.store.applied_index,
            )
        else:
            if cfg.name not in cfg.initial_cluster:
                raise RaftMemberError(
                    f"couldn't find local name {cfg.name!r} in the initial cluster configuration"
                )
            if joining:
                self.identity = self._joining_identity()
            else:
                self.identity = Identity.bootstrap(
                    cfg.name, cfg.initial_cluster, cfg.initial_cluster_token
                )
            self._wal = WAL.create(
                cfg.wal_dir, self.identity.to_bytes(), segment_bytes=cfg.wal_segment_bytes
            )
            # A joining member bootstraps no voters: Raft must learn the configuration from
            # the leader, or it would campaign in a cluster of its own making.
            voters = () if joining else tuple(sorted(self.peers))
            log.info(
                "starting a new member %s (%x) of cluster %x with %d voters",
                cfg.name,
                self.identity.member_id,
                self.identity.cluster_id,
                len(voters),
            )
        heartbeat = max(1, self.cluster.heartbeat_interval_ms)
        self.node = RawNode(
            Config(
                id=self.identity.member_id,
                storage=self._storage,
                rng=random.Random(self.cluster.seed),
                voters=voters,
                election_tick=max(2, self.cluster.election_timeout_ms // heartbeat),
                heartbeat_tick=1,
                pre_vote=self.cluster.pre_vote,
                check_quorum=self.cluster.check_quorum,
                applied=self.store.applied_index,
            )
        )
        self._request_ids = RequestIDs(self.identity.member_id)

    def _joining_identity(self) -> Identity:
        """Who a member started with --initial-cluster-state existing is.

        Its ID is derived from its own peer URLs as `member add` derived it (see
        `membership.added_member_id`). The cluster ID is derived from the other members in
        --initial-cluster, which is right while they are the founders; after a founder was
        replaced the peer handshake refuses the mismatch loudly (etcd fetches both IDs from a
        peer's /members endpoint, which cairn's peer protocol does not have yet).
        """
        cfg = self.config
        token = cfg.initial_cluster_token
        own = member_id(cfg.initial_cluster[cfg.name], token)
        others = [member_id(u, token) for n, u in cfg.initial_cluster.items() if n != cfg.name]
        return Identity(cfg.name, own, cluster_id(others))

    async def start(self) -> None:
        """Listen for peers, connect to them, and start ticking and the Ready loop."""
        loop = asyncio.get_running_loop()
        self._wal_writer = WALWriter(self._wal, loop)
        self.transport = Transport(
            self.identity.member_id,
            self.identity.cluster_id,
            self._on_peer_message,
            on_unreachable=self._on_unreachable,
        )
        await self.transport.start(self.cluster.listen_peer_urls)
        # The stored table is the truth once there is one (members added or removed since
        # bootstrap); --initial-cluster only for a first start with an empty table.
        known = {m.ID: list(m.peerURLs) for m in self.membership.members() if m.peerURLs}
        for peer_id, urls in (self.cluster.peer_urls or known or self.peers).items():
            if peer_id != self.identity.member_id:
                self.transport.add_peer(peer_id, urls)
        self._tasks = [
            loop.create_task(self._run(), name="cairn-raft-ready"),
            loop.create_task(self._tick(), name="cairn-raft-tick"),
        ]
        self._tasks[0].add_done_callback(self._on_loop_done)
        self._wake.set()

    def publish(self, client_urls: list[str]) -> None:
        """Announce name and client URLs through Raft until applied; stop() ends the retries."""
        publishing = publish_until_applied(
            self, self.identity.member_id, self.identity.name, client_urls
        )
        self._tasks.append(asyncio.get_running_loop().create_task(publishing, name="publish"))

    def _on_loop_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.failure = error
            log.critical("the Raft loop failed; the member stops: %r", error, exc_info=error)
            self._stopping = True
            self._fail_all(ErrStopped())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # A failed loop was already logged by _on_loop_done.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_all(ErrStopped())
        await self.transport.stop()
        if self._wal_writer is not None:
            self._wal_writer.close()
        self._wal.close()
        self.backend.close()
        log.info("member %x stopped", self.identity.member_id)

    def _fail_all(self, error: EtcdError) -> None:
        for futures in (self._waiters, self._reads):
            for future in futures.values():
                if not future.done():
                    future.set_exception(error)
            futures.clear()
        for _, future in self._applied_waiters:
            if not future.done():
                future.set_exception(error)
        self._applied_waiters.clear()
        for conf in self._conf_waiters.values():
            if not conf.done():
                conf.set_exception(error)
        self._conf_waiters.clear()

    # ---- inputs ----------------------------------------------------------------------

    async def _tick(self) -> None:
        interval = self.cluster.heartbeat_interval_ms / 1000
        while not self._stopping:
            await asyncio.sleep(interval)
            self.node.tick()
            self._wake.set()

    def _on_peer_message(self, from_id: int, payload: bytes) -> None:
        try:
            message = decode_message(payload)
        except CodecError as error:
            log.warning("dropping an undecodable message from %x: %s", from_id, error)
            return
        try:
            self.node.step(message)
        except Exception as error:  # a bad message must not take the member down
            log.warning("dropping message %s from %x: %s", message.type, from_id, error)
            return
        self._wake.set()

    def _on_unreachable(self, peer_id: int) -> None:
        self.node.report_unreachable(peer_id)

    # ---- the Ready loop --------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while self.node.has_ready() and not self._stopping:
                await self._handle(self.node.ready())

    async def _handle(self, rd: Ready) -> None:
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            raise RaftMemberError("installing a Raft snapshot is not built yet")
        if rd.soft_state is not None:
            if rd.soft_state.lead != self.leader:
                log.info(
                    "member %x: leader is now %x (role %s)",
                    self.identity.member_id,
                    rd.soft_state.lead,
                    rd.soft_state.role.value,
                )
            self.leader = rd.soft_state.lead
        if rd.entries or rd.hard_state is not None:
            hard = rd.hard_state
            wal_hard = WALHardState(hard.term, hard.vote, hard.commit) if hard else None
            assert self._wal_writer is not None
            await self._wal_writer.save([_to_wal(e) for e in rd.entries], wal_hard)
            if rd.entries:
                self._storage.append(rd.entries)
            if hard is not None:
                self._storage.set_hard_state(hard)
                self.term = hard.term
        for message in rd.messages:
            self.transport.send(message.to, encode_message(message))
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        for read in rd.read_states:
            future = self._reads.pop(read.ctx, None)
            if future is not None and not future.done():
                future.set_result(read.index)
        self.node.advance(rd)

    def _apply(self, entries: list[Entry]) -> None:
        outcomes: list[tuple[int, Applied | EtcdError]] = []
        for entry in entries:
            if entry.kind is EntryKind.CONF_CHANGE:
                change = ConfChange.decode(entry.data)
                outcome = self.membership.apply_conf_change(change)
                self.node.apply_conf_change(change)
                self._follow_conf_change(outcome)
                waiter = self._conf_waiters.pop(entry.data, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                continue
            if not entry.data:
                continue  # a new leader's empty entry
            request = InternalRequest.FromString(entry.data)
            try:
                outcome: Applied | EtcdError = self._apply_request(request)
            except EtcdError as error:
                outcome = error
            outcomes.append((request.header.ID, outcome))
        last = entries[-1].index
        self.store.flush(last)
        for request_id, outcome in outcomes:
            future = self._waiters.pop(request_id, None)
            if future is None or future.done():
                continue
            if isinstance(outcome, EtcdError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        still_waiting = []
        for index, future in self._applied_waiters:
            if index <= last:
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((index, future))
        self._applied_waiters = still_waiting

    def _follow_conf_change(self, outcome: ConfOutcome) -> None:
        """Make the transport match the member table after a committed change."""
        peer_id = outcome.member_id
        if peer_id == self.identity.member_id:
            if outcome.kind == "removed":
                # etcd: "the member has been permanently removed from the cluster"; it stops.
                log.warning("member %x was removed from the cluster; stopping", peer_id)
                self.removed = True
                self.failure = RaftMemberError(
                    "the member has been permanently removed from the cluster"
                )
                self._stopping = True
            return
        known = peer_id in self.transport.peer_ids
        if outcome.kind == "removed":
            if known:
                self.transport.remove_peer(peer_id)
        elif outcome.kind == "updated" and known:
            self.transport.update_peer(peer_id, outcome.peer_urls)
        elif outcome.kind != "noop" and not known and outcome.peer_urls:
            # A new member; or, on a joining member, a founder it already knows from
            # --initial-cluster (then `known`, and its stream is left alone).
            self.transport.add_peer(peer_id, outcome.peer_urls)

    async def change_membership(self, change: ConfChange) -> None:
        """Propose a conf change and wait until this member has applied it."""
        if self._stopping:
            raise ErrStopped()
        data = change.encode()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._conf_waiters[data] = future
        try:
            self.node.propose_conf_change(change)
        except ProposalDropped:
            del self._conf_waiters[data]
            raise ErrNoLeader() if self.leader == 0 else ErrTimeout() from None
        self._wake.set()
        try:
            await asyncio.wait_for(future, self.cluster.request_timeout_s)
        except TimeoutError:
            self._conf_waiters.pop(data, None)
            raise ErrTimeout() from None

    async def move_leader(self, target: int) -> None:
        """Hand leadership to `target` and wait until this member sees it lead.

        The caller checked that this member leads and `target` is a voter. Raft gives up a
        transfer after an election timeout; the wait is the request timeout, as in etcd.
        """
        if self.leader == target:
            return
        self.node.transfer_leadership(target)
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + self.cluster.request_timeout_s
        while self.leader != target:
            if self._stopping:
                raise ErrStopped()
            if asyncio.get_running_loop().time() > deadline:
                raise ErrTimeoutLeaderTransfer()
            await asyncio.sleep(self.cluster.heartbeat_interval_ms / 1000)

    def _apply_request(self, request: InternalRequest) -> Applied:
        kind = request.WhichOneof("request")
        if kind == "put":
            return self.applier.put(request.put)
        if kind == "delete_range":
            return self.applier.delete_range(request.delete_range)
        if kind == "txn":
            return self.applier.txn(request.txn)
        if kind == "compaction":
            applied = self.applier.compaction(request.compaction)
            if applied.compaction is not None:
                rev, obsolete = applied.compaction
                # Deleted right after this group's flush; see Member for the chunked version.
                asyncio.get_running_loop().call_soon(self._delete_compacted, rev, obsolete)
            return applied
        if kind == "member_attributes":
            return self.membership.apply_attributes(request.member_attributes)
        raise ValueError(f"unknown request kind {kind!r} in request {request.header.ID:x}")

    def _delete_compacted(self, rev: int, obsolete: list[Revision]) -> None:
        self.store.delete_history(obsolete)
        self.store.finish_compaction(rev)
        self._compacted.add(rev)

    async def wait_compaction(self, rev: int) -> None:
        """Physical compaction: wait until the dropped history is deleted on this member."""
        while rev not in self._compacted and not self._stopping:
            await asyncio.sleep(0.001)

    # ---- requests --------------------------------------------------------------------

    async def propose(self, request: InternalRequest) -> Applied:
        """Replicate a write through Raft; resolves when this member has applied it."""
        if self._stopping:
            raise ErrStopped()
        request.header.ID = self._request_ids.next()
        data = request.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise ErrRequestTooLarge()
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._waiters[request.header.ID] = future
        try:
            self.node.propose(data)
        except ProposalDropped:
            del self._waiters[request.header.ID]
            raise ErrNoLeader() from None
        self._wake.set()
        try:
            return await asyncio.wait_for(future, self.cluster.request_timeout_s)
        except TimeoutError:
            self._waiters.pop(request.header.ID, None)
            raise ErrTimeout() from None

    async def linearizable_barrier(self) -> None:
        """ReadIndex: wait until this member has applied everything committed when we asked."""
        self._next_read += 1
        ctx = self._next_read.to_bytes(8, "big")
        read: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reads[ctx] = read
        self.node.read_index(ctx)
        self._wake.set()
        try:
            index = await asyncio.wait_for(read, self.cluster.request_timeout_s)
        except TimeoutError:
            self._reads.pop(ctx, None)
            raise ErrTimeout() from None
        if self.store.applied_index < index:
            applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._applied_waiters.append((index, applied))
            await asyncio.wait_for(applied, self.cluster.request_timeout_s)

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        if not request.serializable:
            await self.linearizable_barrier()
        return self.applier.range(request)

    async def readonly_txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        await self.linearizable_barrier()
        return self.applier.readonly_txn(request)

    # ---- what responses carry --------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.node.status().role is Role.LEADER

    def fill_header(self, header: pb.ResponseHeader) -> None:
        header.cluster_id = self.identity.cluster_id
        header.member_id = self.identity.member_id
        header.raft_term = self.term
        if header.revision == 0:
            header.revision = self.store.current_rev
