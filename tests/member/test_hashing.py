"""A member's HashKV and Hash run in chunks between other tasks; when a compaction or a
replaced database interrupts them they start again on the state as it is then."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from tests.mvcc.harness import KV

from cairn.errors import ErrCompacted, ErrHashAborted, ErrStopped
from cairn.member import hashing
from cairn.mvcc.store import KVHash

T = TypeVar("T")


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[KV]:
    store = KV(tmp_path / "db")
    yield store
    store.close()


def write_history(kv: KV, writes: int = 60) -> None:
    for i in range(writes):
        kv.put(b"k%d" % (i % 7), b"v%d" % i)


def replace_by_a_copy(kv: KV) -> None:
    """Defragment's swap: the same records in a new database directory."""
    copy = f"{kv.path}.copy"
    kv.backend.copy_to(copy)

    def swap() -> None:
        shutil.rmtree(kv.path)
        os.rename(copy, kv.path)

    kv.backend.reopen(swap)


async def first_chunk_done(hash_call: Awaitable[T]) -> asyncio.Future[T]:
    """Start a hash and return once it has hashed its first chunk and yielded."""
    task = asyncio.ensure_future(hash_call)
    await asyncio.sleep(0)
    assert not task.done()
    return task


def test_other_tasks_run_while_a_hash_kv_is_in_progress(kv: KV) -> None:
    write_history(kv)

    async def main() -> tuple[KVHash, int]:
        ran = 0
        hashed = asyncio.ensure_future(hashing.hash_kv(lambda: kv.store, 0, chunk_records=5))
        while not hashed.done():
            ran += 1
            await asyncio.sleep(0)
        return await hashed, ran

    result, turns = asyncio.run(main())
    assert result == kv.store.hash_kv(0)
    assert turns >= 60 // 5


def test_a_compaction_during_a_hash_kv_restarts_it_under_the_new_compaction(kv: KV) -> None:
    write_history(kv)

    async def main() -> KVHash:
        task = await first_chunk_done(hashing.hash_kv(lambda: kv.store, 0, chunk_records=5))
        kv.compact(40)
        return await task

    result = asyncio.run(main())
    assert result.compact_revision == 40
    assert result == kv.store.hash_kv(0)


def test_a_hash_kv_at_a_revision_compacted_meanwhile_is_refused(kv: KV) -> None:
    write_history(kv)

    async def main() -> KVHash:
        task = await first_chunk_done(hashing.hash_kv(lambda: kv.store, 30, chunk_records=5))
        kv.compact(40)
        return await task

    with pytest.raises(ErrCompacted):
        asyncio.run(main())


def test_a_defragmentation_during_a_hash_kv_restarts_it_on_the_new_files(kv: KV) -> None:
    write_history(kv)
    expected = kv.store.hash_kv(0)

    async def main() -> KVHash:
        task = await first_chunk_done(hashing.hash_kv(lambda: kv.store, 0, chunk_records=5))
        replace_by_a_copy(kv)
        return await task

    assert asyncio.run(main()) == expected


def test_an_image_swapped_in_during_a_hash_kv_is_hashed_instead(tmp_path: Path) -> None:
    """_swap_store closes the old store and opens a new one on the leader's image."""
    old, image = KV(tmp_path / "old"), KV(tmp_path / "image")
    try:
        write_history(old, 40)
        write_history(image, 80)
        current = [old]

        async def main() -> KVHash:
            task = await first_chunk_done(
                hashing.hash_kv(lambda: current[0].store, 0, chunk_records=5)
            )
            old.close()
            current[0] = image
            return await task

        assert asyncio.run(main()) == image.store.hash_kv(0)
    finally:
        old.close()
        image.close()


def test_a_hash_kv_interrupted_again_and_again_gives_up(kv: KV) -> None:
    write_history(kv)

    async def main() -> KVHash:
        task = asyncio.ensure_future(hashing.hash_kv(lambda: kv.store, 0, chunk_records=2))
        for _ in range(hashing.MAX_ATTEMPTS):
            await asyncio.sleep(0)  # one chunk of the current attempt
            kv.put(b"k", b"v")
            kv.compact(kv.revision - 1)
        return await task

    with pytest.raises(ErrHashAborted):
        asyncio.run(main())


def test_a_hash_kv_on_a_stopping_member_fails_as_stopped(kv: KV) -> None:
    write_history(kv)

    async def main() -> KVHash:
        task = await first_chunk_done(hashing.hash_kv(lambda: kv.store, 0, chunk_records=5))
        kv.close()
        return await task

    with pytest.raises(ErrStopped):
        asyncio.run(main())


def test_a_defragmentation_during_a_hash_restarts_it_on_the_new_files(kv: KV) -> None:
    write_history(kv)

    async def main() -> int:
        task = await first_chunk_done(hashing.hash_all(lambda: kv.backend, chunk_records=5))
        replace_by_a_copy(kv)
        return await task

    assert asyncio.run(main()) == kv.backend.hash_all()
