"""The MVCC store: every change is a new revision; reads may ask for any uncompacted revision.

History records live in LevelDB under the HISTORY prefix keyed by revision; the in-memory
KeyIndex maps keys to the revisions that touched them. Writes go through a WriteTxn, which
changes the index at once (so later operations of the same txn see earlier ones, as etcd's do)
and stages the records in memory; `flush()` then writes everything staged since the last flush,
with the applied index, as one LevelDB WriteBatch. The member flushes once per group of
committed entries, so a crash leaves LevelDB at a group boundary and WAL replay resumes from
the recorded applied index.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import NamedTuple

import google_crc32c

from cairn.errors import ErrCompacted, ErrFutureRev
from cairn.mvcc.backend import (
    HASH_CHUNK_RECORDS,
    HISTORY,
    Backend,
    HashInterrupted,
    HashSteps,
    meta_key,
    run_steps,
)
from cairn.mvcc.keyindex import KeyCheckpoint, KeyIndex
from cairn.mvcc.lease import LeaseStore
from cairn.mvcc.revision import Revision
from cairn.proto.kv_pb2 import Event, KeyValue

log = logging.getLogger("cairn.mvcc")

RECORD_PUT = b"p"
RECORD_TOMBSTONE = b"t"

# Meta names written by the store.
META_CURRENT_REV = "current_rev"
META_APPLIED_INDEX = "applied_index"
META_SCHEDULED_COMPACT = "scheduled_compact_rev"
META_FINISHED_COMPACT = "finished_compact_rev"


@dataclass(slots=True)
class RangeResult:
    """Values found (after limit), how many keys matched in all, and the store revision."""

    kvs: list[KeyValue]
    count: int
    rev: int


class KVHash(NamedTuple):
    """A HashKV answer: the hash, the compacted revision it was taken under, and the
    revision it covers (the current one when 0 was asked for)."""

    hash: int
    compact_revision: int
    revision: int


@dataclass(slots=True)
class TxnChanges:
    """What one WriteTxn did, in order: the events a watcher of this revision will see."""

    rev: int
    events: list[Event] = field(default_factory=list)


@dataclass
class OpCounters:
    """Operations this member's store served, counted the way etcd's mvcc metrics count them.

    Each range, put and delete-range call counts once; a transaction that did more than one
    operation also counts as a txn (etcd counts a plain Put as a put, not a txn). Kept by the
    member across store swaps, so the totals never go backwards.
    """

    ranges: int = 0
    puts: int = 0
    deletes: int = 0
    txns: int = 0
    compacted_keys: int = 0


class MVCCStore:
    """Revisioned key-value state on a Backend."""

    def __init__(self, backend: Backend, counters: OpCounters | None = None) -> None:
        self.backend = backend
        self.counters = counters if counters is not None else OpCounters()
        self.index = KeyIndex()
        self.current_rev = 1
        self.compact_rev = -1
        self.applied_index = 0
        self._staged: dict[bytes, bytes] = {}
        self._staged_meta: dict[str, int] = {}
        self._staged_raw: dict[bytes, bytes] = {}
        self._staged_deletes: set[bytes] = set()
        self.leases: LeaseStore
        self._restore()

    @property
    def closed(self) -> bool:
        """Whether the LevelDB underneath was closed (the member stopped or swapped it)."""
        return bool(self.backend.db.closed)

    # ---- start-up ----------------------------------------------------------------------

    def _restore(self) -> None:
        """Rebuild the key index from history and finish a compaction a crash interrupted."""
        last_rev = 1
        records = 0
        # The lease each live key's latest value names: what the lease store attaches.
        attached: dict[bytes, int] = {}
        for raw_rev, record in self.backend.scan(HISTORY):
            rev = Revision.from_bytes(raw_rev)
            kv = KeyValue.FromString(record[1:])
            tombstone = record[:1] == RECORD_TOMBSTONE
            self.index.restore(kv.key, rev, tombstone, kv.create_revision, kv.version)
            if tombstone or not kv.lease:
                attached.pop(kv.key, None)
            else:
                attached[kv.key] = kv.lease
            last_rev = rev.main
            records += 1
        self.leases = LeaseStore(self.backend, self, attached)
        self.current_rev = max(last_rev, self.backend.get_int(META_CURRENT_REV, 1))
        self.applied_index = self.backend.get_int(META_APPLIED_INDEX, 0)
        scheduled = self.backend.get_int(META_SCHEDULED_COMPACT, -1)
        finished = self.backend.get_int(META_FINISHED_COMPACT, -1)
        if scheduled > finished:
            log.info("finishing an interrupted compaction at revision %d", scheduled)
            self.delete_history(self.index.compact(scheduled))
            self.finish_compaction(scheduled)
        self.compact_rev = max(scheduled, finished)
        log.debug(
            "restored %d history records, %d keys, revision %d, compacted %d, applied index %d",
            records,
            len(self.index),
            self.current_rev,
            self.compact_rev,
            self.applied_index,
        )

    # ---- reads -------------------------------------------------------------------------

    def range(
        self,
        key: bytes,
        end: bytes | None,
        rev: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> RangeResult:
        """Keys in [key, end) as of `rev` (0: the current revision); see KeyIndex.keys_in."""
        self.counters.ranges += 1
        return self._range(key, end, rev, limit, count_only, self.current_rev)

    def _range(
        self, key: bytes, end: bytes | None, rev: int, limit: int, count_only: bool, cur_rev: int
    ) -> RangeResult:
        if rev > cur_rev:
            raise ErrFutureRev()
        if rev <= 0:
            rev = cur_rev
        if rev < self.compact_rev:
            raise ErrCompacted()
        found = list(self.index.revisions(key, end, rev))
        if count_only:
            return RangeResult([], len(found), cur_rev)
        wanted = found if limit <= 0 else found[:limit]
        return RangeResult([self._load(r) for _, r in wanted], len(found), cur_rev)

    def _load(self, rev: Revision) -> KeyValue:
        raw_rev = rev.to_bytes()
        record = self._staged.get(raw_rev)
        if record is None:
            record = self.backend.get(HISTORY + raw_rev)
            if record is None:
                raise RuntimeError(f"history record for revision {rev} is missing from the backend")
        return KeyValue.FromString(record[1:])

    def hash_kv(self, rev: int) -> KVHash:
        """HashKV at `rev` in one go (see hash_kv_steps): for callers off the event loop."""
        return run_steps(self.hash_kv_steps(rev))

    def hash_kv_steps(self, rev: int, chunk_records: int = HASH_CHUNK_RECORDS) -> HashSteps[KVHash]:
        """CRC-32C over the history records a read at `rev` may use, in steps.

        `rev` 0 means the current revision; as in etcd, a revision at or below the compacted
        one is refused (ErrCompacted) and one above the current revision too (ErrFutureRev).
        Every record with main revision <= `rev` is hashed, LevelDB key (the revision) then
        value, in revision order, except records a compaction already dropped from the key
        index but the deleter has not removed yet: so the hash does not depend on how far the
        physical deletion got, and every member that applied the same entries (or received
        them in a snapshot image) gives the same value. That equality is what
        `etcdctl endpoint hashkv --cluster` checks.

        The generator yields after every `chunk_records` records, so a member can hash
        millions of records without stalling its heartbeats (run_steps_yielding). The
        records come from a LevelDB snapshot taken at the first step, so writes in between
        change nothing. Two things would: a compaction (it changes which old records the key
        index still holds, and may compact `rev` itself) and a replaced database (an image
        swapped in, a defragmentation); either raises HashInterrupted at the next step, and
        the caller starts again on the state as it is then.
        """
        compact_rev = self.compact_rev
        if rev > 0 and rev <= compact_rev:
            raise ErrCompacted()
        if rev > self.current_rev:
            raise ErrFutureRev()
        if rev <= 0:
            rev = self.current_rev
        db = self.backend.db
        # Seeded with the name of what is hashed, so an empty history does not hash to 0
        # (which proto3 would leave out of the response, and etcdctl out of its JSON).
        crc = google_crc32c.Checksum(b"history")
        upper = HISTORY + Revision(rev + 1, 0).to_bytes()
        in_chunk = 0
        with (
            self.backend.reading_snapshot(db) as snapshot,
            snapshot.iterator(start=HISTORY, stop=upper) as records,
        ):
            for key, stored in records:
                raw_rev = key[len(HISTORY) :]
                record = self.backend.open_value(key, stored)
                revision = Revision.from_bytes(raw_rev)
                if revision.main > compact_rev or self.index.holds(
                    KeyValue.FromString(record[1:]).key, revision
                ):
                    crc.update(raw_rev)
                    crc.update(record)
                in_chunk += 1
                if in_chunk >= chunk_records:
                    in_chunk = 0
                    yield
                    self.backend.check_same_db(db)
                    if self.compact_rev != compact_rev:
                        raise HashInterrupted(f"a compaction at revision {self.compact_rev}")
        return KVHash(int.from_bytes(crc.digest(), "big"), compact_rev, rev)

    # ---- writes ------------------------------------------------------------------------

    def write(self) -> WriteTxn:
        """Start a write transaction: all its changes share one main revision."""
        return WriteTxn(self)

    def flush(self, applied_index: int) -> None:
        """Write everything staged, plus the applied index, as one LevelDB batch."""
        puts = {HISTORY + raw_rev: record for raw_rev, record in self._staged.items()}
        self._staged_meta[META_CURRENT_REV] = self.current_rev
        self._staged_meta[META_APPLIED_INDEX] = applied_index
        for name, value in self._staged_meta.items():
            puts[meta_key(name)] = Backend.encode_int(value)
        puts.update(self._staged_raw)
        self.backend.write_batch(puts, sorted(self._staged_deletes))
        self._staged.clear()
        self._staged_meta.clear()
        self._staged_raw.clear()
        self._staged_deletes.clear()
        self.applied_index = applied_index

    def stage_raw(self, key: bytes, value: bytes) -> None:
        """Write a non-MVCC record (e.g. the member table) in the next flush's batch.

        State applied from a log entry must land in the same batch as the applied index that
        covers it, or a crash between two batches would skip or repeat it on replay.
        """
        self._staged_deletes.discard(key)
        self._staged_raw[key] = value

    def stage_delete(self, key: bytes) -> None:
        """Delete a non-MVCC record (a revoked lease) in the next flush's batch.

        A put of the same key staged earlier in the group is dropped: the batch applies
        deletes before puts, so keeping both would resurrect the record.
        """
        self._staged_raw.pop(key, None)
        self._staged_deletes.add(key)

    # ---- compaction --------------------------------------------------------------------

    def compact(self, rev: int) -> list[Revision]:
        """Drop history below `rev` from the index; returns the records to delete later.

        The deletion itself must wait until the current group is flushed (a record being
        dropped may still be staged), so the caller passes the result to delete_history().
        """
        if rev <= self.compact_rev:
            raise ErrCompacted()
        if rev > self.current_rev:
            raise ErrFutureRev()
        obsolete = self.index.compact(rev)
        self.compact_rev = rev
        self._staged_meta[META_SCHEDULED_COMPACT] = rev
        return obsolete

    def delete_history(self, revs: list[Revision]) -> None:
        """Physically remove history records (one batch; callers chunk large lists)."""
        if revs:
            self.counters.compacted_keys += len(revs)
            self.backend.write_batch({}, [HISTORY + r.to_bytes() for r in revs])

    def finish_compaction(self, rev: int) -> None:
        self.backend.write_batch({meta_key(META_FINISHED_COMPACT): Backend.encode_int(rev)})


class WriteTxn:
    """One write request or txn; every change in it gets main revision begin_rev + 1."""

    def __init__(self, store: MVCCStore) -> None:
        self._store = store
        self.begin_rev = store.current_rev
        self.changes = TxnChanges(store.current_rev + 1)
        self._checkpoints: dict[bytes, KeyCheckpoint] = {}
        self._staged_revs: list[bytes] = []
        self._ops = OpCounters()  # added to the store's counters by end()

    def _touch(self, key: bytes) -> None:
        if key not in self._checkpoints:
            self._checkpoints[key] = self._store.index.checkpoint(key)

    def _stage(self, rev: Revision, record: bytes) -> None:
        raw_rev = rev.to_bytes()
        self._staged_revs.append(raw_rev)
        self._store._staged[raw_rev] = record

    def abort(self) -> None:
        """Undo everything this txn did: a request that fails half-way changes nothing."""
        for checkpoint in self._checkpoints.values():
            self._store.index.rollback(checkpoint)
        for raw_rev in self._staged_revs:
            self._store._staged.pop(raw_rev, None)
        self._checkpoints.clear()
        self._staged_revs.clear()
        self.changes.events.clear()

    @property
    def rev(self) -> int:
        """The revision this txn's reads see: its own changes count once there are any."""
        return self.begin_rev + 1 if self.changes.events else self.begin_rev

    def range(
        self,
        key: bytes,
        end: bytes | None,
        rev: int = 0,
        limit: int = 0,
        count_only: bool = False,
    ) -> RangeResult:
        self._ops.ranges += 1
        return self._store._range(key, end, rev, limit, count_only, self.rev)

    def put(self, key: bytes, value: bytes, lease: int) -> KeyValue:
        self._ops.puts += 1
        rev = Revision(self.begin_rev + 1, len(self.changes.events))
        self._touch(key)
        created, version = self._store.index.put(key, rev)
        kv = KeyValue(
            key=key,
            value=value,
            create_revision=created.main,
            mod_revision=rev.main,
            version=version,
            lease=lease,
        )
        self._stage(rev, RECORD_PUT + kv.SerializeToString())
        self.changes.events.append(Event(type=Event.PUT, kv=kv))
        return kv

    def delete_range(self, key: bytes, end: bytes | None) -> int:
        """Tombstone every live key in range; returns how many."""
        self._ops.deletes += 1
        doomed = [k for k, _ in self._store.index.revisions(key, end, self.rev)]
        for k in doomed:
            rev = Revision(self.begin_rev + 1, len(self.changes.events))
            self._touch(k)
            self._store.index.tombstone(k, rev)
            marker = KeyValue(key=k, mod_revision=rev.main)
            self._stage(rev, RECORD_TOMBSTONE + marker.SerializeToString())
            self.changes.events.append(Event(type=Event.DELETE, kv=marker))
        return len(doomed)

    def end(self) -> TxnChanges:
        """Make the txn's revision the store's current one (if it changed anything).

        Lease attachments follow the committed events here, once: a txn that aborted never
        reaches end(), so there is nothing to undo in the lease store.
        """
        if self.changes.events:
            self._store.current_rev = self.begin_rev + 1
            self._store.leases.follow(self.changes.events)
        ops, counters = self._ops, self._store.counters
        counters.ranges += ops.ranges
        counters.puts += ops.puts
        counters.deletes += ops.deletes
        if ops.ranges + ops.puts + ops.deletes > 1:
            counters.txns += 1
        return self.changes
