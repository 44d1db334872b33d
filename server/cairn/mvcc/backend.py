"""LevelDB (plyvel) as cairn's backend: one database, one key prefix per kind of state.

Writes are never synced here: the WAL is the durability point, and the applied index stored in
the same WriteBatch as the changes tells the member where WAL replay must resume. The one
exception is `sync_barrier()`, used before WAL segments are released.

Encryption at rest: with a keyring that has an active key, every value under a SEALED prefix
(the history: each record holds a user key and its value) is sealed on its way in and opened
on its way out, with the LevelDB key as associated data, so the rest of the store only ever
sees plaintext. Other prefixes (meta counters, leases, members, alarms) hold no user data and
stay in clear, as do the LevelDB keys (revisions). `copy_to` and the raw `db` handle see
records as stored; `reseal` is the step the background re-encryption repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TypeAlias, TypeVar

import google_crc32c
import plyvel

from cairn.sealing import Keyring, is_sealed, key_id_of

HISTORY = b"r"  # revision -> record (kind byte + mvccpb.KeyValue)
META = b"m"  # name -> value
MEMBERS = b"c"  # member ID (8 bytes, big-endian) -> member record (cairn.member.membership)
ALARMS = b"a"  # member ID (8 bytes, big-endian) + alarm type (4 bytes, big-endian) -> b""
AUTH = b"u"  # users, roles, enabled flag, auth revision (cairn.member.auth_store)
LEASES = b"l"  # lease ID (8 bytes, big-endian, signed) -> cairnpb.LeaseRecord (cairn.mvcc.lease)

SEALED = HISTORY  # the prefix whose values are sealed when a key is active

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


# Records hashed between two yields to the event loop: about a millisecond of work, so a
# hash of millions of records never holds up heartbeats or requests for long.
HASH_CHUNK_RECORDS = 1000

# A hash done in steps: yields between chunks of records, returns the result.
T = TypeVar("T")
HashSteps: TypeAlias = Generator[None, None, T]


def meta_key(name: str) -> bytes:
    return META + name.encode()


class HashInterrupted(Exception):
    """What a hash in progress reads changed under it: its result would mix two states.

    Raised at a step boundary when the database was replaced (an image swapped in, a
    defragmentation, the member stopping) or, for HashKV, a compaction was applied. The
    caller may start again on the state as it is now.
    """


def run_steps(steps: HashSteps[T]) -> T:
    """All of a stepped hash at once, without yielding (for callers off the event loop)."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()


async def run_steps_yielding(steps: HashSteps[T]) -> T:
    """A stepped hash that lets every other task run between two chunks."""
    try:
        while True:
            next(steps)
            await asyncio.sleep(0)
    except StopIteration as done:
        return done.value
    finally:
        steps.close()


