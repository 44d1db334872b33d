"""cairn's backup file: what Maintenance.Snapshot streams and `cairn snapshot` reads.

Layout (integers big-endian)::

    header    b"CAIRNBAK" | u32 format version (1) | u32 metadata length | metadata (JSON)
    image     a CAIRNIMG image (cairn.member.snapshot_image): every LevelDB record of the
              member at one applied index, in key order, with its own CRC-32 trailer
    padding   zero bytes up to a multiple of 512 bytes
    checksum  SHA-256 of every byte before it (32 bytes)

The image is the one a leader streams to a far-behind follower, read from a LevelDB snapshot
handle, so the backup is one point in time while writes go on, and its records are copied
exactly as stored (values sealed by encryption at rest stay sealed). The member's own Raft
bookkeeping (`snapshot_meta`) is left out: a restore writes the configuration of the new
cluster instead. The metadata says where the image stands (applied index, revision,
compacted revision) and how long it is, so a cut-off file is told apart from a damaged one.

Ending with a SHA-256 of the content is etcd's convention (its snapshots are a bolt file
plus that digest, sent as the stream's last message), so the file content differs from
etcd's by design but is checked the same way. The padding is for etcdctl 3.4: `snapshot
save` refuses a stream whose length is not a multiple of 512 plus the 32-byte digest
("sha256 checksum not found", it expects whole bolt pages).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import google_crc32c

from cairn import __version__
from cairn.member import snapshot_image, snapshot_meta
from cairn.mvcc.backend import meta_key
from cairn.mvcc.store import (
    META_APPLIED_INDEX,
    META_CURRENT_REV,
    META_FINISHED_COMPACT,
    META_SCHEDULED_COMPACT,
)

MAGIC = b"CAIRNBAK"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sII")
SHA256_BYTES = 32
ALIGN_BYTES = 512
# etcd sends its snapshot in 32 KiB messages; cairn does the same.
WIRE_CHUNK_BYTES = 32 * 1024
_READ_BYTES = 1024 * 1024
_MAX_METADATA_BYTES = 64 * 1024
# The member's Raft bookkeeping: per member, rewritten by a restore.
EXCLUDED_PREFIXES = snapshot_meta.KEYS


class BackupError(Exception):
    """A backup file that cannot be used: damaged, cut off, or not a cairn backup."""


@dataclass(frozen=True)
class BackupMeta:
    """Where the image stands; written before it, read by `cairn snapshot status|restore`."""

    cairn_version: str
    created: str  # UTC, RFC 3339
    member_name: str
    member_id: int
    cluster_id: int
    applied_index: int
    raft_term: int
    revision: int
    compact_revision: int
    record_count: int
    image_bytes: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> BackupMeta:
        try:
            fields = json.loads(raw)
            return cls(**fields)
        except (ValueError, TypeError) as error:
            raise BackupError(f"snapshot metadata is unreadable ({error})") from None

    def header(self) -> bytes:
        encoded = self.encode()
        return _HEADER.pack(MAGIC, FORMAT_VERSION, len(encoded)) + encoded


def padded(length: int) -> int:
    """`length` rounded up to a multiple of ALIGN_BYTES."""
    return -(-length // ALIGN_BYTES) * ALIGN_BYTES


def _meta_int(handle: Any, name: str, default: int) -> int:
    raw = handle.get(meta_key(name))
    return default if raw is None else struct.unpack(">q", raw)[0]


@dataclass
class BackupSource:
    """One backup being produced from a LevelDB snapshot handle."""

    handle: Any
    meta: BackupMeta

    @property
    def content_bytes(self) -> int:
        """Bytes before the checksum: etcd's `remaining_bytes` counts down from this."""
        return padded(len(self.meta.header()) + self.meta.image_bytes)

    async def content(self) -> AsyncIterator[bytes]:
        """Header and image, in pieces of any size (the image yields to the event loop)."""
        yield self.meta.header()
        async for piece in snapshot_image.stream(
            self.handle, self.meta.record_count, EXCLUDED_PREFIXES
        ):
            yield piece
        unpadded = len(self.meta.header()) + self.meta.image_bytes
        yield bytes(padded(unpadded) - unpadded)

    async def wire_chunks(self) -> AsyncIterator[tuple[int, bytes]]:
        """(remaining bytes, blob) as etcd sends them: 32 KiB blobs, remaining counting down
        to 0 at the last one, then the SHA-256 of them all with remaining 0."""
        digest = hashlib.sha256()
        total = self.content_bytes
        sent = 0
        pending = bytearray()
        async for piece in self.content():
            pending += piece
            while len(pending) >= WIRE_CHUNK_BYTES:
                blob = bytes(pending[:WIRE_CHUNK_BYTES])
                del pending[:WIRE_CHUNK_BYTES]
                sent += len(blob)
                digest.update(blob)
                yield total - sent, blob
        if pending:
            sent += len(pending)
            digest.update(pending)
            yield total - sent, bytes(pending)
        if sent != total:
            raise BackupError(f"the image changed while it was read ({sent} of {total} bytes)")
        yield 0, digest.digest()


