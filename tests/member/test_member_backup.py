"""RaftMember.backup(), what Maintenance.Snapshot streams: one applied index while writes go
on, a defragmentation waits for it, and a member stopping under it ends it with an error
rather than a mix of two states."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.member.test_member import config, put, run_puts, started

from cairn.errors import ErrStopped
from cairn.member.backup import BackupFile
from cairn.member.raft_member import RaftMember


async def _collect(member: RaftMember, during: object = None) -> bytes:
    blobs = []
    async with member.backup() as source:
        async for _, blob in source.wire_chunks():
            blobs.append(blob)
            if during is not None and len(blobs) == 1:
                await during  # type: ignore[misc]
    return b"".join(blobs)


async def _big_puts(member: RaftMember, count: int) -> None:
    """Values large enough that the image takes several pieces to stream."""
    value = b"x" * 4096
    await asyncio.gather(*(member.propose(put(b"big%05d" % i, value)) for i in range(count)))


def test_writes_while_streaming_are_not_in_the_backup(tmp_path: Path) -> None:
    async def main() -> tuple[int, bytes]:
        member = await started(config(tmp_path))
        try:
            await _big_puts(member, 300)
            revision = member.store.current_rev
            data = await _collect(member, during=run_puts(member, 50, prefix=b"later"))
            assert member.store.current_rev == revision + 50
            return revision, data
        finally:
            await member.stop()

    revision, data = asyncio.run(main())
    (tmp_path / "b.db").write_bytes(data)
    status = BackupFile(str(tmp_path / "b.db")).status()
    assert status.revision == revision
    assert not any(b"later" in value for _, value in BackupFile(str(tmp_path / "b.db")).records())


def test_a_defragmentation_waits_for_a_backup_being_streamed(tmp_path: Path) -> None:
    async def main() -> None:
        member = await started(config(tmp_path))
        try:
            await _big_puts(member, 300)
            tasks: list[asyncio.Task[None]] = []

            async def while_streaming() -> None:
                tasks.append(asyncio.get_running_loop().create_task(member.defragment()))
                await asyncio.sleep(0.2)
                assert not tasks[0].done()

            await _collect(member, during=while_streaming())
            await asyncio.wait_for(tasks[0], 5)
        finally:
            await member.stop()

    asyncio.run(main())


def test_a_member_stopping_under_a_backup_ends_it_with_server_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        member = await started(config(tmp_path))
        await _big_puts(member, 300)
        with pytest.raises(ErrStopped):
            await _collect(member, during=member.stop())

    asyncio.run(main())
