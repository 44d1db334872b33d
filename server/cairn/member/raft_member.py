"""A member of a Raft cluster: the Raft core decides the order, this class does the I/O.

It drives `cairn.raft.RawNode` exactly as the core's README prescribes for every Ready:
persist entries and hard state to the WAL (one fdatasync per Ready, in the WAL thread), only
then send the messages through the peer transport, then apply the committed entries to the
MVCC store and wake the requests waiting for them, then serve the reads whose ReadIndex has
been applied, then advance. Ticks come from a timer at --heartbeat-interval; an election takes
--election-timeout / --heartbeat-interval ticks.

A one-member cluster runs on the same code: its only voter campaigns as soon as it starts
(etcd fast-forwards its election ticks for the same reason), every Ready's entries are
committed once they are in its WAL, and proposals that arrive while one batch is being
fsync'd are appended together into the next Ready: group commit falls out of the loop.

Membership changes (`change_membership`) are Raft conf changes: applying one updates the
member table (same LevelDB batch as the applied index) and the peer transport on every
member, and a member that applies its own removal stops. `move_leader` drives Raft's
leadership transfer. A member started with --initial-cluster-state existing bootstraps no
voters and learns the configuration from the leader's log.

Raft snapshots: every --snapshot-count applied entries the state is made durable, the
configuration at that index is stored next to it (`snapshot_meta`), a WAL marker is written,
the in-memory log is compacted but for a catch-up margin and older WAL segments are released.
A plyvel snapshot handle taken at that index is the image a follower too far behind receives
(`snapshot_image`); the receiver swaps it in for its LevelDB directory before Raft installs the
snapshot.

Encryption at rest (`--encryption-key-file`): the member loads the keyring before it opens the
WAL and LevelDB, which seal with it; `member.encryption` reloads it and re-encrypts in the
background. Sealed records that no key in the file opens stop the start with an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace

import grpc

from cairn.errors import (
    ErrLeaderChanged,
    ErrLearnerNotReady,
    ErrMemberNotFound,
    ErrMemberNotLearner,
    ErrNoLeader,
    ErrNoSpace,
    ErrNotLeader,
    ErrRequestTooLarge,
    ErrSnapshotAborted,
    ErrStopped,
    ErrTimeout,
    ErrTimeoutDueToConnectionLost,
    ErrTimeoutDueToLeaderFail,
    ErrTimeoutLeaderTransfer,
    EtcdError,
)
from cairn.member import (
    backup,
    corruption,
    force_new_cluster,
    forwarding,
    join,
    snapshot_image,
    snapshot_meta,
)
from cairn.member.applier import Applied, Applier
from cairn.member.auth_tokens import SimpleTokens
from cairn.member.compaction import CompactionDeleter
from cairn.member.config import MemberConfig
from cairn.member.encryption import Encryption
from cairn.member.identity import Identity, member_id
from cairn.member.lessor import Lessor
from cairn.member.membership import ConfOutcome, Membership, publish_until_applied
from cairn.member.quota import BackendQuota
from cairn.member.raft_codec import CodecError, decode_message, encode_message
from cairn.member.request_ids import RequestIDs
from cairn.member.snapshot_meta import SnapshotMeta
from cairn.member.stats import MemberStats
from cairn.member.wal_writer import WALWriter
from cairn.mvcc.backend import Backend
from cairn.mvcc.store import MVCCStore, OpCounters
from cairn.mvcc.watch import WatchHub
from cairn.peer import ClusterInfo, PeerFaults, PeerUnavailable, Transport
from cairn.peer.credentials import ChannelCredentialsSource
from cairn.peer.sender import PeerState
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import Forwarded, ForwardedAnswer, InternalRequest
from cairn.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    RawNode,
    Ready,
    Role,
    Snapshot,
    SnapshotMetadata,
)
from cairn.sealing import KeyFileError, Keyring, SealError, load_key_file
from cairn.wal import WAL, Replay, SnapshotMarker
from cairn.wal import Entry as WALEntry
from cairn.wal import HardState as WALHardState

log = logging.getLogger("cairn.member")


# A learner may be promoted once its log reaches this share of the leader's (etcd's rule).
PROMOTE_READY_SHARE = 0.9


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
    # Entries kept in memory behind a snapshot, so a follower slightly behind still catches
    # up from the log rather than with a whole image (etcd keeps 5000).
    snapshot_catch_up_entries: int = 5000
    # ReadIndex rounds start at most this often. A read arriving when the last round started
    # longer ago goes at once; under load, reads gather for this long and share one round
    # (measured on 2 cores, 3 members, 128 reads in flight: ~2 reads per round and 1,700
    # reads/s without a gap; ~12 per round and 3,000 reads/s with 4 ms).
    read_round_min_gap_s: float = 0.004
    # Test-only: lets a test cut and heal this member's links to peers (None in production).
    faults: PeerFaults | None = None
    # Peer TLS (--peer-cert-file ...): None for http:// peer URLs, else https:// is required.
    peer_server_credentials: grpc.ServerCredentials | None = None
    peer_channel_credentials: ChannelCredentialsSource | None = None


def _retrieve_exception(future: asyncio.Future[None]) -> None:
    """A round may fail after all its readers gave up; that is not an unhandled error."""
    if not future.cancelled():
        future.exception()


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
        self.quota: BackendQuota
        self.keyring = Keyring.empty()
        self.encryption: Encryption | None = None  # with --encryption-key-file
        self.watches: WatchHub  # fed by _apply; streams of the Watch service read from it
        self.node: RawNode
        self.transport: Transport
        self._storage = MemoryStorage()
        # Auth tokens are this member's own (not replicated state): they survive an image swap.
        self.tokens = SimpleTokens(config.auth_token_ttl_s)
        self._wal: WAL
        self._wal_writer: WALWriter | None = None
        self._request_ids: RequestIDs
        self._waiters: dict[int, asyncio.Future[Applied]] = {}
        self._proposed_at: dict[int, float] = {}  # loop time of each waiting proposal
        self._reads: dict[bytes, asyncio.Future[int]] = {}
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # Conf changes proposed here, by their encoded entry data, until applied.
        self._conf_waiters: dict[bytes, asyncio.Future[None]] = {}
        self.removed = False
        self._next_read = 0
        # The ReadIndex round the next linearizable reads wait for, and the task running them.
        self._next_round: asyncio.Future[None] | None = None
        self._read_rounds: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self.failure: BaseException | None = None
        self._compactions = CompactionDeleter()
        # The LevelDB image at the latest Raft snapshot index: (index, plyvel snapshot).
        self._image: tuple[int, object] | None = None
        self._images_sending = 0  # image streams reading the LevelDB snapshot handle
        self._since_snapshot = 0
        self._snapshot_sends: set[asyncio.Task[None]] = set()
        self.images_installed = 0  # images received from a leader and swapped in
        self._transfers = 0  # images being or having been received, to name their dirs
        self.term = 0
        self.leader = 0
        self._leader_elected_at = float("-inf")  # loop time this member learned of its leader
        self._may_be_alone = True  # until the configuration at start is known
        self._forcing_new_cluster = False  # until the forced removals are applied
        # The commit index at start: entries up to it are replayed from the WAL.
        self._replay_to = 0
        self._replayed: list[int] = []
        # Counted here, exported by cairn.observe; both survive store swaps.
        self.stats = MemberStats()
        self.op_counters = OpCounters()

    # ---- life cycle ------------------------------------------------------------------

    @property
    def peers(self) -> dict[int, list[str]]:
        """Every member's peer URLs, by member ID, from --initial-cluster."""
        token = self.config.initial_cluster_token
        return {member_id(urls, token): urls for urls in self.config.initial_cluster.values()}

    def open(self) -> None:
        try:
            self._open()
        except SealError as error:
            hint = (
                f"(--encryption-key-file {self.config.encryption_key_file})"
                if self.config.encryption_key_file
                else "(no --encryption-key-file was given)"
            )
            raise RaftMemberError(
                f"data dir {self.config.data_dir} holds sealed records this member cannot "
                f"open {hint}: {error}"
            ) from None

    def _open(self) -> None:
        cfg = self.config
        if cfg.encryption_key_file:
            try:
                self.keyring = load_key_file(cfg.encryption_key_file)
            except KeyFileError as error:
                raise RaftMemberError(str(error)) from None
            self.encryption = Encryption(cfg.encryption_key_file, self.keyring, self)
        snapshot_image.recover(cfg.db_dir)
        self.backend = Backend(cfg.db_dir, self.keyring)
        self.store = MVCCStore(self.backend, self.op_counters)
        self.applier = Applier(self.store, self.tokens)
        self.quota = BackendQuota(lambda: self.backend, self.config.quota_backend_bytes)
        self.watches = WatchHub(self.store)
        # --initial-cluster-state existing: this member was added with `member add` and joins
        # a running cluster; the table and the configuration come from the leader's log.
        joining = cfg.initial_cluster_state == "existing"
        self.membership = Membership.open(
            self.store, cfg.initial_cluster, cfg.initial_cluster_token, seed=not joining
        )
        voters: tuple[int, ...] = ()
        if WAL.exists(cfg.wal_dir):
            self._wal, replay = WAL.open(
                cfg.wal_dir, segment_bytes=cfg.wal_segment_bytes, keyring=self.keyring
            )
            self._wal.on_fsync = self._observe_wal_fsync
            self.identity = Identity.from_bytes(replay.metadata)
            if self.identity.name != cfg.name:
                raise RaftMemberError(
                    f"data dir {cfg.data_dir} belongs to member {self.identity.name!r}, "
                    f"not {cfg.name!r} (--name)"
                )
            if self._never_bootstrapped(replay) and not joining:
                # The first start created the WAL and died before its first Ready saved the
                # initial configuration (a bind failure, a kill): nothing was ever agreed or
                # applied, so bootstrap again from --initial-cluster, under the same identity.
                # Without this the member would restart knowing no voters and never elect.
                voters = tuple(sorted(self.peers))
                log.warning(
                    "member %s (%x): its first start ended before the initial configuration "
                    "was saved; bootstrapping it again from --initial-cluster (%d voters)",
                    cfg.name,
                    self.identity.member_id,
                    len(voters),
                )
            term = replay.hard_state.term if replay.hard_state is not None else 0
            marker = self._restore_marker(replay.snapshot, replay.entries, term)
            entries = replay.entries
            if marker is not None:
                entries = [e for e in entries if e.index > marker.index]
            raft_entries = [_from_wal(e) for e in entries]
            hs = replay.hard_state or WALHardState(entries[-1].term if entries else 0, 0, 0)
            if cfg.force_new_cluster:
                forced, hs = self._force_new_cluster(raft_entries, hs, marker)
                raft_entries += forced
            self._storage.append(raft_entries)
            # Only committed entries are ever applied, so the applied index is committed even
            # when the hard state that said so was in a tail the WAL lost.
            commit = max(hs.commit, marker.index if marker is not None else 0)
            commit = max(commit, min(self.store.applied_index, self._storage.last_index()))
            if hs.term or commit:
                self._storage.set_hard_state(HardState(hs.term, hs.vote, commit))
            self._replay_to = commit
            log.info(
                "restarting member %s (%x): %d log entries, applied index %d",
                self.identity.name,
                self.identity.member_id,
                len(replay.entries),
                self.store.applied_index,
            )
        else:
            if cfg.force_new_cluster:
                log.warning("--force-new-cluster is ignored: %s holds no data yet", cfg.data_dir)
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
                cfg.wal_dir,
                self.identity.to_bytes(),
                segment_bytes=cfg.wal_segment_bytes,
                keyring=self.keyring,
            )
            self._wal.on_fsync = self._observe_wal_fsync
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
        c = self.cluster
        self.lessor = Lessor(
            self,
            self.identity.member_id,
            c.heartbeat_interval_ms,
            c.election_timeout_ms,
            c.request_timeout_s,
        )
        self._take_image_at_restart()

    # Set by resolve_identity() for a first start with --initial-cluster-state existing.
    _joined: Identity | None = None

    async def resolve_identity(self) -> None:
        """Ask the cluster who this member is, before open(), when it joins with no data.

        `member add` hashed the second of the add into the new member's ID, so the member
        cannot derive it, and the cluster ID no longer follows from --initial-cluster once a
        founder was replaced: both come from the first other member that answers
        (`member.join`), whose table also says which peers to dial. A restart reads its
        identity from the WAL and asks nobody; a founder never asks.
        """
        cfg = self.config
        joining = cfg.initial_cluster_state == "existing"
        if not joining or WAL.exists(cfg.wal_dir) or cfg.name not in cfg.initial_cluster:
            return  # nothing to ask; open() reads the WAL or reports the missing name
        try:
            joined = await join.lookup(
                cfg.name, cfg.initial_cluster, credentials=self.cluster.peer_channel_credentials
            )
        except join.JoinError as error:
            raise RaftMemberError(str(error)) from None
        self._joined = joined.identity
        if not self.cluster.peer_urls:
            self.cluster = replace(self.cluster, peer_urls=joined.peers)

    def _joining_identity(self) -> Identity:
        """Who a member started with --initial-cluster-state existing is (resolve_identity)."""
        if self._joined is None:
            raise RaftMemberError(
                "a member joining with --initial-cluster-state existing must learn its identity "
                "from the cluster first: await resolve_identity() before open()"
            )
        return self._joined

    def _cluster_info(self) -> ClusterInfo:
        """This member's answer to a joining member's `Members` call on the peer transport."""
        return join.cluster_info(self.identity.cluster_id, self.membership.members())

    def _never_bootstrapped(self, replay: Replay) -> bool:
        """True for a data dir whose WAL holds nothing but its identity: no entry, no hard
        state, no snapshot, and nothing applied."""
        return (
            not replay.entries
            and replay.hard_state is None
            and replay.snapshot is None
            and self.store.applied_index == 0
        )

    def _restore_marker(
        self, marker: SnapshotMarker | None, entries: list[WALEntry], term: int
    ) -> SnapshotMarker | None:
        """Load the WAL's latest snapshot into Raft storage, with the configuration at it.

        A state applied beyond the whole WAL is an image swapped in from the leader whose
        marker a crash kept from the WAL: the conf-state record written into the image says
        where it stands, and the marker is written now. Returns the marker in effect.
        """
        applied = self.store.applied_index
        last = entries[-1].index if entries else (marker.index if marker is not None else 0)
        records = snapshot_meta.load(self.backend)
        if applied > last:
            image = next((m for m in records if m.index == applied), None)
            if image is None:
                image = self._sole_voter_snapshot(applied, last, term)
                records.append(image)
            marker = SnapshotMarker(index=applied, term=image.term)
            self._wal.save_snapshot(marker)
        if marker is None:
            return None
        if applied < marker.index:
            raise RaftMemberError(
                f"the state in {self.config.db_dir} has applied index {applied}, but the WAL "
                f"only holds entries after its snapshot at index {marker.index}: acknowledged "
                "writes would be missing, so the member refuses to start"
            )
        meta = next((m for m in records if m.index == marker.index), None)
        if meta is None:
            raise RaftMemberError(
                f"{self.config.db_dir} records no configuration for the WAL's snapshot at "
                f"index {marker.index}; the member cannot tell Raft who the voters were"
            )
        metadata = SnapshotMetadata(marker.index, marker.term, meta.conf_state)
        self._storage.apply_snapshot(Snapshot(metadata))
        return marker

    def _force_new_cluster(
        self, entries: list[Entry], hs: WALHardState, marker: SnapshotMarker | None
    ) -> tuple[list[Entry], WALHardState]:
        """--force-new-cluster: log the removal of every other member, committed and synced
        before anything else happens (see cairn.member.force_new_cluster)."""
        own = self.identity.member_id
        members = force_new_cluster.members_after_log(
            (m.ID for m in self.membership.members()), entries, self.store.applied_index
        )
        record = self.membership.get(own)
        if own not in members or (record is not None and record.isLearner):
            raise RaftMemberError(
                f"--force-new-cluster: member {own:x} is not a voter of its own cluster "
                "(removed, or a learner that may lack committed entries); it cannot carry on "
                "alone"
            )
        last_index = self._wal.last_index
        last_term = entries[-1].term if entries else (marker.term if marker is not None else 0)
        term = max(hs.term, last_term)
        forced = force_new_cluster.removal_entries(own, members, last_index, term)
        commit = forced[-1].index if forced else last_index
        hard = WALHardState(term, hs.vote, commit)
        self._wal.save([_to_wal(e) for e in forced], hard)
        self._forcing_new_cluster = True
        log.warning(
            "--force-new-cluster: member %x continues as a one-member cluster; removing "
            "%s from its configuration (every entry up to index %d is applied)",
            own,
            ", ".join(f"{m:x}" for m in sorted(members - {own})) or "nobody",
            commit,
        )
        return forced, hard

    def _sole_voter_snapshot(self, applied: int, last: int, term: int) -> SnapshotMeta:
        """A one-member cluster whose WAL lost a tail the state had already applied.

        Only an outside hand can do that (apply follows the fdatasync), but the state is
        complete, so a lone member carries on from it: the state is made durable and becomes
        a snapshot at its applied index. In a cluster the lost entries may have been what
        made this member's log up to date in elections, so a member of several refuses.
        """
        own = self.identity.member_id
        table = self.membership.members()
        if [m.ID for m in table] != [own] or table[0].isLearner:
            raise RaftMemberError(
                f"the state in {self.config.db_dir} has applied index {applied}, beyond "
                f"the last index {last} in the WAL, and records no snapshot at it"
            )
        log.warning(
            "the WAL ends at index %d but the state has applied up to %d; the WAL lost its "
            "tail, so the state becomes a snapshot at %d",
            last,
            applied,
            applied,
        )
        self.backend.sync_barrier()
        meta = SnapshotMeta(applied, max(term, 1), ConfState(voters=(own,)))
        self.backend.write_batch(snapshot_meta.records(self.backend, meta), sync=True)
        return meta

    def _observe_wal_fsync(self, seconds: float) -> None:
        # Looked up at each call: the exporter connects its histogram after open().
        self.stats.observe_wal_fsync(seconds)

    @property
    def wal(self) -> WAL:
        """The write-ahead log (its byte count and the TEST-ONLY fsync delay live there)."""
        return self._wal

    @property
    def proposals_pending(self) -> int:
        """Proposals from this member waiting to be applied (etcd_server_proposals_pending)."""
        return len(self._waiters)

    @property
    def committed_index(self) -> int:
        """The Raft commit index as this member knows it."""
        return self.node.status().commit

    def _take_image_at_restart(self) -> None:
        """Have an image at the storage snapshot's index, which is what Raft will send.

        Only a member that has a snapshot needs one. When the state was applied beyond the
        snapshot, the old image cannot be rebuilt: take a new snapshot at the applied index.
        """
        snapshot_index = self._storage.snapshot().index
        applied = self.store.applied_index
        if snapshot_index == 0:
            return
        if applied == snapshot_index:
            self._image = (applied, self.backend.db.snapshot())
        else:
            self._snapshot(applied)

    def _snapshot(self, index: int) -> None:
        """Raft snapshot at applied `index`: durable state, conf state, marker, compaction.

        Order matters for a crash: the synced LevelDB batch (which carries the conf state)
        comes before the WAL marker, and segments are released only after the marker.
        """
        started = time.monotonic()
        term = self._storage.term(index)
        conf = self.node.status().conf_state
        meta = SnapshotMeta(index, term, conf)
        self.backend.write_batch(snapshot_meta.records(self.backend, meta), sync=True)
        self._storage.create_snapshot(index, conf, b"")
        self._wal.save_snapshot(SnapshotMarker(index=index, term=term))
        self._image = (index, self.backend.db.snapshot())
        keep_from = index - self.cluster.snapshot_catch_up_entries
        if keep_from >= self._storage.first_index():
            self._storage.compact(keep_from)
        released = self._wal.release_before(index + 1)
        self._since_snapshot = 0
        self.stats.observe_snapshot_save(time.monotonic() - started)
        log.info(
            "member %x: snapshot at index %d (term %d), log compacted to %d, %d WAL segments "
            "released",
            self.identity.member_id,
            index,
            term,
            self._storage.first_index() - 1,
            released,
        )

    async def start(self) -> None:
        """Listen for peers, connect to them, and start ticking and the Ready loop."""
        loop = asyncio.get_running_loop()
        self._wal_writer = WALWriter(self._wal, loop)
        self.transport = Transport(
            self.identity.member_id,
            self.identity.cluster_id,
            self._on_peer_message,
            on_unreachable=self._on_unreachable,
            on_snapshot=self._on_snapshot,
            faults=self.cluster.faults,
            cluster_info=self._cluster_info,
            on_forward=self._answer_forwarded,
            server_credentials=self.cluster.peer_server_credentials,
            channel_credentials=self.cluster.peer_channel_credentials,
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
            loop.create_task(self.lessor.run(), name="cairn-lessor"),
        ]
        if self.encryption is not None:
            self._tasks += [
                loop.create_task(self.encryption.run(), name="cairn-reencrypt"),
                loop.create_task(self.encryption.watch_file(), name="cairn-key-file"),
            ]
        self._tasks[0].add_done_callback(self._on_loop_done)
        self._campaign_if_alone()
        self._wake.set()

    def _campaign_if_alone(self) -> None:
        """A sole voter campaigns at once: nobody else could win or object, so there is no
        reason to wait out an election timeout. After a restart without a snapshot the
        configuration is only known once the log's conf changes are applied again, so the
        Ready loop asks again until the configuration is known."""
        voters = set(self.node.status().conf_state.voters)
        if not voters:
            return
        alone = voters == {self.identity.member_id}
        # --force-new-cluster: the other voters go once the forced removals are applied.
        if alone or not self._forcing_new_cluster:
            self._may_be_alone = False
        if alone:
            self._forcing_new_cluster = False
            self.node.campaign()

    def spawn(self, work: Coroutine[object, object, None], name: str) -> None:
        """Run `work` (an operator task: auto-compaction, corruption checks) for as long as
        the member runs; stop() cancels it with the member's own tasks."""
        self._tasks.append(asyncio.get_running_loop().create_task(work, name=name))

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
        tasks = [*self._tasks, *self._snapshot_sends]
        for task in tasks:
            task.cancel()
        for task in tasks:
            # A failed loop was already logged by _on_loop_done.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._fail_all(ErrStopped())
        self.watches.close(ErrStopped())
        if self._read_rounds is not None:
            self._read_rounds.cancel()
        await self._compactions.stop()
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
        if self._next_round is not None and not self._next_round.done():
            self._next_round.set_exception(error)
        self._next_round = None
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
            if self._proposed_at:
                self._expire_proposals()

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
                if self._may_be_alone:
                    self._campaign_if_alone()

    async def _handle(self, rd: Ready) -> None:
        if rd.snapshot is not None and not rd.snapshot.is_empty():
            self._install_snapshot(rd.snapshot)
        if rd.soft_state is not None:
            if rd.soft_state.lead != self.leader:
                log.info(
                    "member %x: leader is now %x (role %s)",
                    self.identity.member_id,
                    rd.soft_state.lead,
                    rd.soft_state.role.value,
                )
                if rd.soft_state.lead != 0:
                    self.stats.leader_changes_seen_total += 1
                    self._new_leader()
            self.leader = rd.soft_state.lead
        if rd.hard_state is not None:
            # Raft's term, as etcd reports it: known now, before the fsync below, so a
            # response never names this leader with the previous term.
            self.term = rd.hard_state.term
        if rd.entries or rd.hard_state is not None:
            hard = rd.hard_state
            wal_hard = WALHardState(hard.term, hard.vote, hard.commit) if hard else None
            before = self._storage.hard_state()
            if rd.entries or (
                hard is not None and (hard.term, hard.vote) != (before.term, before.vote)
            ):
                assert self._wal_writer is not None
                await self._wal_writer.save([_to_wal(e) for e in rd.entries], wal_hard)
            else:
                # Only the commit index moved: written, not fdatasync'd (WAL.save explains).
                self._wal.save([], wal_hard, sync=False)
            if rd.entries:
                self._storage.append(rd.entries)
            if hard is not None:
                self._storage.set_hard_state(hard)
        for message in rd.messages:
            if message.type is MessageType.SNAP:
                task = asyncio.get_running_loop().create_task(self._send_snapshot(message))
                self._snapshot_sends.add(task)
                task.add_done_callback(self._snapshot_sends.discard)
            else:
                if message.type is MessageType.HEARTBEAT and self.transport.peer_state(
                    message.to
                ) in (None, PeerState.DOWN):
                    # etcd counts a heartbeat its transport could not take; ours drops them
                    # while the peer's stream is down.
                    self.stats.heartbeat_send_failures_total += 1
                self.transport.send(message.to, encode_message(message))
        if rd.committed_entries:
            self._apply(rd.committed_entries)
        for read in rd.read_states:
            future = self._reads.pop(read.ctx, None)
            if future is not None and not future.done():
                future.set_result(read.index)
        self.node.advance(rd)

    def _new_leader(self) -> None:
        """A new leader is known: reads waiting for the old one's ReadIndex never get it.

        Raft drops pending ReadIndex requests when leadership moves, so they fail now with
        etcd's `leader changed` (clients retry that at once) instead of after the timeout.
        Proposals keep waiting: their entries may still commit under the new leader.
        """
        self._leader_elected_at = asyncio.get_running_loop().time()
        for future in self._reads.values():
            if not future.done():
                self.stats.read_indexes_failed_total += 1
                future.set_exception(ErrLeaderChanged())
        self._reads.clear()

    def _timeout_error(self, started: float) -> EtcdError:
        """The error etcd gives a request that timed out after starting at `started`.

        Started up to two election timeouts before the current leader was elected: probably
        lost with the previous leader. The leader (or, on the leader, a quorum) unreachable:
        connection lost. Otherwise the plain timeout.
        """
        window = 2 * self.cluster.election_timeout_ms / 1000
        if self._leader_elected_at - window < started < self._leader_elected_at:
            return ErrTimeoutDueToLeaderFail()
        own = self.identity.member_id
        if self.leader == own:
            voters = self.node.status().conf_state.voters
            reached = sum(1 for v in voters if v == own or self._reaches(v))
            if reached <= len(voters) // 2:
                return ErrTimeoutDueToConnectionLost()
        elif self.leader != 0 and not self._reaches(self.leader):
            return ErrTimeoutDueToConnectionLost()
        return ErrTimeout()

    def _reaches(self, peer_id: int) -> bool:
        return self.transport.peer_state(peer_id) is PeerState.ACTIVE

    def _apply(self, entries: list[Entry]) -> None:
        outcomes: list[tuple[int, Applied | EtcdError]] = []
        # After an image was swapped in, Raft may hand out entries the image already holds
        # (committed before the swap, or between the snapshot and the image's index).
        # The store has them; Raft must still see their conf changes.
        for entry in [e for e in entries if e.index <= self.store.applied_index]:
            if entry.kind is EntryKind.CONF_CHANGE:
                self.node.apply_conf_change(ConfChange.decode(entry.data))
        entries = [e for e in entries if e.index > self.store.applied_index]
        if not entries:
            return
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
                if entry.term == self.term and self.is_leader:
                    self.lessor.promote()  # our own first entry: every earlier one is applied
                continue  # a new leader's empty entry
            started = time.monotonic()
            request = InternalRequest.FromString(entry.data)
            try:
                outcome: Applied | EtcdError = self._apply_request(request, entry.index)
            except EtcdError as error:
                outcome = error
            else:
                self._count_lease_change(request)
            self.stats.applied_in(time.monotonic() - started)
            outcomes.append((request.header.ID, outcome))
        last = entries[-1].index
        started = time.monotonic()
        self.store.flush(last)
        self.stats.observe_backend_commit(time.monotonic() - started)
        self.watches.notify(o.changes for _, o in outcomes if isinstance(o, Applied))
        if self._replay_to:
            self._log_replay(entries[0].index, last)
        for request_id, outcome in outcomes:
            future = self._waiters.pop(request_id, None)
            if future is None or future.done():
                continue
            if isinstance(outcome, EtcdError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._release_applied_waiters(last)
        self._since_snapshot += len(entries)
        if self._since_snapshot >= self.config.snapshot_count:
            self._snapshot(last)

    def _count_lease_change(self, request: InternalRequest) -> None:
        kind = request.WhichOneof("request")
        if kind == "lease_grant":
            self.stats.lease_granted_total += 1
        elif kind == "lease_revoke":
            self.stats.lease_revoked_total += 1

    def _log_replay(self, first: int, last: int) -> None:
        """Say once how many WAL entries a restart applied again (the state was behind)."""
        if not self._replayed:
            self._replayed = [first, first - 1]
        self._replayed[1] = min(last, self._replay_to)
        if last >= self._replay_to:
            first, upto = self._replayed
            log.info(
                "replayed %d WAL entries (%d..%d); revision %d",
                upto - first + 1,
                first,
                upto,
                self.store.current_rev,
            )
            self._replay_to = 0

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
        loop = asyncio.get_running_loop()
        started = loop.time()
        future: asyncio.Future[None] = loop.create_future()
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
            raise self._timeout_error(started) from None

    async def promote_learner(self, learner_id: int) -> None:
        """MemberPromote: only the leader knows how far the learner's log is, so it decides
        (etcd's rule: the learner holds at least 90% of the leader's log) and proposes the
        change; a follower has the leader do it, then waits until it applied it too."""
        target = self.membership.get(learner_id)
        if target is None:
            raise ErrMemberNotFound()
        if not target.isLearner:
            raise ErrMemberNotLearner()
        if not self.is_leader:
            request = Forwarded(member_promote=pb.MemberPromoteRequest(ID=learner_id))
            try:
                await forwarding.to_leader(
                    self.transport, self.leader, request, self.cluster.request_timeout_s
                )
            except PeerUnavailable:
                raise ErrNoLeader() if self.leader == 0 else ErrTimeout() from None
            await self.linearizable_barrier()
            return
        status = self.node.status()
        own = status.progress.get(self.identity.member_id)
        learner = status.progress.get(learner_id)
        leader_match = own.match if own is not None else status.last_index
        if learner is None or learner.match < leader_match * PROMOTE_READY_SHARE:
            raise ErrLearnerNotReady()
        promoted = pb.Member(ID=learner_id, peerURLs=list(target.peerURLs), isLearner=False)
        change = ConfChange(ConfChangeType.ADD_VOTER, learner_id, promoted.SerializeToString())
        await self.change_membership(change)

    async def _answer_forwarded(self, from_id: int, payload: bytes) -> bytes:
        """The peer transport's `on_forward`: answer what a follower forwarded to us."""
        request = Forwarded.FromString(payload)
        try:
            if request.WhichOneof("request") == "hash_kv":
                # Any member answers for itself: the leader's corruption check asks everyone.
                header = pb.ResponseHeader()
                self.fill_header(header)
                answer = await corruption.answer_hash_kv(
                    lambda: self.store, request.hash_kv, header
                )
            elif request.WhichOneof("request") == "member_promote":
                if not self.is_leader:
                    raise ErrNotLeader()
                await self.promote_learner(request.member_promote.ID)
                answer = ForwardedAnswer()
                answer.member_promote.SetInParent()
            else:
                answer = await self.lessor.answer_forwarded(request)
        except EtcdError as error:
            answer = forwarding.error_answer(error)
        return answer.SerializeToString()

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

    async def hand_over_leadership(self) -> None:
        """Before a clean stop, give leadership to the most caught-up reachable voter.

        As etcd does on shutdown: the cluster then keeps a leader through a rolling restart
        instead of waiting an election timeout for the stopped leader to be missed. Best
        effort: with no reachable voter, or when the transfer times out, the member just stops.
        """
        if not self.is_leader:
            return
        status = self.node.status()
        own = self.identity.member_id
        candidates = [
            (progress.match, voter)
            for voter, progress in status.progress.items()
            if voter != own and voter in status.conf_state.voters and self._reaches(voter)
        ]
        if not candidates:
            return
        _, target = max(candidates)
        log.info("stopping: handing leadership to %x", target)
        try:
            await self.move_leader(target)
        except EtcdError as error:
            log.warning("stopping without handing over leadership: %s", error)

    def _apply_request(self, request: InternalRequest, index: int) -> Applied:
        if request.WhichOneof("request") == "member_attributes":
            return self.membership.apply_attributes(request.member_attributes)
        applied = self.applier.apply(request, index)
        if applied.compaction is not None:
            # Queued now, run after this group's flush (the deleter yields first).
            self._compactions.schedule(self.store, *applied.compaction)
        return applied

    async def defragment(self) -> None:
        """Rewrite this member's LevelDB with only its live records, then swap it in.

        Local, like etcd's (`defrag --cluster` calls every member). It waits for image
        streams to finish (they read a snapshot of the old files), then copies and swaps
        without yielding to the event loop, so no request sees the store half-way; like
        etcd's, it blocks this member while it runs. The swap uses the image renames, whose
        crash recovery leaves either the old or the new directory, equal in content. The
        Raft snapshot's image is a LevelDB snapshot of the old files: it is taken again on
        the new ones (a new Raft snapshot when the applied index moved past it).
        """
        while self._images_sending:
            await asyncio.sleep(0.05)
        started = time.monotonic()
        self.stats.defrag_inflight = 1
        try:
            self._defragment_now()
        finally:
            self.stats.defrag_inflight = 0
            self.stats.observe_defrag(time.monotonic() - started)

    def _defragment_now(self) -> None:
        target = f"{self.config.db_dir}{snapshot_image.INCOMING}defrag"
        shutil.rmtree(target, ignore_errors=True)
        before = self.backend.size_on_disk()
        self.backend.copy_to(target)
        image_index = self._image[0] if self._image is not None else None
        self._image = None
        self.backend.reopen(lambda: snapshot_image.swap_in(target, self.config.db_dir))
        if image_index is not None:
            if image_index == self.store.applied_index:
                self._image = (image_index, self.backend.db.snapshot())
            else:
                self._snapshot(self.store.applied_index)
        log.info(
            "member %x: defragmented the database: %d bytes before, %d after",
            self.identity.member_id,
            before,
            self.backend.size_on_disk(),
        )

    # ---- encryption at rest (cairn.member.encryption's host) ----------------------------

    def wal_key_ids(self) -> set[str | None]:
        return self._wal.key_ids_in_use()

    def rekey_wal(self, switch: Callable[[], None]) -> None:
        self._wal.rekey(switch)

    def refresh_after_reencryption(self) -> None:
        """After the re-encryption pass: let go of everything older keys still sealed.

        A new Raft snapshot at the applied index takes a new image (the old LevelDB snapshot
        handle still reads records as they were sealed before) and writes a WAL marker, which
        starts a new segment after a rekey, then releases the segments it covers. With
        nothing applied since the last snapshot, the same index is marked again instead.
        """
        applied = self.store.applied_index
        snapshot = self._storage.snapshot()
        if applied > snapshot.index:
            self._snapshot(applied)
            return
        if snapshot.index:
            self._wal.save_snapshot(SnapshotMarker(index=snapshot.index, term=snapshot.term))
            self._wal.release_before(snapshot.index + 1)
        if self._image is not None and self._image[0] == applied:
            self._image = (applied, self.backend.db.snapshot())

    @contextlib.asynccontextmanager
    async def backup(self) -> AsyncIterator[backup.BackupSource]:
        """A backup of this member's state (Maintenance.Snapshot), at one applied index.

        The LevelDB snapshot handle is taken between two applied groups (the Ready loop
        applies and flushes a group without yielding), so it holds exactly the state at the
        applied index it records, while writes go on. Counted as an image stream, so a
        defragmentation waits for it; a member stopping, or swapping in a leader's image,
        closes the old files under it and the stream fails rather than reading a mix.
        """
        if self._stopping:
            raise ErrStopped()
        handle = self.backend.db.snapshot()
        self._images_sending += 1
        try:
            try:
                source = await backup.prepare(
                    handle,
                    self.identity.name,
                    self.identity.member_id,
                    self.identity.cluster_id,
                    self.term,
                )
                log.info(
                    "member %x: sending a snapshot at applied index %d, revision %d (%d "
                    "records, %d bytes)",
                    self.identity.member_id,
                    source.meta.applied_index,
                    source.meta.revision,
                    source.meta.record_count,
                    source.content_bytes,
                )
                yield source
            except RuntimeError as closed:
                if "closed" not in str(closed):  # plyvel's text for a closed database
                    raise
                if self._stopping:
                    raise ErrStopped() from None
                raise ErrSnapshotAborted() from closed
        finally:
            self._images_sending -= 1
            with contextlib.suppress(RuntimeError):
                handle.close()

    async def wait_compaction(self, rev: int) -> None:
        """Physical compaction: wait until the dropped history is deleted on this member."""
        await self._compactions.wait(rev)

    # ---- snapshot transfer -------------------------------------------------------------

    async def _send_snapshot(self, message: Message) -> None:
        """Stream the image Raft's SNAP message stands for, then report how it went."""
        to = message.to
        ok = False
        self._images_sending += 1
        try:
            assert message.snapshot is not None
            image = self._image
            if image is None or image[0] != message.snapshot.index:
                raise RaftMemberError(
                    f"no image at snapshot index {message.snapshot.index} (have "
                    f"{image[0] if image else None})"
                )
            handle = image[1]
            excluded = snapshot_meta.KEYS
            open_value = self.backend.open_value
            count, size = await snapshot_image.measure(handle, excluded, open_value)
            log.info(
                "member %x: sending snapshot at index %d (%d records, %d bytes) to %x",
                self.identity.member_id,
                message.snapshot.index,
                count,
                size,
                to,
            )
            data = snapshot_image.stream(handle, count, excluded, open_value=open_value)
            await self.transport.send_snapshot(to, encode_message(message), data, size)
            ok = True
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("member %x: snapshot to %x failed: %s", self.identity.member_id, to, error)
        finally:
            self._images_sending -= 1
        if not self._stopping:
            self.node.report_snapshot(to, ok)
            self._wake.set()

    async def _on_snapshot(self, from_id: int, payload: bytes, data: AsyncIterator[bytes]) -> None:
        """Receive an image, swap it in for the LevelDB directory, then step the SNAP message.

        The image is written and verified in a directory of its own first: a cut-off or
        corrupt transfer raises and leaves the member's state untouched. The swap and the
        step happen without yielding to the event loop, so the Ready loop never applies
        entries to a half-replaced store.
        """
        message = decode_message(payload)
        snap = message.snapshot
        if message.type is not MessageType.SNAP or snap is None:
            raise RaftMemberError(f"a snapshot transfer from {from_id:x} without a SNAP message")
        self._transfers += 1
        incoming = snapshot_image.incoming_dir(self.config.db_dir, snap.index, self._transfers)
        writer = snapshot_image.ImageWriter(incoming, self.backend.seal_value)
        self.stats.snapshot_apply_in_progress = 1
        try:
            async for chunk in data:
                writer.feed(chunk)
            meta = SnapshotMeta(snap.index, snap.term, snap.metadata.conf_state)
            writer.finish({snapshot_meta.LATEST: meta.encode()})
        except BaseException:
            writer.abort()
            raise
        finally:
            self.stats.snapshot_apply_in_progress = 0
        if self._stopping:
            shutil.rmtree(incoming, ignore_errors=True)
            raise ErrStopped()
        if snap.index <= max(self.node.status().commit, self.store.applied_index):
            # Our log caught up while the image was on its way; Raft answers from the log.
            shutil.rmtree(incoming, ignore_errors=True)
        else:
            self._swap_store(incoming, snap.index)
        self.node.step(message)
        self._wake.set()

    def _swap_store(self, incoming: str, index: int) -> None:
        """Replace the LevelDB directory with a received image and reopen everything on it."""
        cfg = self.config
        self._image = None
        self.backend.close()
        snapshot_image.swap_in(incoming, cfg.db_dir)
        self.backend = Backend(cfg.db_dir, self.keyring)
        self.store = MVCCStore(self.backend, self.op_counters)
        self.applier = Applier(self.store, self.tokens)
        self.watches.swap(self.store)
        self.membership = Membership.open(
            self.store, cfg.initial_cluster, cfg.initial_cluster_token, seed=False
        )
        self.images_installed += 1
        if self.encryption is not None:
            self.encryption.data_replaced()
        for member in self.membership.members():
            peer_id = member.ID
            known = peer_id == self.identity.member_id or peer_id in self.transport.peer_ids
            if not known and member.peerURLs:
                self.transport.add_peer(peer_id, list(member.peerURLs))
        log.info(
            "member %x: installed an image at index %d (applied index %d, revision %d)",
            self.identity.member_id,
            index,
            self.store.applied_index,
            self.store.current_rev,
        )
        # Reads waiting for an index the image covers may go ahead; proposals waiting here
        # are not woken: whether (and how) their entries applied is unknown, they time out.
        self._release_applied_waiters(self.store.applied_index)

    def _release_applied_waiters(self, applied: int) -> None:
        """Wake the reads waiting for an index up to `applied`."""
        still_waiting = []
        for wanted, future in self._applied_waiters:
            if wanted <= applied:
                if not future.done():
                    future.set_result(None)
            else:
                still_waiting.append((wanted, future))
        self._applied_waiters = still_waiting

    def _install_snapshot(self, snapshot: Snapshot) -> None:
        """Ready.snapshot: the image is already in place; record it in the WAL and storage.

        The state may be ahead of the snapshot (an image from an earlier transfer); it may
        never be behind, or entries up to the snapshot would be missing from it.
        """
        applied = self.store.applied_index
        if applied < snapshot.index:
            raise RaftMemberError(
                f"Raft installs a snapshot at index {snapshot.index} but the state is only at "
                f"applied index {applied}"
            )
        meta = SnapshotMeta(snapshot.index, snapshot.term, snapshot.metadata.conf_state)
        self.backend.write_batch(snapshot_meta.records(self.backend, meta), sync=True)
        self._wal.save_snapshot(SnapshotMarker(index=snapshot.index, term=snapshot.term))
        self._storage.apply_snapshot(snapshot)
        if applied == snapshot.index:
            self._image = (snapshot.index, self.backend.db.snapshot())
        self._wal.release_before(snapshot.index + 1)
        self._since_snapshot = 0

    # ---- requests --------------------------------------------------------------------

    async def propose(self, request: InternalRequest) -> Applied:
        """Replicate a write through Raft; resolves when this member has applied it."""
        if self._stopping:
            raise ErrStopped()
        request.header.ID = self._request_ids.next()
        data = request.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise ErrRequestTooLarge()
        if not self.quota.fits(request, len(data)):
            await self._raise_nospace()
            raise ErrNoSpace()
        request_id = request.header.ID
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Applied] = loop.create_future()
        self._waiters[request_id] = future
        try:
            self.node.propose(data)
        except ProposalDropped:
            del self._waiters[request_id]
            self.stats.proposals_failed_total += 1
            raise ErrNoLeader() from None
        # No timer per request: the tick sweeps proposals older than the request timeout.
        self._proposed_at[request_id] = loop.time()
        self._wake.set()
        try:
            return await future
        finally:
            self._waiters.pop(request_id, None)
            self._proposed_at.pop(request_id, None)

    async def _raise_nospace(self) -> None:
        """Propose this member's NOSPACE alarm, unless it is already active.

        The alarm is replicated state: once applied, every member refuses space-costing
        writes. A proposal that fails (no leader) is not retried here: the next refused
        write proposes again.
        """
        own = self.identity.member_id
        if (own, pb.NOSPACE) in self.applier.alarms.active:
            return
        log.warning("database size exceeds --quota-backend-bytes: raising the NOSPACE alarm")
        alarm = pb.AlarmRequest(action=pb.AlarmRequest.ACTIVATE, memberID=own, alarm=pb.NOSPACE)
        with contextlib.suppress(EtcdError):
            await self.propose(InternalRequest(alarm=alarm))

    def _expire_proposals(self) -> None:
        """Fail the proposals still waiting after the request timeout (oldest first: IDs
        grow, and dicts keep insertion order)."""
        deadline = asyncio.get_running_loop().time() - self.cluster.request_timeout_s
        expired = []
        for request_id, started in self._proposed_at.items():
            if started > deadline:
                break
            expired.append((request_id, started))
        for request_id, started in expired:
            del self._proposed_at[request_id]
            future = self._waiters.pop(request_id, None)
            if future is not None and not future.done():
                self.stats.proposals_failed_total += 1
                future.set_exception(self._timeout_error(started))

    async def linearizable_barrier(self) -> None:
        """Wait until this member has applied everything committed when the read arrived.

        Reads share ReadIndex rounds, as etcd's read loop does: every read that arrives while
        a round is out joins the next one (the round out may have taken its index before the
        read arrived, so it cannot serve it). One Raft round trip thus serves any number of
        concurrent reads, instead of one message to the leader per read.
        """
        if self._stopping:
            raise ErrStopped()
        loop = asyncio.get_running_loop()
        if self._next_round is None:
            self._next_round = loop.create_future()
            self._next_round.add_done_callback(_retrieve_exception)
            if self._read_rounds is None or self._read_rounds.done():
                self._read_rounds = loop.create_task(self._run_read_rounds(), name="read-rounds")
        try:
            await asyncio.wait_for(asyncio.shield(self._next_round), self.cluster.request_timeout_s)
        except TimeoutError:
            raise ErrTimeout() from None

    async def _run_read_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        last_start = float("-inf")
        while self._next_round is not None and not self._stopping:
            # Under load, let reads that are still being decoded join this round.
            wait = last_start + self.cluster.read_round_min_gap_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            last_start = loop.time()
            current, self._next_round = self._next_round, None
            try:
                await self._read_index_round()
            except EtcdError as error:
                if not current.done():
                    current.set_exception(error)
            else:
                if not current.done():
                    current.set_result(None)

    async def _read_index_round(self) -> None:
        """One ReadIndex: ask, then wait until the returned index is applied here."""
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
            self.stats.slow_read_indexes_total += 1
            raise ErrTimeout() from None
        await self.wait_applied(index)

    async def wait_applied(self, index: int) -> None:
        """Wait until this member has applied `index` (a ReadIndex round's index; a token
        issued through another member names the index that created it); ErrTimeout after the
        request timeout."""
        if self.store.applied_index >= index:
            return
        applied: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, applied))
        try:
            await asyncio.wait_for(applied, self.cluster.request_timeout_s)
        except TimeoutError:
            raise ErrTimeout() from None

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        started = time.monotonic()
        try:
            if not request.serializable:
                await self.linearizable_barrier()
            return self.applier.range(request)
        finally:
            self.stats.read_served_in(time.monotonic() - started)

    async def readonly_txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        started = time.monotonic()
        try:
            await self.linearizable_barrier()
            return self.applier.readonly_txn(request)
        finally:
            self.stats.read_served_in(time.monotonic() - started)

    # ---- what responses carry --------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.node.status().role is Role.LEADER

    @property
    def is_learner(self) -> bool:
        """Whether the member table lists this member as a learner (cheap: a dict lookup)."""
        own = self.membership.get(self.identity.member_id)
        return own is not None and own.isLearner

    def fill_header(self, header: pb.ResponseHeader) -> None:
        header.cluster_id = self.identity.cluster_id
        header.member_id = self.identity.member_id
        header.raft_term = self.term
        if header.revision == 0:
            header.revision = self.store.current_rev