class Backend:
    """The LevelDB handle plus the few access patterns the store needs."""

    def __init__(self, path: str, keyring: Keyring | None = None) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.keyring = keyring if keyring is not None else Keyring.empty()
        self.db = plyvel.DB(path, create_if_missing=True)

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    def open_value(self, key: bytes, value: bytes) -> bytes:
        """A stored value as plaintext (a sealed one opened with the key its header names)."""
        if is_sealed(value) and key[:1] == SEALED:
            return self.keyring.open(value, key)
        return value

    def seal_value(self, key: bytes, value: bytes) -> bytes:
        """A plaintext value as it is stored: sealed with the active key under SEALED."""
        if key[:1] == SEALED and self.keyring.active is not None:
            return self.keyring.seal(value, key)
        return value

    def get(self, key: bytes) -> bytes | None:
        value = self.db.get(key)
        return None if value is None else self.open_value(key, value)

    def get_int(self, name: str, default: int = 0) -> int:
        raw = self.db.get(meta_key(name))
        return default if raw is None else _I64.unpack(raw)[0]

    def get_bytes(self, name: str) -> bytes | None:
        return self.db.get(meta_key(name))

    @staticmethod
    def encode_int(value: int) -> bytes:
        return _I64.pack(value)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key without prefix, value) under `prefix`, in key order."""
        n = len(prefix)
        for key, value in self.db.iterator(prefix=prefix):
            yield key[n:], self.open_value(key, value)

    def iterate(self, start: bytes, stop: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, plaintext value) with start <= key < stop, in key order."""
        for key, value in self.db.iterator(start=start, stop=stop):
            yield key, self.open_value(key, value)

    def write_batch(
        self, puts: dict[bytes, bytes], deletes: Sequence[bytes] = (), sync: bool = False
    ) -> None:
        with self.db.write_batch(sync=sync) as batch:
            for key in deletes:
                batch.delete(key)
            if self.keyring.active is None:
                for key, value in puts.items():
                    batch.put(key, value)
            else:
                for key, value in puts.items():
                    batch.put(key, self.seal_value(key, value))

    def sync_barrier(self) -> None:
        """Make every earlier unsynced write durable (a synced write flushes LevelDB's log)."""
        self.db.put(meta_key("sync_barrier"), b"", sync=True)

    def hash_all(self) -> int:
        """CRC-32C (Castagnoli) over every record, key then value, in key order.

        What Maintenance.Hash answers: etcd hashes its whole bolt file there, cairn every
        LevelDB record. It covers per-member state too (applied index, member table), so like
        etcd's it is only comparable between members that applied exactly the same entries;
        HashKV is the cross-member check. Sealed values are hashed as plaintext (a seal
        carries a random nonce, so the stored bytes differ on every write).
        """
        return run_steps(self.hash_all_steps())

    def hash_all_steps(self, chunk_records: int = HASH_CHUNK_RECORDS) -> HashSteps[int]:
        """hash_all in steps of `chunk_records`, read from a LevelDB snapshot taken at the
        first step: writes between steps do not change the result, a replaced database
        raises HashInterrupted."""
        db = self.db
        crc = google_crc32c.Checksum()
        in_chunk = 0
        with self.reading_snapshot(db) as snapshot, snapshot.iterator() as records:
            for key, value in records:
                crc.update(key)
                crc.update(self.open_value(key, value))
                in_chunk += 1
                if in_chunk >= chunk_records:
                    in_chunk = 0
                    yield
                    self.check_same_db(db)
            return int.from_bytes(crc.digest(), "big")

    @contextlib.contextmanager
    def reading_snapshot(self, db: plyvel.DB) -> Iterator[plyvel.Snapshot]:
        """A LevelDB snapshot of `db`, released afterwards (if `db` is still open)."""
        snapshot = db.snapshot()
        try:
            yield snapshot
        finally:
            with contextlib.suppress(RuntimeError):  # closed with its database
                snapshot.close()

    def check_same_db(self, db: plyvel.DB) -> None:
        """Raise HashInterrupted unless `db` is still this backend's open database."""
        if self.db is not db or db.closed:
            raise HashInterrupted("the database was replaced or closed")

    def copy_to(self, path: str, batch_bytes: int = 4 * 1024 * 1024) -> None:
        """Write every record into a fresh LevelDB at `path`, synced: a defragmented copy.

        LevelDB's own compact_range() is no defragmenter: it never rewrites the files of the
        deepest level that holds data, and a memtable flush often puts a whole small database
        there, deleted records included (checked with plyvel 1.5: 22 deleted 20 kB values
        stay on disk through any number of compact_range calls). A copy holds only the
        live records, which is also what etcd's defragmentation does with its bolt file.
        Records are copied as stored: sealed ones stay sealed with the keys they had.
        """
        target = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
        try:
            batch = target.write_batch()
            size = 0
            for key, value in self.db.iterator():
                batch.put(key, value)
                size += len(key) + len(value)
                if size >= batch_bytes:
                    batch.write()
                    batch, size = target.write_batch(), 0
            batch.write()
            target.put(meta_key("sync_barrier"), b"", sync=True)
        finally:
            target.close()

    def survey(self, after: bytes, limit: int) -> tuple[bytes | None, Counter[str | None]]:
        """How many of the next `limit` sealable records after `after` each key sealed.

        Counts by key id (None: stored in clear); returns the last key looked at, or None at
        the end. Headers only: nothing is decrypted.
        """
        counts: Counter[str | None] = Counter()
        last = None
        for key, value in self._after(after, limit):
            counts[key_id_of(value) if is_sealed(value) else None] += 1
            last = key
        return last, counts

    def reseal(self, after: bytes, limit: int) -> tuple[bytes | None, Counter[str | None]]:
        """Re-seal, with the active key (or store in clear), the next `limit` sealable
        records after `after` that another key (or none) sealed: one re-encryption step.

        Returns the last key looked at (None at the end) and how many records of each old
        key id were rewritten. The read and the write happen in one call on the event loop,
        so nothing (a compaction deleting a record) can come in between and be undone.
        """
        active = self.keyring.active
        rewritten: Counter[str | None] = Counter()
        last = None
        puts: dict[bytes, bytes] = {}
        for key, value in self._after(after, limit):
            last = key
            sealed_by = key_id_of(value) if is_sealed(value) else None
            if sealed_by != active:
                puts[key] = self.seal_value(key, self.open_value(key, value))
                rewritten[sealed_by] += 1
        if puts:
            with self.db.write_batch() as batch:
                for key, value in puts.items():
                    batch.put(key, value)
        return last, rewritten

    def _after(self, after: bytes, limit: int) -> Iterator[tuple[bytes, bytes]]:
        """Up to `limit` raw records under SEALED with keys greater than `after`."""
        start = max(after, SEALED)
        stop = bytes((SEALED[0] + 1,))
        for key, value in self.db.iterator(start=start, stop=stop):
            if key == after:
                continue
            yield key, value
            limit -= 1
            if limit <= 0:
                break

    def reopen(self, swap: Callable[[], None]) -> None:
        """Close the database, let `swap` replace its directory, and open it again.

        Everything that holds this Backend (the store, the lease store, the member table)
        keeps working on the new files; LevelDB snapshots and iterators of the old ones
        must not be in use.
        """
        self.db.close()
        swap()
        self.db = plyvel.DB(self.path)

    def size_in_use(self) -> int:
        """An estimate of the live data: LevelDB's approximate table size over the whole key
        space, plus the unflushed write-ahead log, capped at the size on disk.

        The table part still counts overwritten and deleted records until LevelDB compacts
        them (after Defragment's copy there are none), and the log part counts every record
        written since the last flush of the memtable: an estimate, not an exact live size.
        """
        tables = self.db.approximate_size(b"", b"\xff")
        logs = sum(
            entry.stat().st_size
            for entry in os.scandir(self.path)
            if entry.is_file() and entry.name.endswith(".log")
        )
        return min(tables + logs, self.size_on_disk())

    def size_on_disk(self) -> int:
        total = 0
        for entry in os.scandir(self.path):
            if entry.is_file():
                total += entry.stat().st_size
        return total
