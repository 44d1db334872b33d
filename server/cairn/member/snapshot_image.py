"""The LevelDB image a leader streams to a follower that is too far behind for the log.

Format (all integers big-endian)::

    header   b"CAIRNIMG" | u32 version (1) | u64 record count
    record   u32 key length | u32 value length | key | value      (count times, key order)
    trailer  u32 CRC-32 of every record byte

The image is read from a plyvel snapshot handle taken right after the applied index reached
the Raft snapshot index, so it is exactly the state at that index. It is produced twice over
the same handle: once to learn the total length (the transport announces it up front, so a
cut-off transfer is never mistaken for a whole one) and once to stream it. The receiver checks
the count and the CRC before anything is installed.

Values travel in plaintext: each member seals with its own keys (`--encryption-key-file`), so
the sender opens sealed records as it reads them (`open_value`) and the receiver seals them
with its active key as it writes them (`seal_value`). The peer transport's TLS protects them
in flight, as it protects the log entries.

Keys under `EXCLUDED_PREFIXES` are the sender's own Raft bookkeeping (its conf-state record)
and are never copied: the receiver writes its own for the snapshot it installs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import plyvel

from cairn.wal.segment import fsync_dir

MAGIC = b"CAIRNIMG"
VERSION = 1
_HEADER = struct.Struct(">8sIQ")
_RECORD = struct.Struct(">II")
_TRAILER = struct.Struct(">I")
CHUNK_BYTES = 256 * 1024
_BATCH_RECORDS = 1000


ValueCodec = Callable[[bytes, bytes], bytes]
"""(LevelDB key, value) -> value: opens a stored value, or seals one for storing."""


def _as_stored(key: bytes, value: bytes) -> bytes:
    return value


class ImageError(Exception):
    """A received image is malformed or does not match its checksum."""


def _records(
    handle: Any, excluded: tuple[bytes, ...], open_value: ValueCodec
) -> Iterator[tuple[bytes, bytes]]:
    for key, value in handle.iterator():
        if not key.startswith(excluded):
            yield key, open_value(key, value)


async def measure(
    handle: Any, excluded: tuple[bytes, ...] = (), open_value: ValueCodec = _as_stored
) -> tuple[int, int]:
    """(record count, total image bytes) of what `stream` will produce from `handle`.

    It runs on the event loop, yielding now and then, rather than in a thread: the member may
    close the database (stop, or an image swapped in) and a thread still iterating it would
    outlive the handle."""
    count = 0
    size = _HEADER.size + _TRAILER.size
    for key, value in _records(handle, excluded, open_value):
        count += 1
        size += _RECORD.size + len(key) + len(value)
        if count % _BATCH_RECORDS == 0:
            await asyncio.sleep(0)
    return count, size


async def stream(
    handle: Any,
    count: int,
    excluded: tuple[bytes, ...] = (),
    chunk_bytes: int = CHUNK_BYTES,
    open_value: ValueCodec = _as_stored,
) -> AsyncIterator[bytes]:
    """The image in chunks of about `chunk_bytes`, yielding to the event loop between them."""
    yield _HEADER.pack(MAGIC, VERSION, count)
    crc = 0
    buffer = bytearray()
    for key, value in _records(handle, excluded, open_value):
        record = _RECORD.pack(len(key), len(value)) + key + value
        crc = zlib.crc32(record, crc)
        buffer += record
        if len(buffer) >= chunk_bytes:
            yield bytes(buffer)
            buffer.clear()
            await asyncio.sleep(0)
    buffer += _TRAILER.pack(crc)
    yield bytes(buffer)


class ImageParser:
    """Checks an image as its bytes arrive and hands out its records, in order.

    Shared by the follower that installs a leader's image and by `cairn snapshot` reading a
    backup file (cairn.member.backup), which carries the same image.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.expected: int | None = None
        self.seen = 0
        self._crc = 0

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The records completed by `data` (raises ImageError on a bad header)."""
        self._buffer += data
        if self.expected is None:
            if len(self._buffer) < _HEADER.size:
                return []
            magic, version, count = _HEADER.unpack_from(self._buffer)
            if magic != MAGIC or version != VERSION:
                raise ImageError(f"not a cairn image (magic {magic!r}, version {version})")
            self.expected = count
            del self._buffer[: _HEADER.size]
        records = []
        offset = 0
        while self.seen < self.expected and len(self._buffer) - offset >= _RECORD.size:
            klen, vlen = _RECORD.unpack_from(self._buffer, offset)
            end = offset + _RECORD.size + klen + vlen
            if len(self._buffer) < end:
                break
            self._crc = zlib.crc32(memoryview(self._buffer)[offset:end], self._crc)
            key_at = offset + _RECORD.size
            key = bytes(self._buffer[key_at : key_at + klen])
            records.append((key, bytes(self._buffer[key_at + klen : end])))
            self.seen += 1
            offset = end
        del self._buffer[:offset]
        if self.seen == self.expected and len(self._buffer) > _TRAILER.size:
            raise ImageError(f"image has {len(self._buffer) - _TRAILER.size} bytes after its end")
        return records

    def finish(self) -> None:
        """Check that every record arrived and the CRC matches the trailer."""
        if self.expected is None or self.seen != self.expected:
            raise ImageError(f"image ended after {self.seen} of {self.expected} records")
        if len(self._buffer) != _TRAILER.size:
            raise ImageError(f"image trailer has {len(self._buffer)} bytes, not 4")
        (crc,) = _TRAILER.unpack(bytes(self._buffer))
        if crc != self._crc:
            raise ImageError(f"image CRC {self._crc:08x} does not match trailer {crc:08x}")


class ImageWriter:
    """Parses an image as its chunks arrive and writes it into a fresh LevelDB directory."""

    def __init__(self, path: str, seal_value: ValueCodec = _as_stored) -> None:
        if os.path.exists(path):
            shutil.rmtree(path)
        self.path = path
        self.db = plyvel.DB(path, create_if_missing=True, error_if_exists=True)
        self._parser = ImageParser()
        self._batch: list[tuple[bytes, bytes]] = []
        self._seal_value = seal_value

    def feed(self, data: bytes) -> None:
        seal = self._seal_value
        self._batch.extend((key, seal(key, value)) for key, value in self._parser.feed(data))
        if len(self._batch) >= _BATCH_RECORDS:
            self._write_batch()

    def _write_batch(self) -> None:
        with self.db.write_batch() as batch:
            for key, value in self._batch:
                batch.put(key, value)
        self._batch.clear()

    def finish(self, extra: dict[bytes, bytes]) -> None:
        """Check count and CRC, add `extra` records, and make the directory durable."""
        self._parser.finish()
        self._batch.extend(extra.items())
        with self.db.write_batch(sync=True) as batch:
            for key, value in self._batch:
                batch.put(key, value)
        self._batch.clear()
        self.db.close()

    def abort(self) -> None:
        if not self.db.closed:
            self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)


def swap_in(new_dir: str, db_dir: str) -> None:
    """Replace `db_dir` with `new_dir` by renames; `recover` completes a crash in between."""
    old = db_dir + ".old"
    if os.path.exists(old):
        shutil.rmtree(old)
    os.rename(db_dir, old)
    os.rename(new_dir, db_dir)
    fsync_dir(os.path.dirname(db_dir) or ".")
    shutil.rmtree(old)


INCOMING = ".incoming-"


def incoming_dir(db_dir: str, index: int, serial: int) -> str:
    """Where one transfer's image is written before the swap (unique per transfer)."""
    return f"{db_dir}{INCOMING}{index}-{serial}"


def recover(db_dir: str) -> None:
    """After a crash between the two renames of `swap_in`, put the old directory back.

    The old state is still right: the WAL holds no marker for the image yet (the marker is
    written only after the swap), so the member restarts from where it was. Images of
    transfers a crash cut short are deleted."""
    old = db_dir + ".old"
    if not os.path.exists(db_dir) and os.path.exists(old):
        os.rename(old, db_dir)
    elif os.path.exists(old):
        shutil.rmtree(old)
    parent, base = os.path.split(db_dir)
    if os.path.isdir(parent or "."):
        for name in os.listdir(parent or "."):
            if name.startswith(base + INCOMING):
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
