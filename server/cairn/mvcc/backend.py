"""LevelDB (plyvel) as cairn's backend: one database, one key prefix per kind of state.

Writes are never synced here: the WAL is the durability point, and the applied index stored in
the same WriteBatch as the changes tells the member where WAL replay must resume. The one
exception is `sync_barrier()`, used before WAL segments are released.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator, Sequence

import google_crc32c
import plyvel

HISTORY = b"r"  # revision -> record (kind byte + mvccpb.KeyValue)
META = b"m"  # name -> value
MEMBERS = b"c"  # member ID (8 bytes, big-endian) -> member record (cairn.member.membership)
ALARMS = b"a"  # member ID (8 bytes, big-endian) + alarm type (4 bytes, big-endian) -> b""
AUTH = b"u"  # users, roles, enabled flag, auth revision (cairn.member.auth_store)
LEASES = b"l"  # lease ID (8 bytes, big-endian, signed) -> cairnpb.LeaseRecord (cairn.mvcc.lease)

_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


def meta_key(name: str) -> bytes:
    return META + name.encode()


class Backend:
    """The LevelDB handle plus the few access patterns the store needs."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.db = plyvel.DB(path, create_if_missing=True)

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key)

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
            yield key[n:], value

    def write_batch(
        self, puts: dict[bytes, bytes], deletes: Sequence[bytes] = (), sync: bool = False
    ) -> None:
        with self.db.write_batch(sync=sync) as batch:
            for key in deletes:
                batch.delete(key)
            for key, value in puts.items():
                batch.put(key, value)

    def sync_barrier(self) -> None:
        """Make every earlier unsynced write durable (a synced write flushes LevelDB's log)."""
        self.db.put(meta_key("sync_barrier"), b"", sync=True)

    def hash_all(self) -> int:
        """CRC-32C (Castagnoli) over every record, key then value, in key order.

        What Maintenance.Hash answers: etcd hashes its whole bolt file there, cairn every
        LevelDB record. It covers per-member state too (applied index, member table), so like
        etcd's it is only comparable between members that applied exactly the same entries;
        HashKV is the cross-member check.
        """
        crc = google_crc32c.Checksum()
        for key, value in self.db.iterator():
            crc.update(key)
            crc.update(value)
        return int.from_bytes(crc.digest(), "big")

    def copy_to(self, path: str, batch_bytes: int = 4 * 1024 * 1024) -> None:
        """Write every record into a fresh LevelDB at `path`, synced: a defragmented copy.

        LevelDB's own compact_range() is no defragmenter: it never rewrites the files of the
        deepest level that holds data, and a memtable flush often puts a whole small database
        there, deleted records included (checked with plyvel 1.5: 22 deleted 20 kB values
        stay on disk through any number of compact_range calls). A copy holds only the
        live records, which is also what etcd's defragmentation does with its bolt file.
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