async def prepare(
    handle: Any, member_name: str, member_id: int, cluster_id: int, raft_term: int
) -> BackupSource:
    """Measure the image behind `handle` and describe it; the state is the handle's own."""
    count, image_bytes = await snapshot_image.measure(handle, EXCLUDED_PREFIXES)
    scheduled = _meta_int(handle, META_SCHEDULED_COMPACT, -1)
    finished = _meta_int(handle, META_FINISHED_COMPACT, -1)
    meta = BackupMeta(
        cairn_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        member_name=member_name,
        member_id=member_id,
        cluster_id=cluster_id,
        applied_index=_meta_int(handle, META_APPLIED_INDEX, 0),
        raft_term=raft_term,
        revision=_meta_int(handle, META_CURRENT_REV, 1),
        compact_revision=max(scheduled, finished, 0),
        record_count=count,
        image_bytes=image_bytes,
    )
    return BackupSource(handle, meta)


# ---- reading a backup file -------------------------------------------------------------


@dataclass(frozen=True)
class BackupStatus:
    """What `cairn snapshot status` shows, in etcd's columns."""

    hash: int  # CRC-32C over every record (key, then value) of the image
    revision: int
    total_key: int  # records in the image (etcd: entries of every bolt bucket)
    total_size: int  # bytes before the checksum (etcd: the bolt file without its digest)
    meta: BackupMeta


def _go_bytes(digest: bytes) -> str:
    """A digest the way etcd prints one (Go's %v of a byte slice)."""
    return "[" + " ".join(str(b) for b in digest) + "]"


class BackupFile:
    """An opened backup file. What can be told from its length is checked on opening (a file
    cut short); `verify_hash` checks the digest before anything else in the file is trusted,
    so a damaged header reads as the damage it is (a digest mismatch), as with etcd."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.size = os.path.getsize(path)
        except OSError as error:
            raise BackupError(f"stat {path}: {error.strerror.lower()}") from None
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                raise BackupError(f"{path} is not a cairn snapshot file (too short)")
            magic, version, meta_len = _HEADER.unpack(head)
            if magic != MAGIC:
                raise BackupError(
                    f"{path} is not a cairn snapshot file (it does not start with {MAGIC!r}; "
                    "an etcd snapshot is restored with etcdctl)"
                )
            if version != FORMAT_VERSION:
                raise BackupError(f"{path}: unknown cairn snapshot format version {version}")
            self._meta: BackupMeta | None = None
            self._meta_error: BackupError | None = None
            if meta_len > _MAX_METADATA_BYTES or _HEADER.size + meta_len > self.size:
                self._meta_error = BackupError(f"{path}: snapshot metadata length is corrupt")
            else:
                try:
                    self._meta = BackupMeta.decode(f.read(meta_len))
                except BackupError as error:
                    self._meta_error = error
        self.image_offset = _HEADER.size + meta_len
        self.content_bytes = self.size - SHA256_BYTES
        self.has_hash = True
        if self._meta is not None:
            described = padded(self.image_offset + self._meta.image_bytes)
            if self.size < described:
                raise BackupError(
                    f"{path} is {self.size} bytes, but its header describes "
                    f"{described + SHA256_BYTES} (content and SHA-256): the file is truncated"
                )
            self.content_bytes = described
            self.has_hash = self.size == described + SHA256_BYTES

    @property
    def meta(self) -> BackupMeta:
        """The metadata; raises when it is unreadable (a damaged header)."""
        if self._meta is None:
            assert self._meta_error is not None
            raise self._meta_error
        return self._meta

    def verify_hash(self, skip: bool = False) -> None:
        """Check the trailing SHA-256 (etcd's messages when it is missing or wrong), then
        that the rest of the file is what its header describes."""
        if self._meta is not None and self.size == self.content_bytes:
            if not skip:
                raise BackupError("snapshot missing hash but --skip-hash-check=false")
            return
        if not skip:
            digest = hashlib.sha256()
            with open(self.path, "rb") as f:
                left = self.size - SHA256_BYTES
                while left:
                    block = f.read(min(_READ_BYTES, left))
                    digest.update(block)
                    left -= len(block)
                stored = f.read(SHA256_BYTES)
            got = digest.digest()
            if stored != got:
                raise BackupError(f"expected sha256 {_go_bytes(stored)}, got {_go_bytes(got)}")
        if not self.has_hash:
            raise BackupError(
                f"{self.path} is {self.size} bytes, {self.size - self.content_bytes} more than "
                "its header describes: it is not one whole cairn snapshot"
            )
        _ = self.meta

    def records(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record of the image; raises BackupError at the end if its CRC or count is
        wrong, so a consumer must not commit anything before the iterator is exhausted."""
        parser = snapshot_image.ImageParser()
        try:
            with open(self.path, "rb") as f:
                f.seek(self.image_offset)
                left = self.meta.image_bytes
                while left:
                    block = f.read(min(_READ_BYTES, left))
                    if not block:
                        raise BackupError(f"{self.path} ended early")
                    left -= len(block)
                    yield from parser.feed(block)
            parser.finish()
        except snapshot_image.ImageError as error:
            raise BackupError(f"{self.path}: the image is corrupt: {error}") from None
        if parser.seen != self.meta.record_count:
            raise BackupError(
                f"{self.path}: {parser.seen} records, the metadata says {self.meta.record_count}"
            )

    def status(self) -> BackupStatus:
        """Digest checked, every record read and hashed: a file that passes is whole."""
        if not self.has_hash:
            raise BackupError(
                f"{self.path} has no SHA-256 at its end: it was cut short by exactly 32 bytes"
            )
        self.verify_hash()
        crc = google_crc32c.Checksum()
        count = 0
        for key, value in self.records():
            crc.update(key)
            crc.update(value)
            count += 1
        return BackupStatus(
            hash=int.from_bytes(crc.digest(), "big"),
            revision=self.meta.revision,
            total_key=count,
            total_size=self.content_bytes,
            meta=self.meta,
        )
