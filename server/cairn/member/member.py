"""One running member: orders requests into the log, makes them durable, applies them.

Until Raft lands this member is a one-voter cluster: every proposal it accepts is committed as
soon as it is in its own WAL. The shape is already Raft's: entries carry index and term, the hard
state (term, vote, commit) is saved with them, and apply happens strictly after the fdatasync
that makes an entry durable, so the Raft core of the next issue takes the place of the
"append and commit" step without changing the persistence or apply paths.

Group commit: proposals queue up while the previous batch is being fdatasync'd in a worker
thread; the next batch takes everything queued, so one fdatasync serves many requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from cairn.errors import ErrRequestTooLarge, ErrStopped, EtcdError
from cairn.member.applier import Applied, Applier
from cairn.member.config import MemberConfig
from cairn.member.identity import Identity
from cairn.member.request_ids import RequestIDs
from cairn.member.wal_writer import WALWriter
from cairn.mvcc.backend import Backend
from cairn.mvcc.revision import Revision
from cairn.mvcc.store import MVCCStore
from cairn.proto import rpc_pb2 as pb
from cairn.proto.internal_pb2 import InternalRequest
from cairn.wal import WAL, Entry, HardState, SnapshotMarker

log = logging.getLogger("cairn.member")

MAX_BATCH_ENTRIES = 4096
COMPACTION_CHUNK = 10_000


class MemberError(Exception):
    """The member cannot start or go on (bad data dir, mismatched configuration)."""


@dataclass(slots=True)
class _Proposal:
    request: InternalRequest
    data: bytes
    future: asyncio.Future[Applied]


class Member:
    """Owns the WAL, the store and the apply loop of one member."""

    def __init__(self, config: MemberConfig) -> None:
        self.config = config
        self.identity: Identity
        self.term = 0
        self.backend: Backend
        self.store: MVCCStore
        self.applier: Applier
        self._wal: WAL
        self._last_index = 0
        self._request_ids: RequestIDs
        self._queue: deque[_Proposal] = deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._wal_writer: WALWriter | None = None
        self._compactions: dict[int, asyncio.Event] = {}
        self._compaction_tasks: set[asyncio.Task[None]] = set()
        self._last_compaction: asyncio.Task[None] | None = None
        self._since_snapshot = 0
        self.failure: BaseException | None = None

    # ---- life cycle ------------------------------------------------------------------

    def open(self) -> None:
        """Open or create the data dir, replay the WAL above the applied index, start a term."""
        cfg = self.config
        self.backend = Backend(cfg.db_dir)
        self.store = MVCCStore(self.backend)
        self.applier = Applier(self.store)
        if WAL.exists(cfg.wal_dir):
            self._wal, replay = WAL.open(cfg.wal_dir, segment_bytes=cfg.wal_segment_bytes)
            self.identity = Identity.from_bytes(replay.metadata)
            if self.identity.name != cfg.name:
                raise MemberError(
                    f"data dir {cfg.data_dir} belongs to member {self.identity.name!r}, "
                    f"not {cfg.name!r} (--name)"
                )
            log.info(
                "restarting member %s (%x) of cluster %x from %s",
                self.identity.name,
                self.identity.member_id,
                self.identity.cluster_id,
                cfg.data_dir,
            )
            if replay.snapshot is not None and self.store.applied_index < replay.snapshot.index:
                raise MemberError(
                    f"the state in {cfg.db_dir} has applied index {self.store.applied_index}, "
                    f"but the WAL only holds entries after its snapshot at index "
                    f"{replay.snapshot.index}: acknowledged writes would be missing, so the "
                    "member refuses to start (restore the data dir from a snapshot backup, or "
                    "remove it and rejoin the member)"
                )
            hard_state = replay.hard_state or HardState(0, 0, 0)
            self.term = hard_state.term
            self._replay(replay.entries)
        else:
            if cfg.name not in cfg.initial_cluster:
                raise MemberError(
                    f"couldn't find local name {cfg.name!r} in the initial cluster configuration"
                )
            if len(cfg.initial_cluster) > 1:
                raise MemberError(
                    "this cairn build runs a one-member cluster (clustering arrives with Raft); "
                    f"--initial-cluster names {len(cfg.initial_cluster)} members"
                )
            self.identity = Identity.bootstrap(
                cfg.name, cfg.initial_cluster, cfg.initial_cluster_token
            )
            log.info(
                "starting a new member %s (%x) of cluster %x in %s",
                cfg.name,
                self.identity.member_id,
                self.identity.cluster_id,
                cfg.data_dir,
            )
            self._wal = WAL.create(
                cfg.wal_dir, self.identity.to_bytes(), segment_bytes=cfg.wal_segment_bytes
            )
            self.term = 1  # the bootstrap term, as a fresh Raft group has
        if self.store.applied_index > self._wal.last_index:
            # The WAL lost a tail the state had already applied (a torn write was cut off, or
            # someone cut the file): make the state durable and let a snapshot marker carry
            # the log forward, so the next entry continues after the applied index.
            self.backend.sync_barrier()
            self._wal.save_snapshot(
                SnapshotMarker(index=self.store.applied_index, term=max(self.term, 1))
            )
        self._request_ids = RequestIDs(self.identity.member_id)
        # Winning the (uncontested) election starts a new term, exactly as etcd's single
        # member does, so the term a client sees moves the same way.
        self._last_index = max(self._wal.last_index, self.store.applied_index)
        self.term += 1
        self._wal.save(
            [], HardState(term=self.term, vote=self.identity.member_id, commit=self._last_index)
        )
        log.info(
            "member %x is leader at term %d; applied index %d, revision %d",
            self.identity.member_id,
            self.term,
            self.store.applied_index,
            self.store.current_rev,
        )

    def _replay(self, entries: list[Entry]) -> None:
        """Re-apply durable entries the LevelDB state had not recorded yet."""
        todo = [e for e in entries if e.index > self.store.applied_index]
        if entries and entries[-1].index < self.store.applied_index:
            log.warning(
                "the WAL ends at index %d but the state has applied up to %d; "
                "the WAL lost its tail (see the lines above)",
                entries[-1].index,
                self.store.applied_index,
            )
        for entry in todo:
            request = InternalRequest.FromString(entry.data)
            try:
                applied = self.applier.apply(request)
            except EtcdError:
                continue
            if applied.compaction is not None:
                self.store.flush(entry.index)
                self._delete_compacted_now(*applied.compaction)
        if todo:
            self.store.flush(todo[-1].index)
            log.info(
                "replayed %d WAL entries (%d..%d); revision %d",
                len(todo),
                todo[0].index,
                todo[-1].index,
                self.store.current_rev,
            )

    def start(self) -> None:
        """Start the apply loop on the running event loop."""
        loop = asyncio.get_running_loop()
        self._wal_writer = WALWriter(self._wal, loop)
        self._loop_task = loop.create_task(self._run())
        self._loop_task.add_done_callback(self._on_loop_done)

    def _on_loop_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.failure = error
            log.critical("the apply loop failed; the member stops: %r", error, exc_info=error)
            self._stopping = True
            self._fail_queued(ErrStopped())

    async def stop(self) -> None:
        """Refuse new proposals, finish the queued ones, and close the files."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=10)
            except (TimeoutError, Exception):
                self._loop_task.cancel()
        for task in list(self._compaction_tasks):
            task.cancel()
        self._fail_queued(ErrStopped())
        if self._wal_writer is not None:
            self._wal_writer.close()
        self._wal.close()
        self.backend.close()
        log.info("member %x stopped; last index %d", self.identity.member_id, self._last_index)

    def _fail_queued(self, error: EtcdError) -> None:
        while self._queue:
            proposal = self._queue.popleft()
            if not proposal.future.done():
                proposal.future.set_exception(error)

    # ---- requests --------------------------------------------------------------------

    async def propose(self, request: InternalRequest) -> Applied:
        """Make a write durable and applied; raises the EtcdError its apply raised."""
        if self._stopping:
            raise ErrStopped()
        request.header.ID = self._request_ids.next()
        data = request.SerializeToString()
        if len(data) > self.config.max_request_bytes:
            raise ErrRequestTooLarge()
        future: asyncio.Future[Applied] = asyncio.get_running_loop().create_future()
        self._queue.append(_Proposal(request, data, future))
        self._wake.set()
        return await future

    async def range(self, request: pb.RangeRequest) -> pb.RangeResponse:
        """Reads see every write acknowledged before them: acks happen only after apply."""
        return self.applier.range(request)

    async def readonly_txn(self, request: pb.TxnRequest) -> pb.TxnResponse:
        return self.applier.readonly_txn(request)

    async def wait_compaction(self, rev: int) -> None:
        """Wait until the history a compaction dropped is physically gone."""
        done = self._compactions.get(rev)
        if done is not None:
            await done.wait()

    # ---- the loop --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH_ENTRIES))]
            first = self._last_index + 1
            entries = [
                Entry(index=first + i, term=self.term, data=p.data) for i, p in enumerate(batch)
            ]
            last = entries[-1].index
            hard_state = HardState(term=self.term, vote=self.identity.member_id, commit=last)
            try:
                assert self._wal_writer is not None
                await self._wal_writer.save(entries, hard_state)
                self._last_index = last
                self._apply_batch(batch, last)
            except BaseException:
                # Nothing in this batch may be acknowledged; the member is going down.
                for proposal in batch:
                    if not proposal.future.done():
                        proposal.future.set_exception(ErrStopped())
                raise

    def _apply_batch(self, batch: list[_Proposal], last_index: int) -> None:
        outcomes: list[Applied | EtcdError] = []
        compactions: list[tuple[int, list[Revision]]] = []
        for proposal in batch:
            try:
                applied = self.applier.apply(proposal.request)
            except EtcdError as error:
                outcomes.append(error)
                continue
            outcomes.append(applied)
            if applied.compaction is not None:
                compactions.append(applied.compaction)
        self.store.flush(last_index)
        for rev, obsolete in compactions:
            self._schedule_compaction(rev, obsolete)
        for proposal, outcome in zip(batch, outcomes, strict=True):
            if proposal.future.done():
                continue
            if isinstance(outcome, EtcdError):
                proposal.future.set_exception(outcome)
            else:
                proposal.future.set_result(outcome)
        self._since_snapshot += len(batch)
        if self._since_snapshot >= self.config.snapshot_count:
            self._snapshot(last_index)

    def _snapshot(self, index: int) -> None:
        """Make the applied state durable on its own, so older WAL segments can go."""
        self.backend.sync_barrier()
        self._wal.save_snapshot(SnapshotMarker(index=index, term=self.term))
        self._wal.release_before(index + 1)
        self._since_snapshot = 0
        log.info("snapshot at index %d: state synced, older WAL segments released", index)

    # ---- compaction ------------------------------------------------------------------

    def _schedule_compaction(self, rev: int, obsolete: list[Revision]) -> None:
        done = asyncio.Event()
        self._compactions[rev] = done
        previous = self._last_compaction
        task = asyncio.get_running_loop().create_task(
            self._delete_compacted(rev, obsolete, done, previous)
        )
        self._last_compaction = task
        self._compaction_tasks.add(task)
        task.add_done_callback(self._compaction_tasks.discard)

    async def _delete_compacted(
        self,
        rev: int,
        obsolete: list[Revision],
        done: asyncio.Event,
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Delete in chunks, yielding between them so requests keep flowing.

        Compactions finish in order: recording a later one as finished while an earlier one
        still has records to delete would make a restart forget those records.
        """
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        for start in range(0, len(obsolete), COMPACTION_CHUNK):
            self.store.delete_history(obsolete[start : start + COMPACTION_CHUNK])
            await asyncio.sleep(0)
        self.store.finish_compaction(rev)
        done.set()
        log.info("finished compaction at revision %d: %d records removed", rev, len(obsolete))

    def _delete_compacted_now(self, rev: int, obsolete: list[Revision]) -> None:
        self.store.delete_history(obsolete)
        self.store.finish_compaction(rev)

    # ---- what responses carry --------------------------------------------------------

    def fill_header(self, header: pb.ResponseHeader) -> None:
        header.cluster_id = self.identity.cluster_id
        header.member_id = self.identity.member_id
        header.raft_term = self.term
        if header.revision == 0:
            header.revision = self.store.current_rev
