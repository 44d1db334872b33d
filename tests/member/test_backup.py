"""The backup file Maintenance.Snapshot streams: framing, point in time, and the checks
`cairn snapshot status|restore` make before trusting one. A real LevelDB store underneath."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from tests.mvcc.harness import KV

from cairn.member import backup, snapshot_meta
from cairn.member.backup import BackupError, BackupFile


def _store(tmp_path: Path) -> KV:
    kv = KV(tmp_path / "db")
    for i in range(400):
        kv.put(b"key/%04d" % i, b"v" * (i % 300))
    kv.delete(b"key/0007")
    kv.compact(50)
    kv.backend.write_batch({snapshot_meta.LATEST: b"the member's own raft bookkeeping"})
    return kv


def _save(kv: KV, path: Path, *, write_between: bool = False) -> list[tuple[int, bytes]]:
    """A backup as the RPC produces it: the handle taken, then (optionally) more writes,
    then streamed. Returns the (remaining, blob) messages and writes the file."""

    async def produce() -> list[tuple[int, bytes]]:
        handle = kv.backend.db.snapshot()
        source = await backup.prepare(handle, "m1", 1, 2, raft_term=3)
        if write_between:
            kv.put(b"key/written-after", b"must not be in the backup")
        return [message async for message in source.wire_chunks()]

    messages = asyncio.run(produce())
    path.write_bytes(b"".join(blob for _, blob in messages))
    return messages


def test_the_stream_is_32_kib_blobs_counting_down_then_the_sha256(tmp_path: Path) -> None:
    kv = _store(tmp_path)
    messages = _save(kv, tmp_path / "b.db")
    content = b"".join(blob for _, blob in messages[:-1])
    assert all(len(blob) == backup.WIRE_CHUNK_BYTES for _, blob in messages[:-2])
    assert [remaining for remaining, _ in messages[:-1]] == [
        len(content) - sum(len(b) for _, b in messages[: i + 1]) for i in range(len(messages) - 1)
    ]
    assert messages[-1] == (0, hashlib.sha256(content).digest())
    # etcdctl 3.4 refuses a snapshot whose length is not whole 512-byte pages plus the digest.
    assert (len(content) + 32) % 512 == 32


def test_status_reports_the_state_at_the_handle_not_later_writes(tmp_path: Path) -> None:
    kv = _store(tmp_path)
    revision_at_handle = kv.revision
    _save(kv, tmp_path / "b.db", write_between=True)
    status = BackupFile(str(tmp_path / "b.db")).status()
    records = dict(BackupFile(str(tmp_path / "b.db")).records())
    assert kv.revision == revision_at_handle + 1
    assert status.revision == revision_at_handle
    assert status.meta.compact_revision == 50
    assert status.meta.applied_index == kv.applied_index - 1
    assert not any(b"written-after" in value for value in records.values())
    assert snapshot_meta.LATEST not in records
    assert status.total_key == len(records)
    assert status.total_size == (tmp_path / "b.db").stat().st_size - 32


def test_records_are_copied_exactly_as_stored(tmp_path: Path) -> None:
    kv = _store(tmp_path)
    _save(kv, tmp_path / "b.db")
    stored = {k: v for k, v in kv.backend.db.iterator() if k not in snapshot_meta.KEYS}
    assert dict(BackupFile(str(tmp_path / "b.db")).records()) == stored


def _damaged(tmp_path: Path, damage: str) -> str:
    kv = _store(tmp_path)
    path = tmp_path / "b.db"
    _save(kv, path)
    data = bytearray(path.read_bytes())
    if damage == "flipped":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncated":
        del data[len(data) // 3 :]
    elif damage == "no-hash":
        del data[-32:]
    bad = tmp_path / f"{damage}.db"
    bad.write_bytes(bytes(data))
    return str(bad)


def test_a_flipped_byte_fails_the_sha256_with_etcds_message(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"^expected sha256 \[[0-9 ]+\], got \[[0-9 ]+\]$"):
        BackupFile(_damaged(tmp_path, "flipped")).status()


def test_a_flipped_byte_is_still_caught_by_the_image_crc_when_the_hash_is_skipped(
    tmp_path: Path,
) -> None:
    damaged = BackupFile(_damaged(tmp_path, "flipped"))
    damaged.verify_hash(skip=True)
    with pytest.raises(BackupError, match="image is corrupt"):
        list(damaged.records())


def test_a_truncated_file_is_refused_before_reading_it(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="the file is truncated"):
        BackupFile(_damaged(tmp_path, "truncated"))


def test_a_file_without_its_hash_needs_skip_hash_check(tmp_path: Path) -> None:
    damaged = BackupFile(_damaged(tmp_path, "no-hash"))
    with pytest.raises(BackupError, match=r"^snapshot missing hash but --skip-hash-check=false$"):
        damaged.verify_hash()
    damaged.verify_hash(skip=True)
    with pytest.raises(BackupError, match="no SHA-256 at its end"):
        damaged.status()


def test_a_file_that_is_not_a_cairn_backup_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "etcd.db"
    path.write_bytes(b"\x00" * 20480 + b"\x01" * 32)
    with pytest.raises(BackupError, match="not a cairn snapshot file"):
        BackupFile(str(path))
